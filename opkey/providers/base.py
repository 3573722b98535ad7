"""What every provider shares: the :class:`Provider` interface and the checks on its result.

A provider turns an ephemeral signing key into a PK token: it creates the client instance
claims (CIC) for the key, puts their commitment where its identity provider carries it
(``nonce``, ``aud`` or the GQ ``cic``), obtains the ID token, GQ-signs it when the provider's
tokens must not be replayable, and wraps it with the CIC signature.

Before returning, each provider verifies its own PK token with
:func:`opkey.verify.verify_pktoken` against the issuer's published keys and the same
:class:`~opkey.issuers.IssuerConfig` a verifier would use (:meth:`Provider.issuer_config`).
A token that would be rejected later is reported now, as a :class:`ProviderError` that says
why, instead of surfacing as a confusing verification failure on someone else's machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol, runtime_checkable

from opkey import gq
from opkey._httpjson import body_snippet, check_status
from opkey.cic import ClientInstanceClaims
from opkey.errors import FormatError, ProviderError, SignatureError, VerificationError
from opkey.http import HttpResponse, Transport
from opkey.issuers import IssuerConfig
from opkey.jose import CompactJWS, parse_compact, parse_json_object
from opkey.jwks.client import JwksClient
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.remote_text import printable
from opkey.verify import VerifiedPKToken, verify_pktoken

__all__ = [
    "CIJobProvider",
    "Provider",
    "check_token_response",
    "new_cic",
    "parse_id_token",
    "require_issuer",
    "self_verify",
]

#: Largest token-endpoint response accepted (an ID token plus a few other tokens).
TOKEN_RESPONSE_MAX_BYTES = 256 * 1024


@runtime_checkable
class Provider(Protocol):
    """Something that can vouch for an ephemeral key with an ID token."""

    @property
    def issuer(self) -> str:
        """The issuer whose ID tokens this provider obtains."""
        ...

    def issuer_config(self) -> IssuerConfig:
        """How a verifier must check PK tokens from this provider."""
        ...

    def get_pktoken(
        self, signing_key: SigningKey, *, extra_claims: Mapping[str, str] | None = None
    ) -> PKToken:
        """A PK token committing to ``signing_key`` (``extra_claims`` go into the CIC)."""
        ...


def new_cic(
    signing_key: SigningKey, extra_claims: Mapping[str, str] | None = None
) -> ClientInstanceClaims:
    """Fresh client instance claims for ``signing_key``."""
    try:
        return ClientInstanceClaims.create(signing_key.public_jwk, extra=extra_claims)
    except FormatError as exc:
        raise ProviderError(f"cannot build the client instance claims: {exc}") from None


def parse_id_token(token: object, *, what: str) -> tuple[CompactJWS, dict[str, Any]]:
    """Split an ID token a provider returned and decode its claims, or :class:`ProviderError`."""
    if not isinstance(token, str) or not token:
        raise ProviderError(f"{what}: expected an ID token string, found {type(token).__name__}")
    try:
        jws = parse_compact(token, what=what)
        claims = parse_json_object(jws.payload(), what=f"{what} payload")
    except FormatError as exc:
        raise ProviderError(f"{what} is not a usable JWT: {exc}") from None
    return jws, claims


def require_issuer(claims: Mapping[str, Any], issuer: str, *, what: str, hint: str = "") -> None:
    """The token's ``iss`` must be the configured issuer; the token never chooses it."""
    found = claims.get("iss")
    if found != issuer:
        raise ProviderError(
            f"{what} was issued by {found!r}, but this provider is configured for {issuer!r}"
            + (f"; {hint}" if hint else ""),
            expected=issuer,
            found=found,
        )


def check_token_response(response: HttpResponse, *, what: str) -> dict[str, Any]:
    """Decode a provider's JSON reply; OAuth errors become :class:`ProviderError`.

    Redirects and 5xx answers are transport failures (:class:`NetworkError`); a 4xx answer is
    the provider refusing, reported with its ``error``/``error_description`` when present.
    """
    status = response.status
    if 400 <= status < 500:
        detail = body_snippet(response)
        try:
            document = parse_json_object(response.body, what=what)
        except FormatError:
            document = {}
        error = document.get("error")
        if isinstance(error, str):
            description = document.get("error_description")
            detail = printable(error) + (
                f": {printable(description)}" if isinstance(description, str) else ""
            )
        elif isinstance(document.get("message"), str):
            detail = printable(document["message"])
        raise ProviderError(
            f"{what}: {response.url} refused the request (HTTP {status}): {detail}",
            found=status,
        )
    check_status(response, what=what, method="request to")
    try:
        return parse_json_object(response.body, what=f"{what} from {response.url}")
    except FormatError as exc:
        raise ProviderError(f"{what}: the response is not a JSON object ({exc})") from None


def self_verify(
    pktoken: PKToken,
    config: IssuerConfig,
    jwks: JwksClient,
    *,
    what: str,
    now: datetime | None = None,
) -> VerifiedPKToken:
    """Verify a freshly made PK token as a verifier would; failures become :class:`ProviderError`.

    The key is looked up through :meth:`JwksClient.find_key` first, so a key the provider
    started using after the keys were cached is fetched.
    """
    header = pktoken.op.header
    kid = header.get("kid")
    try:
        if pktoken.op.alg == "GQ256":
            original = gq.original_header(pktoken.op.jws(pktoken.payload_b64))
            original_kid = original.header.get("kid")
            jkt = header.get("jkt")
            jwks.find_key(
                config.issuer,
                kid=original_kid if isinstance(original_kid, str) else None,
                jkt=jkt if isinstance(jkt, str) else None,
            )
        else:
            jwks.find_key(config.issuer, kid=kid if isinstance(kid, str) else None)
        keys = jwks.keys(config.issuer)
        return verify_pktoken(pktoken, config, keys, now=now or datetime.now(timezone.utc))
    except (VerificationError, FormatError) as exc:
        raise ProviderError(
            f"{what}: the PK token it produced does not verify ({type(exc).__name__}: {exc})"
        ) from None


class CIJobProvider:
    """What the ambient CI providers (GitHub Actions, Forgejo Actions, GitLab CI) share.

    A CI job's identity is its platform's: the job is recognised by one variable the platform
    sets to ``true``, the keys are its issuer's (a JWKS client for ``issuer`` unless one is
    given), and its ID token, a bearer credential, is GQ-signed before it is published
    (OpenPubkey's rule for CI providers) and wrapped the same way whichever platform issued it.
    """

    #: The variable a job of this platform sets to ``true``.
    JOB_VARIABLE: ClassVar[str]
    issuer: str
    transport: Transport
    jwks: JwksClient | None

    @classmethod
    def detected(cls, environ: Mapping[str, str] | None = None) -> bool:
        """Whether this process runs in a job of this platform (``JOB_VARIABLE=true``)."""
        env = os.environ if environ is None else environ
        return env.get(cls.JOB_VARIABLE) == "true"

    def issuer_config(self) -> IssuerConfig:
        """How a verifier must check PK tokens from this platform."""
        raise NotImplementedError

    def _use_issuer_keys(self) -> None:
        """Look the issuer's keys up with a JWKS client of its own unless one was given."""
        if self.jwks is None:
            self.jwks = JwksClient([self.issuer], transport=self.transport)

    def _gq_pktoken(
        self,
        id_token: str,
        jws: CompactJWS,
        cic: ClientInstanceClaims,
        signing_key: SigningKey,
        *,
        what: str,
        gq_cic: str | None = None,
    ) -> PKToken:
        """GQ-sign the job's ``id_token`` (``jws``, parsed) with its issuer's key, wrap it
        with ``cic`` and verify the result as a verifier would. ``gq_cic`` is the commitment
        for the GQ header when the token does not carry it already (GitLab's)."""
        assert self.jwks is not None
        kid = jws.header.get("kid")
        key = self.jwks.find_key(self.issuer, kid=kid if isinstance(kid, str) else None)
        try:
            gq_token = gq.sign_jwt(id_token, key, cic=gq_cic)
        except (FormatError, SignatureError) as exc:
            raise ProviderError(f"{what} cannot be GQ-signed: {exc}") from None
        pktoken = PKToken.create(gq_token, cic, signing_key)
        self_verify(pktoken, self.issuer_config(), self.jwks, what=what)
        return pktoken
