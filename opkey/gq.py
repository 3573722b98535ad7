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

Big-integer arithmetic uses gmpy2 when it is installed and Python integers otherwise; both
give identical results. By default (``auto``) a process does its first few GQ operations with
Python integers and loads gmpy2 only after that: importing gmpy2 costs about as much as eight
pure-Python verifications, so a command that checks one signature never pays for it, while a
process that checks many switches early (:func:`set_backend` or ``OPKEY_GQ_BACKEND`` pin one).

The ``t`` exponentiations ``G^{R_i}`` (verifying) and ``Q^{R_i}`` (signing) share their base,
and the exponents are short (``8·vBytes`` bits): one table of the base's powers,
``base^(k·16^j)``, serves them all, so each costs at most ``2·vBytes - 1`` multiplications
instead of a full exponentiation (:func:`_shared_base_powers`).
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


#: In ``auto`` mode, how many GQ operations a process does with Python integers before it
#: loads gmpy2. Importing gmpy2 takes about 25 ms, one pure-Python verification about 3 ms
#: (gmpy2: 0.6 ms): switching once the time spent would have paid for the import keeps any
#: process within twice the best of both choices, and one-shot commands on the fast path.
AUTO_PYTHON_OPERATIONS = 8

_PYTHON = _python_backend()
_mode: str | None = None  # "auto", "python" or "gmpy2"; None until the environment is read
_backend: _Backend | None = None  # the backend chosen for good (None: auto is still counting)
_auto_operations = 0


def _current(*, count: bool = False) -> _Backend:
    """The backend for the next operation; ``count`` records one operation in auto mode."""
    global _mode, _backend, _auto_operations
    if _backend is not None:
        return _backend
    if _mode is None:
        wanted = os.environ.get("OPKEY_GQ_BACKEND", "auto")
        try:
            set_backend(wanted if wanted in ("gmpy2", "python") else "auto")
        except RuntimeError:
            raise RuntimeError("OPKEY_GQ_BACKEND=gmpy2 but gmpy2 is not installed") from None
        return _current(count=count)
    if _auto_operations < AUTO_PYTHON_OPERATIONS:
        if count:
            _auto_operations += 1
        return _PYTHON
    _backend = _gmpy2_backend() or _PYTHON
    return _backend


def backend() -> str:
    """The name of the big-integer backend the next operation uses: ``"gmpy2"`` or
    ``"python"`` (in ``auto`` mode this changes once, after the first few operations)."""
    return _current().name


def set_backend(name: str) -> None:
    """Choose ``"gmpy2"``, ``"python"`` or ``"auto"`` (Python integers for the first
    :data:`AUTO_PYTHON_OPERATIONS` operations, then gmpy2 when installed)."""
    global _mode, _backend
    if name == "python":
        _backend = _PYTHON
    elif name == "gmpy2":
        _backend = _gmpy2_backend()
        if _backend is None:
            raise RuntimeError("gmpy2 is not installed")
    elif name == "auto":
        _backend = None
    else:
        raise ValueError(f"unknown GQ backend {name!r}")
    _mode = name


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


def _challenge_exponents(params: GQParams, big_r: bytes) -> list[int]:
    """``R_1 … R_t``: the challenge cut into ``vBytes`` big-endian chunks."""
    vb = params.v_bytes
    return [int.from_bytes(big_r[i * vb : (i + 1) * vb], "big") for i in range(params.t)]


def _shared_base_powers(base: Any, exponents: list[int], bits: int, n: Any) -> list[Any]:
    """``[base^e mod n for e in exponents]`` (each ``e < 2^bits``) with one shared table.

    ``table[j][k] = base^(k·16^j)`` for every 4-bit digit ``k`` of every digit position
    ``j``; ``base^e`` is then the product of one entry per non-zero digit of ``e``. For GQ256
    with e = 65537 (16 exponents of 16 bits) that is 59 multiplications for the table and at
    most 3 per exponent, against about 20 per exponent for separate exponentiations. Every
    value is a plain modular product, so the result is the same whatever the backend.
    """
    table: list[list[Any]] = []
    step = base % n  # base^(16^j)
    for j in range((bits + 3) // 4):
        if j:
            step = table[-1][15] * table[-1][1] % n
        row = [None, step]
        for _ in range(14):
            row.append(row[-1] * step % n)
        table.append(row)
    powers = []
    for e in exponents:
        acc = None
        j = 0
        while e:
            digit = e & 15
            if digit:
                acc = table[j][digit] if acc is None else acc * table[j][digit] % n
            e >>= 4
            j += 1
        powers.append(1 if acc is None else acc)
    return powers


def _sign(
    params: GQParams,
    q: int,
    message: bytes,
    randbelow: Callable[[int], int],
    be: _Backend | None = None,
) -> bytes:
    be = be or _current(count=True)
    n = be.mpz(params.n)
    v, nb = params.v, params.n_bytes
    rs = [be.mpz(randbelow(params.n - 1) + 1) for _ in range(params.t)]
    w = b"".join(int(be.powmod(r, v, n)).to_bytes(nb, "big") for r in rs)
    big_r = _challenge(params, w, message)
    q_powers = _shared_base_powers(
        be.mpz(q), _challenge_exponents(params, big_r), 8 * params.v_bytes, n
    )
    s_parts = [int(q_r * r % n).to_bytes(nb, "big") for q_r, r in zip(q_powers, rs, strict=True)]
    return big_r + b"".join(s_parts)


def _verify(params: GQParams, signature: bytes, identity: bytes, message: bytes) -> bool:
    if len(signature) != params.signature_length:
        return False
    be = _current(count=True)
    t, vb, nb = params.t, params.v_bytes, params.n_bytes
    n_int = params.n
    n = be.mpz(n_int)
    big_r = signature[: t * vb]
    offset = t * vb
    s_values = []
    for i in range(t):
        s_i = int.from_bytes(signature[offset + i * nb : offset + (i + 1) * nb], "big")
        if not 0 < s_i < n_int:
            return False
        s_values.append(s_i)
    g = be.mpz(gq_identity(identity, nb))
    g_powers = _shared_base_powers(g, _challenge_exponents(params, big_r), 8 * vb, n)
    w_parts = [
        int(be.powmod(be.mpz(s_i), params.v, n) * g_r % n).to_bytes(nb, "big")
        for s_i, g_r in zip(s_values, g_powers, strict=True)
    ]
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
    be = _current(count=True)
    n = be.mpz(params.n)
    q = int((be.invert(be.mpz(sigma * blind % params.n), n) * blind) % n)
    message = f"{header_b64}.{jws.payload_b64}".encode("ascii")
    signature = _sign(params, q, message, randbelow, be)
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
