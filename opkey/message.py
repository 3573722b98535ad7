"""OpenPubkey signed messages (OSM): content signed by the ephemeral key of a PK token.

An OSM is a compact JWS whose payload is the content and whose protected header is
``{"alg": <CIC alg>, "kid": <PK token hash>, "typ": "osm"}``. The ``kid`` binds the message to
one PK token, so an OSM cannot be presented with another PK token for the same key.

Verifying an OSM checks only the message signature against the PK token's ``upk``; the PK token
itself must be verified separately (:func:`opkey.verify.verify_pktoken`).
"""

from __future__ import annotations

from opkey.errors import FormatError, SignatureError
from opkey.jose import CompactJWS, b64url_encode, go_json, parse_compact
from opkey.keys import SigningKey, verify_signature
from opkey.pktoken import PKToken

__all__ = ["OSM_TYP", "sign_message", "verify_message"]

OSM_TYP = "osm"


def sign_message(
    content: bytes, pktoken: PKToken, signing_key: SigningKey, *, typ: str = OSM_TYP
) -> str:
    """Sign ``content`` with the PK token's ephemeral key; return the compact OSM."""
    if signing_key.public_jwk.members != pktoken.cic_claims.upk.members:
        raise ValueError("signing_key is not the PK token's committed key")
    header = {"alg": pktoken.cic_claims.alg, "kid": pktoken.hash(), "typ": typ}
    protected_b64 = b64url_encode(go_json(header))
    payload_b64 = b64url_encode(content)
    signature = signing_key.sign(f"{protected_b64}.{payload_b64}".encode("ascii"))
    return f"{protected_b64}.{payload_b64}.{b64url_encode(signature)}"


def verify_message(
    osm: str | CompactJWS,
    pktoken: PKToken,
    *,
    typ: str = OSM_TYP,
    pktoken_hash: str | None = None,
) -> bytes:
    """Verify an OSM against ``pktoken`` and return the signed content.

    ``osm`` is the compact JWS, or one :func:`~opkey.jose.parse_compact` already parsed (a
    bundle parses its signature when it is read; parsing again would only repeat the work).
    ``pktoken_hash`` may pass a precomputed :meth:`PKToken.hash` to avoid rehashing.
    """
    jws = osm if isinstance(osm, CompactJWS) else parse_compact(osm, what="signed message")
    header = jws.header
    if header.get("typ") != typ:
        raise FormatError(
            f"signed message typ must be {typ!r}, found {header.get('typ')!r}",
            expected=typ,
            found=header.get("typ"),
        )
    cic = pktoken.cic_claims
    if jws.alg != cic.alg:
        raise SignatureError(
            f"signed message alg {jws.alg!r} differs from the PK token key's {cic.alg!r}",
            expected=cic.alg,
            found=jws.alg,
        )
    expected_kid = pktoken_hash if pktoken_hash is not None else pktoken.hash()
    if header.get("kid") != expected_kid:
        raise SignatureError(
            "signed message was made for another PK token (kid is not this PK token's hash)",
            expected=expected_kid,
            found=header.get("kid"),
        )
    verify_signature(cic.alg, cic.upk, jws.signing_input, jws.signature)
    return jws.payload()
