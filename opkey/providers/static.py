"""Static provider: an ID token the integrator already obtained, for a key it already holds.

Integrators with their own OIDC login (a web app, a token exchange service) can still make PK
tokens, in two ways:

* :meth:`StaticProvider.from_token`: a finished ID token plus the CIC it commits to (the CIC
  was created earlier for the signing key and its commitment sent to the provider);
* :meth:`StaticProvider.from_callback`: a function that receives the commitment and returns
  an ID token committing to it (the provider creates the CIC itself).

Either way the result must be consistent, which is checked before anything is signed: the
signing key is the one in the CIC, the token's issuer is the configured one, and the token
carries the commitment where ``commitment`` says (``nonce``, ``aud``, or the ``cic`` of a GQ
header). With a JWKS client the PK token is also verified like the other providers'; without
one, no network is used (useful offline), and only consistency is checked. An RS256 token
whose configuration requires GQ is GQ-signed, which needs the JWKS client for the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opkey import gq
from opkey.cic import ClientInstanceClaims
from opkey.errors import ConfigError, FormatError, ProviderError, SignatureError
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jwks.client import JwksClient
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.providers.base import new_cic, parse_id_token, require_issuer, self_verify

__all__ = ["StaticProvider", "TokenCallback"]

#: Receives the CIC commitment, returns a compact ID token that commits to it.
TokenCallback = Callable[[str], str]


@dataclass
class StaticProvider:
    """PK tokens from an ID token obtained elsewhere (see module doc)."""

    config: IssuerConfig
    id_token: str | None = field(default=None, repr=False)
    cic: ClientInstanceClaims | None = field(default=None, repr=False)
    callback: TokenCallback | None = field(default=None, repr=False)
    jwks: JwksClient | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.id_token is None) == (self.callback is None):
            raise ConfigError("a static provider needs either an id_token or a callback")
        if self.id_token is not None and self.cic is None:
            raise ConfigError("a static id_token needs the client instance claims it commits to")

    @classmethod
    def from_token(
        cls,
        id_token: str,
        cic: ClientInstanceClaims,
        *,
        issuer: str,
        commitment: CommitmentType = CommitmentType.NONCE,
        client_id: str | None = None,
        require_gq: bool = False,
        jwks: JwksClient | None = None,
    ) -> StaticProvider:
        """A provider for one finished ID token and the CIC it commits to."""
        return cls(
            config=_config(issuer, commitment, client_id, require_gq),
            id_token=id_token,
            cic=cic,
            jwks=jwks,
        )

    @classmethod
    def from_callback(
        cls,
        callback: TokenCallback,
        *,
        issuer: str,
        commitment: CommitmentType = CommitmentType.NONCE,
        client_id: str | None = None,
        require_gq: bool = False,
        jwks: JwksClient | None = None,
    ) -> StaticProvider:
        """A provider that asks ``callback`` for an ID token committing to each new key."""
        return cls(
            config=_config(issuer, commitment, client_id, require_gq),
            callback=callback,
            jwks=jwks,
        )

    @property
    def issuer(self) -> str:
        """The configured issuer."""
        return self.config.issuer

    def issuer_config(self) -> IssuerConfig:
        """The configuration given at construction."""
        return self.config

    def get_pktoken(
        self, signing_key: SigningKey, *, extra_claims: Mapping[str, str] | None = None
    ) -> PKToken:
        """Check consistency, GQ-sign if required, wrap, and verify when keys are available."""
        what = f"static ID token for {self.issuer}"
        if self.callback is not None:
            cic = new_cic(signing_key, extra_claims)
            id_token = self.callback(cic.commitment())
        else:
            assert self.id_token is not None
            assert self.cic is not None
            cic, id_token = self.cic, self.id_token
            if extra_claims:
                raise ProviderError(
                    f"{what}: extra claims cannot be added to an already committed CIC"
                )
            if signing_key.public_jwk.members != cic.upk.members:
                raise ProviderError(
                    f"{what}: the signing key is not the key in the client instance claims",
                    expected=dict(cic.upk.members),
                    found=dict(signing_key.public_jwk.members),
                )
        jws, claims = parse_id_token(id_token, what=what)
        require_issuer(claims, self.issuer, what=what)
        id_token = self._gq_sign_if_required(id_token, jws.alg, jws.header, cic, what)
        jws, claims = parse_id_token(id_token, what=what)
        self._check_commitment(jws.header, claims, cic, what)
        try:
            pktoken = PKToken.create(id_token, cic, signing_key)
        except FormatError as exc:
            raise ProviderError(f"{what}: cannot build a PK token: {exc}") from None
        if self.jwks is not None:
            self_verify(pktoken, self.config, self.jwks, what=what)
        return pktoken

    def _gq_sign_if_required(
        self,
        id_token: str,
        alg: str,
        header: Mapping[str, Any],
        cic: ClientInstanceClaims,
        what: str,
    ) -> str:
        if alg == "GQ256" or not self.config.require_gq:
            return id_token
        if self.jwks is None:
            raise ProviderError(
                f"{what}: GQ256 is required and the token is {alg}; GQ-signing it needs the "
                "provider's keys (pass a JWKS client)"
            )
        kid = header.get("kid")
        key = self.jwks.find_key(self.issuer, kid=kid if isinstance(kid, str) else None)
        bound = cic.commitment() if self.config.commitment is CommitmentType.GQ_BOUND else None
        try:
            return gq.sign_jwt(id_token, key, cic=bound)
        except (FormatError, SignatureError) as exc:
            raise ProviderError(f"{what}: cannot be GQ-signed: {exc}") from None

    def _check_commitment(
        self,
        header: Mapping[str, Any],
        claims: Mapping[str, Any],
        cic: ClientInstanceClaims,
        what: str,
    ) -> None:
        commitment = cic.commitment()
        kind = self.config.commitment
        if kind is CommitmentType.NONCE:
            found, where = claims.get("nonce"), "nonce"
        elif kind is CommitmentType.AUD:
            found, where = claims.get("aud"), "aud"
        else:
            found, where = header.get("cic"), "GQ header cic"
        if found != commitment:
            raise ProviderError(
                f"{what}: its {where} does not commit to the signing key's client instance claims",
                expected=commitment,
                found=found,
            )
        if kind is CommitmentType.NONCE:
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if self.config.client_id not in audiences:
                raise ProviderError(
                    f"{what}: audience {aud!r} does not include client id "
                    f"{self.config.client_id!r}",
                    expected=self.config.client_id,
                    found=aud,
                )


def _config(
    issuer: str, commitment: CommitmentType, client_id: str | None, require_gq: bool
) -> IssuerConfig:
    gq_needed = require_gq or commitment is CommitmentType.GQ_BOUND
    return IssuerConfig(
        issuer=issuer,
        commitment=commitment,
        algorithms=frozenset({"GQ256"}) if gq_needed else frozenset({"RS256"}),
        require_gq=gq_needed,
        client_id=client_id,
        expiry=ExpiryPolicy.never(),  # as the issuer presets: see spec/time.md
    )
