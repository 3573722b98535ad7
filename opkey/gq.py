"""GQ256: Guillou–Quisquater proofs of knowledge of an RSA-signed ID token (OpenPubkey v0.25+).

A GQ256 token replaces the provider's RS256 signature σ with a non-interactive proof that the
signer knows σ, so a published PK token cannot be replayed as a bearer ID token. Format, as in
OpenPubkey's ``gq`` package (ISO/IEC 14888-2 GQ1, security parameter 256):

* ``v = e`` (odd, ≥ 3), ``nBytes = ceil(|n|/8)``, ``vBytes = ceil((|v|-1)/8)``,
  ``t = ceil(256 / floor(log2 v))`` (16 rounds for e = 65537);
* identity ``G = EMSA-PKCS1-v1_5-SHA256(origHeaderB64 "." payloadB64)`` as an integer;
  σ satisfies ``σ^v = G mod n`` and the private number is ``Q = σ⁻¹ mod n``;
* message ``M = gqHeaderB64 "." payloadB64`` (v0.25+: the GQ header, hence ``kid``, ``jkt``
  and ``cic``, is covered by the proof);
* sign: random ``r_i < n``; ``W = ‖ r_i^v``; ``R = SHAKE256(W ‖ M)[:t·vBytes]``;
  ``S_i = r_i · Q^{R_i}``; signature ``base64url(R ‖ S_1 ‖ … ‖ S_t)``, values fixed-width
  big-endian (5504 characters for RSA-2048);
* verify: exact length, ``0 < S_i < n``, ``W*_i = S_i^v · G^{R_i}``, accept iff
  ``SHAKE256(W* ‖ M)[:t·vBytes] = R``.

The GQ protected header is ``{"alg":"GQ256","typ":"JWT","kid":<original header segment>,
"jkt":<RFC 7638 thumbprint of the provider key>[,"cic":<commitment>]}``.

Modular exponentiation uses gmpy2 when it is installed and Python integers otherwise; both
give identical results (:func:`set_backend` chooses explicitly).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from opkey.errors import FormatError, SignatureError
from opkey.jose import CompactJWS, b64url_encode, go_json, parse_compact
from opkey.keys import PublicJWK, verify_signature

__all__ = [
    "GQParams",
    "backend",
    "gq_identity",
    "original_header",
    "set_backend",
    "sign_jwt",
    "verify_jwt",
]

SECURITY_PARAMETER = 256
# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

_PowMod = Callable[[Any, Any, Any], Any]
_Convert = Callable[[int], Any]


class _Backend:
    """The big-integer implementation: ``powmod``, ``invert`` and ``mpz`` (int to native)."""

    def __init__(
        self, name: str, powmod: _PowMod, invert: Callable[[Any, Any], Any], mpz: _Convert
    ) -> None:
        self.name = name
        self.powmod = powmod
        self.invert = invert
        self.mpz = mpz


def _python_backend() -> _Backend:
    return _Backend("python", pow, lambda x, n: pow(x, -1, n), int)


def _gmpy2_backend() -> _Backend | None:
    try:
        import gmpy2  # optional and slow to import: loaded only when GQ is used
    except ImportError:
        return None
    return _Backend("gmpy2", gmpy2.powmod, gmpy2.invert, gmpy2.mpz)


_backend: _Backend | None = None


def _current() -> _Backend:
    global _backend
    if _backend is None:
        wanted = os.environ.get("OPKEY_GQ_BACKEND", "auto")
        chosen = _gmpy2_backend() if wanted in ("auto", "gmpy2") else None
        if chosen is None and wanted == "gmpy2":
            raise RuntimeError("OPKEY_GQ_BACKEND=gmpy2 but gmpy2 is not installed")
        _backend = chosen or _python_backend()
    return _backend


def backend() -> str:
    """The name of the big-integer backend in use: ``"gmpy2"`` or ``"python"``."""
    return _current().name


def set_backend(name: str) -> None:
    """Choose ``"gmpy2"``, ``"python"`` or ``"auto"`` (gmpy2 when installed)."""
    global _backend
    if name == "python":
        _backend = _python_backend()
    elif name in ("gmpy2", "auto"):
        chosen = _gmpy2_backend()
        if chosen is None and name == "gmpy2":
            raise RuntimeError("gmpy2 is not installed")
        _backend = chosen or _python_backend()
    else:
        raise ValueError(f"unknown GQ backend {name!r}")


@dataclass(frozen=True, slots=True)
class GQParams:
    """GQ256 parameters derived from an RSA public key."""

    n: int
    v: int
    n_bytes: int
    v_bytes: int
    t: int

    @classmethod
    def from_key(cls, key: rsa.RSAPublicKey) -> GQParams:
        """Derive the parameters; the exponent must be odd and at least 3."""
        numbers = key.public_numbers()
        n, v = numbers.n, numbers.e
        if v < 3 or v % 2 == 0:
            raise SignatureError(f"GQ needs an odd RSA exponent of at least 3, found {v}")
        bits_per_round = v.bit_length() - 1
        return cls(
            n=n,
            v=v,
            n_bytes=(n.bit_length() + 7) // 8,
            v_bytes=(v.bit_length() - 1 + 7) // 8,
            t=(SECURITY_PARAMETER + bits_per_round - 1) // bits_per_round,
        )

    @property
    def signature_length(self) -> int:
        """Length in bytes of a GQ signature: ``t·vBytes + t·nBytes``."""
        return self.t * (self.v_bytes + self.n_bytes)


def gq_identity(signing_input: bytes, n_bytes: int) -> int:
    """``G``: the EMSA-PKCS1-v1_5 encoding of SHA-256(signing input), as an integer."""
    t = _SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
    if n_bytes < len(t) + 11:
        raise SignatureError("RSA modulus too short for PKCS#1 v1.5 encoding")
    em = b"\x00\x01" + b"\xff" * (n_bytes - len(t) - 3) + b"\x00" + t
    return int.from_bytes(em, "big")


def _challenge(params: GQParams, w: bytes, message: bytes) -> bytes:
    return hashlib.shake_256(w + message).digest(params.t * params.v_bytes)


def _rsa_key(jwk: PublicJWK) -> rsa.RSAPublicKey:
    if jwk.kty != "RSA" or not isinstance(jwk.key, rsa.RSAPublicKey):
        raise SignatureError(f"GQ256 needs an RSA provider key, found {jwk.kty}")
    if jwk.alg not in (None, "RS256"):
        raise SignatureError(f"GQ256 needs an RS256 provider key, found alg {jwk.alg!r}")
    return jwk.key


def _sign(params: GQParams, q: int, message: bytes, randbelow: Callable[[int], int]) -> bytes:
    be = _current()
    n = be.mpz(params.n)
    v = params.v
    q_native = be.mpz(q)
    rs = [be.mpz(randbelow(params.n - 1) + 1) for _ in range(params.t)]
    w = b"".join(int(be.powmod(r, v, n)).to_bytes(params.n_bytes, "big") for r in rs)
    big_r = _challenge(params, w, message)
    vb = params.v_bytes
    s_parts = []
    for i, r in enumerate(rs):
        r_i = int.from_bytes(big_r[i * vb : (i + 1) * vb], "big")
        s_i = (be.powmod(q_native, r_i, n) * r) % n
        s_parts.append(int(s_i).to_bytes(params.n_bytes, "big"))
    return big_r + b"".join(s_parts)


def _verify(params: GQParams, signature: bytes, identity: bytes, message: bytes) -> bool:
    if len(signature) != params.signature_length:
        return False
    be = _current()
    t, vb, nb = params.t, params.v_bytes, params.n_bytes
    n_int = params.n
    n = be.mpz(n_int)
    big_r = signature[: t * vb]
    g = be.mpz(gq_identity(identity, nb))
    w_parts = []
    offset = t * vb
    for i in range(t):
        s_i = int.from_bytes(signature[offset + i * nb : offset + (i + 1) * nb], "big")
        if not 0 < s_i < n_int:
            return False
        r_i = int.from_bytes(big_r[i * vb : (i + 1) * vb], "big")
        w_i = (be.powmod(be.mpz(s_i), params.v, n) * be.powmod(g, r_i, n)) % n
        w_parts.append(int(w_i).to_bytes(nb, "big"))
    expected = _challenge(params, b"".join(w_parts), message)
    return secrets.compare_digest(expected, big_r)


def original_header(gq_jws: CompactJWS) -> CompactJWS:
    """The provider's original protected header, carried byte-exact as the GQ ``kid``.

    Returned as a :class:`CompactJWS` over the same payload (with an empty signature) so the
    usual header checks apply to it; its ``alg`` must be RS256.
    """
    kid = gq_jws.header.get("kid")
    if not isinstance(kid, str):
        raise FormatError("GQ256 header needs the original protected header as a string 'kid'")
    original = parse_compact(f"{kid}.{gq_jws.payload_b64}.", what="GQ256 original header")
    if original.alg != "RS256":
        raise FormatError(f"GQ256 original header alg must be RS256, found {original.alg!r}")
    return original


def sign_jwt(
    id_token: str,
    provider_key: PublicJWK,
    *,
    cic: str | None = None,
    randbelow: Callable[[int], int] = secrets.randbelow,
) -> str:
    """Turn an RS256 ID token into a GQ256 token (``cic`` set: GQ-bound commitment).

    The RS256 signature is verified with ``provider_key`` first: a wrong key would otherwise
    yield a token that can never verify.
    """
    jws = parse_compact(id_token, what="ID token")
    if jws.alg != "RS256":
        raise FormatError(f"GQ256 signing needs an RS256 ID token, found {jws.alg!r}")
    key = _rsa_key(provider_key)
    verify_signature("RS256", provider_key, jws.signing_input, jws.signature)
    params = GQParams.from_key(key)
    header: dict[str, str] = {
        "alg": "GQ256",
        "jkt": provider_key.thumbprint(),
        "kid": jws.protected_b64,
        "typ": "JWT",
    }
    if cic is not None:
        header["cic"] = cic
    header_b64 = b64url_encode(go_json(header))
    sigma = int.from_bytes(jws.signature, "big")
    # Q = σ⁻¹ mod n, blinded so the inverse is never computed on σ itself.
    blind = randbelow(params.n - 1) + 1
    be = _current()
    n = be.mpz(params.n)
    q = int((be.invert(be.mpz(sigma * blind % params.n), n) * blind) % n)
    message = f"{header_b64}.{jws.payload_b64}".encode("ascii")
    signature = _sign(params, q, message, randbelow)
    return f"{header_b64}.{jws.payload_b64}.{b64url_encode(signature)}"


def verify_jwt(gq_jws: CompactJWS, provider_key: PublicJWK) -> None:
    """Verify a GQ256 token against the provider's RSA key; raise :class:`SignatureError`."""
    if gq_jws.alg != "GQ256":
        raise SignatureError(f"expected a GQ256 token, found alg {gq_jws.alg!r}")
    key = _rsa_key(provider_key)
    original = original_header(gq_jws)
    params = GQParams.from_key(key)
    identity = original.signing_input
    if not _verify(params, gq_jws.signature, identity, gq_jws.signing_input):
        raise SignatureError("GQ256 signature does not verify")
