"""Pure PK token verification: signatures, commitment and expiry against data the caller gives.

:func:`verify_pktoken` takes a parsed :class:`~opkey.pktoken.PKToken`, the trusted issuer's
configuration (:class:`IssuerConfig`), that issuer's keys (a :class:`~opkey.jwks.keyset.KeySet` or
another key lookup) and ``now``. It performs no I/O and reads no clock. Steps, in order:

1. the payload ``iss`` equals the configured issuer exactly (before any key is looked up);
2. the OP ``alg`` is one the *verifier* allows (GQ256 only, when GQ is required);
3. the key is found in that issuer's keys by exact ``kid`` (and ``jkt`` for GQ256);
4. the OP signature verifies (RS256, PS256, ES256, EdDSA or GQ256);
5. the CIC signature verifies under ``upk`` with the CIC ``alg``;
6. the commitment matches, where the issuer puts it (``nonce``, ``aud`` or the GQ ``cic``), or,
   for a key-bound ID token, ``cnf.jwk`` is the CIC's key;
7. the audience rule holds (for nonce and key-bound commitments, ``aud`` includes the client
   id and the token was issued to it: ``azp``, when present, is the client id, and several
   audiences need ``azp``; for GQ-bound, a single string ``aud`` with the prefix);
8. the expiry policy accepts the token at ``now``.

A COS (cosigner) signature, if present, is not verified and grants nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opkey import gq
from opkey.errors import CommitmentError, FormatError, KeyNotFoundError, SignatureError
from opkey.expiry import timestamp
from opkey.issuers import _CLIENT_ID_COMMITMENTS, KEY_BOUND_TYP, CommitmentType, IssuerConfig
from opkey.jwks.keyset import KeyLookup
from opkey.keys import PublicJWK, verify_signature
from opkey.pktoken import PKToken

__all__ = [
    "VerifiedPKToken",
    "find_op_key",
    "op_key_id",
    "verify_pktoken",
]


@dataclass(frozen=True, slots=True)
class VerifiedPKToken:
    """A PK token that passed :func:`verify_pktoken`, with what was verified."""

    pktoken: PKToken
    issuer: str
    subject: str
    claims: Mapping[str, Any]
    op_algorithm: str
    op_key: PublicJWK
    upk: PublicJWK
    commitment: CommitmentType
    pktoken_hash: str

    @property
    def op_key_thumbprint(self) -> str:
        """RFC 7638 thumbprint of the provider key that vouched for the token."""
        return self.op_key.thumbprint()


def op_key_id(pktoken: PKToken) -> tuple[str | None, str | None]:
    """The ``(kid, jkt)`` that name the provider key of the OP signature.

    For GQ256 the ``kid`` is the original header's (carried in the GQ ``kid``) and ``jkt`` the
    GQ header's thumbprint, which is required; other algorithms name only a ``kid``.
    """
    header = pktoken.op.header
    if pktoken.op.alg == "GQ256":
        original = gq.original_header(pktoken.op.jws(pktoken.payload_b64))
        jkt = header.get("jkt")
        if not isinstance(jkt, str):
            raise FormatError("GQ256 header needs the provider key thumbprint 'jkt'")
        kid = original.header.get("kid")
        return (kid if isinstance(kid, str) else None), jkt
    kid = header.get("kid")
    return (kid if isinstance(kid, str) else None), None


def find_op_key(pktoken: PKToken, keys: KeyLookup) -> PublicJWK:
    """The key in ``keys`` the OP signature names (by ``kid``, and ``jkt`` for GQ256)."""
    kid, jkt = op_key_id(pktoken)
    return keys.find(kid=kid, jkt=jkt)


def check_op_algorithm(pktoken: PKToken, config: IssuerConfig) -> str:
    """The OP ``alg``, if the verifier allows it for this issuer."""
    alg = pktoken.op.alg
    key_bound = pktoken.op.header.get("typ") == KEY_BOUND_TYP
    if key_bound != (config.commitment is CommitmentType.KEY_BOUND):
        # Both ways, as OpenPubkey: a key-bound token carries no commitment of the CIC, and a
        # key-bound issuer's plain ID tokens bind no key.
        raise CommitmentError(
            f"key-bound ({KEY_BOUND_TYP}) ID token for an issuer configured for "
            f"{config.commitment.value} commitments"
            if key_bound
            else f"issuer {config.issuer} binds keys: its ID tokens must have typ "
            f"{KEY_BOUND_TYP!r}, found {pktoken.op.header.get('typ')!r}",
            expected=config.commitment.value,
            found=pktoken.op.header.get("typ"),
        )
    if alg not in config.algorithms:
        detail = " (GQ256 is required)" if config.require_gq else ""
        raise SignatureError(
            f"OP signature algorithm {alg!r} is not allowed for {config.issuer}; "
            f"allowed: {', '.join(sorted(config.algorithms))}{detail}",
            expected=sorted(config.algorithms),
            found=alg,
        )
    return alg


def verify_op_signature(pktoken: PKToken, alg: str, key: PublicJWK) -> None:
    """Verify the provider's signature (or GQ proof) over the payload."""
    jws = pktoken.op.jws(pktoken.payload_b64)
    if alg == "GQ256":
        gq.verify_jwt(jws, key)
    else:
        verify_signature(alg, key, jws.signing_input, jws.signature)


def check_commitment(pktoken: PKToken, config: IssuerConfig) -> None:
    """The ID token commits to this PK token's CIC, where ``config`` says it does."""
    claims = pktoken.claims
    if config.commitment is CommitmentType.KEY_BOUND:
        check_key_binding(pktoken)
        return
    commitment = pktoken.cic_claims.commitment()
    if config.commitment is CommitmentType.NONCE:
        found: Any = claims.get("nonce")
        where = "nonce"
    elif config.commitment is CommitmentType.AUD:
        found = claims.get("aud")
        where = "aud"
    else:
        found = pktoken.op.header.get("cic") if pktoken.op.alg == "GQ256" else None
        where = "GQ header cic"
    if found != commitment:
        raise CommitmentError(
            f"the ID token's {where} does not commit to this PK token's key",
            expected=commitment,
            found=found,
        )
    if (
        pktoken.op.alg == "GQ256"
        and config.commitment is not CommitmentType.GQ_BOUND
        and "cic" in pktoken.op.header
    ):
        raise CommitmentError("GQ header carries a cic but the issuer does not use GQ-bound")


def check_key_binding(pktoken: PKToken) -> None:
    """A key-bound ID token's ``cnf.jwk`` is exactly the CIC's key.

    As OpenPubkey compares them: the JWK the provider signed must have exactly the members of
    the CIC key's public JWK (``kty`` and the key's public parameters) plus ``alg`` = the CIC
    ``alg``, with the same values; nothing more (no ``kid``, no ``use``) and nothing less.
    """
    cnf = pktoken.claims.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, Mapping) else None
    if not isinstance(jwk, Mapping) or not jwk:
        raise CommitmentError(
            "key-bound ID token has no key in its cnf claim (cnf.jwk)", found=cnf is not None
        )
    cic = pktoken.cic_claims
    expected = cic.upk.public_members()
    expected["alg"] = cic.alg
    if dict(jwk) != expected:
        raise CommitmentError(
            "the key in the ID token's cnf.jwk is not this PK token's key",
            expected=expected,
            found=dict(jwk),
        )


def check_audience(claims: Mapping[str, Any], config: IssuerConfig) -> None:
    """The audience rule: our client for nonce and key-bound commitments; for GQ-bound ones a
    single string ``aud`` with the prefix (as OpenPubkey: a list, even one whose entries carry
    the prefix, is refused).

    For nonce and key-bound commitments the commitment was chosen by the client that ran the
    login, so the token must have been issued *to our client*, not merely list it. OpenID
    Connect Core 1.0 §3.1.3.7 (steps 3-5): ``aud`` must contain the client id; with several
    audiences the client SHOULD check that ``azp`` is present; if ``azp`` is present, it SHOULD
    be the client id. opkey makes both SHOULDs MUSTs, and refuses several audiences without
    ``azp`` outright: then nothing says which of the listed clients obtained the token and chose
    its nonce, and the same step 3 says to reject audiences the client does not trust (opkey
    trusts none but its own). A token for one audience with no ``azp`` (what most providers
    issue to the client that asked) is accepted.
    """
    aud = claims["aud"]
    if config.commitment in _CLIENT_ID_COMMITMENTS:
        audiences = list(aud) if isinstance(aud, (list, tuple)) else [aud]
        if config.client_id not in audiences:
            raise CommitmentError(
                f"ID token audience {aud!r} does not include client id {config.client_id!r}",
                expected=config.client_id,
                found=aud,
            )
        if "azp" in claims:
            azp = claims["azp"]
            if azp != config.client_id:
                raise CommitmentError(
                    f"ID token was issued to another client (azp {azp!r}), not to client id "
                    f"{config.client_id!r}: that client chose its commitment",
                    expected=config.client_id,
                    found=azp,
                )
        elif len(audiences) > 1:
            raise CommitmentError(
                f"ID token has {len(audiences)} audiences and no azp claim: nothing says it was "
                f"issued to client id {config.client_id!r} rather than to another of them",
                expected=f"azp = {config.client_id!r}",
                found=aud,
            )
    elif config.commitment is CommitmentType.GQ_BOUND:
        if not isinstance(aud, str):
            raise CommitmentError(
                "GQ-bound ID token audience must be a single string, found a list",
                expected=config.gq_audience_prefix,
                found=aud,
            )
        if not aud.startswith(config.gq_audience_prefix):
            raise CommitmentError(
                f"GQ-bound ID token audience must start with {config.gq_audience_prefix!r}",
                expected=config.gq_audience_prefix,
                found=aud,
            )


def verify_pktoken(
    pktoken: PKToken,
    config: IssuerConfig,
    keys: KeyLookup,
    *,
    now: datetime,
) -> VerifiedPKToken:
    """Verify ``pktoken`` against ``config`` and ``keys`` as of ``now``; see the module doc.

    ``keys`` holds the keys of ``config.issuer`` only (a :class:`~opkey.jwks.keyset.KeySet`, or
    any :class:`~opkey.jwks.keyset.KeyLookup`, such as the :class:`~opkey.jwks.sources.FoundKey` a
    verifier found through the issuer's key sources).
    """
    now_ts = timestamp(now)
    issuer = pktoken.claims["iss"]
    if issuer != config.issuer:
        raise KeyNotFoundError(
            f"PK token issuer {issuer!r} is not the trusted issuer {config.issuer!r}",
            expected=config.issuer,
            found=issuer,
        )
    alg = check_op_algorithm(pktoken, config)
    key = find_op_key(pktoken, keys)
    verify_op_signature(pktoken, alg, key)
    cic = pktoken.cic_claims
    verify_signature(
        cic.alg, cic.upk, pktoken.cic.jws(pktoken.payload_b64).signing_input, pktoken.cic.signature
    )
    check_commitment(pktoken, config)
    check_audience(pktoken.claims, config)
    config.expiry.check(pktoken.claims, now_ts)
    return VerifiedPKToken(
        pktoken=pktoken,
        issuer=issuer,
        subject=pktoken.claims["sub"],
        claims=pktoken.claims,
        op_algorithm=alg,
        op_key=key,
        upk=cic.upk,
        commitment=config.commitment,
        pktoken_hash=pktoken.hash(),
    )
