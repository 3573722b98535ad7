"""Material shared by the attack tests: real GitHub Actions tokens, forged tokens, JWS surgery.

The attack tests need two kinds of PK tokens:

* tokens around the **real** GitHub Actions ID tokens in ``tests/data/github-actions`` (their
  RS256 signatures are genuine; the GQ256 form is computed here). Their ``aud`` is GitHub's
  default, not a commitment, so the best a real token can do under an ``aud`` configuration is
  fail at the commitment step: every earlier step (issuer, algorithm, key, OP signature, CIC
  signature) passed. An attack variant that fails *earlier*, with a more specific error, shows
  which check stopped it;
* **forged** tokens built by hand from raw bytes, so that a header or payload can say anything
  an attacker wants (HMAC signatures, duplicate members, ``jwk`` headers) without going through
  opkey's own constructors, which would refuse to build them.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from opkey import gq, issuers
from opkey.cic import ClientInstanceClaims
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import PinnedKeys
from opkey.keys import PublicJWK, SigningKey, generate_signing_key
from opkey.pktoken import PKToken
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.helpers import NOW, MiniOP

DATA = Path(__file__).parent.parent / "data"
GHA = DATA / "github-actions"
MANIFEST: list[dict[str, Any]] = json.loads((DATA / "manifest.json").read_text())["tokens"]
GITHUB = issuers.GITHUB_ACTIONS_ISSUER
GITLAB = issuers.GITLAB_ISSUER
GOOGLE = issuers.GOOGLE_ISSUER

#: The 2022-08-05 token (kid 78167F…, verified by the 2022 JWKS which also holds 52F197…).
GH_2022 = "gha-2022-08-05_varunsh-coder_actions-playground.jwt"
#: The 2025-03-29 token (kid 38826b17…, verified by both 2025 JWKS snapshots).
GH_2025 = "gha-2025-03-29_rgl.jwt"
GH_KID_2022 = "78167F727DEC5D801DD1C8784C704A1C880EC0E1"
GH_KID_2022_OTHER = "52F197C481DE70112C441B4A9B37B53C7FCF0DB5"

#: GitHub as an RS256 issuer with an ``aud`` commitment: what a verifier that does not require
#: GQ256 would use. Real tokens reach the commitment step under it.
GH_RS256 = IssuerConfig(
    issuer=GITHUB,
    commitment=CommitmentType.AUD,
    algorithms=frozenset({"RS256"}),
    expiry=ExpiryPolicy.never(),
)
#: The GitHub Actions preset (GQ256 required).
GH_GQ = issuers.github_actions()


def entry(file: str) -> dict[str, Any]:
    """The manifest entry of a real token."""
    for item in MANIFEST:
        if item["file"] == file:
            return item
    raise KeyError(file)


def gh_token(file: str) -> str:
    """A real GitHub Actions ID token (compact JWT)."""
    return (GHA / file).read_text().strip()


@functools.cache
def jwks(name: str) -> KeySet:
    """A JWKS snapshot from ``tests/data`` (GitHub files by name, or gitlab/google)."""
    path = GHA / name if name.startswith("github-") else DATA / name
    return KeySet.from_json(path.read_bytes())


def gh_keyset(file: str) -> KeySet:
    """The GitHub JWKS snapshot that verifies ``file``."""
    return jwks(entry(file)["signature_verifies_with"][0])


def gh_key(file: str) -> PublicJWK:
    """The GitHub key that signed ``file``."""
    return gh_keyset(file).by_kid(entry(file)["header"]["kid"])


def gh_at(file: str) -> datetime:
    """A time inside the real token's validity window."""
    return datetime.fromtimestamp(entry(file)["iat"] + 1, timezone.utc)


@functools.cache
def gh_gq_token(file: str, cic: str | None = None) -> str:
    """The GQ256 form of a real token (GQ-bound when ``cic`` is given)."""
    return gq.sign_jwt(gh_token(file), gh_key(file), cic=cic)


@dataclass(frozen=True)
class Wrapped:
    """A PK token around an ID token, with the ephemeral key and CIC that made it."""

    pktoken: PKToken
    key: SigningKey
    cic: ClientInstanceClaims


@functools.cache
def gh_pktoken(file: str, *, gq_form: bool = True, bound: bool = False) -> Wrapped:
    """A PK token around a real GitHub token: GQ256 (default) or the original RS256.

    ``bound`` puts the commitment in the GQ header (``cic``), as GitLab CI does.
    """
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    if bound:
        token = gq.sign_jwt(gh_token(file), gh_key(file), cic=cic.commitment())
    else:
        token = gh_gq_token(file) if gq_form else gh_token(file)
    return Wrapped(PKToken.create(token, cic, key), key, cic)


# -- JWS surgery ---------------------------------------------------------------------------------


def doc(pkt: PKToken) -> dict[str, Any]:
    """The JSON serialization of ``pkt`` as a mutable document."""
    document: dict[str, Any] = json.loads(pkt.to_json())
    return document


def header(document: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The decoded protected header of signature ``index``."""
    value: dict[str, Any] = json.loads(b64url_decode(document["signatures"][index]["protected"]))
    return value


def set_header(document: dict[str, Any], index: int, value: Mapping[str, Any] | bytes) -> None:
    """Replace the protected header of signature ``index`` (go-json, or raw bytes as given)."""
    raw = value if isinstance(value, bytes) else go_json(dict(value))
    document["signatures"][index]["protected"] = b64url_encode(raw)


def text(document: Mapping[str, Any]) -> str:
    """A document as JSON text."""
    return json.dumps(document)


def parse(document: Mapping[str, Any]) -> PKToken:
    """Parse a (possibly tampered) JSON document as a PK token."""
    return PKToken.from_json(text(document))


def encode(value: Mapping[str, Any] | bytes) -> str:
    """b64url of go-json of ``value``, or of raw bytes."""
    return b64url_encode(value if isinstance(value, bytes) else go_json(dict(value)))


def compact(
    protected: Mapping[str, Any] | bytes,
    payload: Mapping[str, Any] | bytes,
    sign: Callable[[bytes], bytes],
) -> str:
    """A compact JWS with exactly these header and payload bytes, signed by ``sign``."""
    head, body = encode(protected), encode(payload)
    return f"{head}.{body}.{b64url_encode(sign(f'{head}.{body}'.encode()))}"


def rsa_signer(private_key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    """RS256 signing with ``private_key``."""
    return lambda data: private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def hmac_signer(secret: bytes) -> Callable[[bytes], bytes]:
    """HS256 signing with ``secret`` (the attacker's tool in key-confusion attacks)."""
    return lambda data: hmac.new(secret, data, sha256).digest()


def cic_entry(payload_b64: str, key: SigningKey, cic: ClientInstanceClaims) -> dict[str, str]:
    """A CIC signature entry (JSON serialization) over ``payload_b64``."""
    protected = b64url_encode(cic.header_bytes())
    signature = key.sign(f"{protected}.{payload_b64}".encode())
    return {"protected": protected, "signature": b64url_encode(signature)}


def op_entry(token: str) -> dict[str, str]:
    """The OP signature entry of a compact ID token."""
    protected, _, signature = token.split(".")
    return {"protected": protected, "signature": signature}


def pktoken_doc(token: str, key: SigningKey, cic: ClientInstanceClaims) -> dict[str, Any]:
    """A PK token document around any compact ID token, built without opkey's checks."""
    payload_b64 = token.split(".")[1]
    return {
        "payload": payload_b64,
        "signatures": [op_entry(token), cic_entry(payload_b64, key, cic)],
    }


@dataclass(frozen=True)
class Forged:
    """A hand-built PK token document whose commitment is correct for its ephemeral key."""

    document: dict[str, Any]
    key: SigningKey
    cic: ClientInstanceClaims
    claims: dict[str, Any]


def forge(
    op: MiniOP,
    op_header: Mapping[str, Any] | bytes,
    sign: Callable[[bytes], bytes],
    *,
    commitment: CommitmentType = CommitmentType.NONCE,
    payload: bytes | None = None,
    **claims: Any,
) -> Forged:
    """An ID token with exactly ``op_header`` signed by ``sign``, wrapped into a PK token.

    The claims are ``op``'s defaults with the commitment where ``commitment`` says, so every
    check except the one under attack passes. ``payload`` replaces the claims with raw bytes.
    """
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    if commitment is CommitmentType.NONCE:
        claims.setdefault("nonce", cic.commitment())
    elif commitment is CommitmentType.AUD:
        claims.setdefault("aud", cic.commitment())
    values = op.claims(**claims)
    token = compact(op_header, payload if payload is not None else values, sign)
    return Forged(pktoken_doc(token, key, cic), key, cic, values)


def mint_pktoken(
    op: MiniOP,
    *,
    commitment: CommitmentType = CommitmentType.NONCE,
    key: SigningKey | None = None,
    gq_sign: bool = False,
    **claims: Any,
) -> Wrapped:
    """A PK token from ``op`` whose claims (``aud`` included) the caller may override."""
    key = key or generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    defaults = {
        CommitmentType.NONCE: {"nonce": cic.commitment()},
        CommitmentType.AUD: {"aud": cic.commitment()},
        CommitmentType.GQ_BOUND: {"aud": "OPENPUBKEY-PKTOKEN:test"},
    }[commitment]
    token = op.mint(op.claims(**{**defaults, **claims}))
    if gq_sign or commitment is CommitmentType.GQ_BOUND:
        bound = cic.commitment() if commitment is CommitmentType.GQ_BOUND else None
        token = gq.sign_jwt(token, op.public_jwk, cic=bound)
    return Wrapped(PKToken.create(token, cic, key), key, cic)


def pinned_verifier(*issuers: tuple[IssuerConfig, KeySet], at: datetime = NOW) -> Verifier:
    """A verifier trusting each (configuration, pinned keys) pair, with its clock at ``at``."""
    return Verifier(
        Trust(
            [TrustedIssuer(config, [PinnedKeys({config.issuer: keys})]) for config, keys in issuers]
        ),
        clock=lambda: at,
    )
