"""Keys: public JWKs, RFC 7638 thumbprints, ephemeral signing keys and JWS signature checks.

All primitives come from pyca/cryptography. This module only maps JOSE names and encodings onto
them, strictly:

* the algorithm is always chosen by the caller, and the key type must match it;
* ES256 signatures are exactly 64 bytes ``r || s`` with ``0 < r, s < n`` (no DER);
* RSA signatures are exactly as long as the modulus; moduli are 2048–8192 bits and the public
  exponent odd, above 3 and below 2**32;
* JWKs are public only: a JWK carrying private members is rejected, never silently used.
  Other members opkey does not know are ignored, as RFC 7517 §4 asks and as OpenPubkey's
  library does: real providers add their own (Microsoft's keys carry ``issuer`` and
  ``cloud_instance_name``), and nothing opkey verifies depends on them.

JWK parsing is written here rather than taken from PyJWT because it must reject what PyJWT
tolerates (non-canonical base64url, private members, weak RSA parameters) and because importing
PyJWT costs more start-up time than an offline ``opkey verify`` is allowed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from opkey.errors import FormatError, SignatureError
from opkey.jose import b64url_decode, b64url_encode, go_json

__all__ = [
    "ALL_OP_ALGORITHMS",
    "PRIVATE_MEMBERS",
    "USER_ALGORITHMS",
    "PublicJWK",
    "PublicKey",
    "SigningKey",
    "UserAlgorithm",
    "generate_signing_key",
    "verify_cosign_signature",
    "verify_signature",
]

PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
UserAlgorithm: TypeAlias = Literal["ES256", "EdDSA", "RS256"]

#: Algorithms an ephemeral (user) key may use, as in OpenPubkey.
USER_ALGORITHMS: frozenset[str] = frozenset({"ES256", "EdDSA", "RS256"})
#: Every OP signature algorithm opkey can verify. Verifiers choose a subset; tokens never do.
ALL_OP_ALGORITHMS: frozenset[str] = frozenset({"RS256", "PS256", "ES256", "EdDSA", "GQ256"})

_KTY_FOR_ALG = {"RS256": "RSA", "PS256": "RSA", "GQ256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
_PUBLIC_MEMBERS = {
    "RSA": ("n", "e"),
    "EC": ("crv", "x", "y"),
    "OKP": ("crv", "x"),
}
#: JWK members that only a private (or symmetric) key has.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_MIN_RSA_BITS = 2048
_MAX_RSA_BITS = 8192
# Immutable parameter objects, built once rather than for every signature checked.
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PKCS1V15 = padding.PKCS1v15()
_PSS_SHA256 = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)
_P256 = ec.SECP256R1()


def _member(jwk: Mapping[str, Any], name: str, what: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise FormatError(f"{what}: member {name!r} must be a base64url string")
    return value


def _uint(text: Any, *, what: str) -> int:
    if not isinstance(text, str):
        raise FormatError(f"{what}: must be a base64url string")
    raw = b64url_decode(text, what=what)
    if not raw:
        raise FormatError(f"{what}: empty integer")
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class PublicJWK:
    """A validated public JSON Web Key and the cryptography key it denotes.

    ``members`` is the JWK exactly as given (read-only), because OpenPubkey hashes the ``upk``
    member of the CIC as it was sent. ``alg`` is the declared algorithm or ``None``.
    """

    kty: str
    key: PublicKey = field(compare=False)
    members: Mapping[str, Any]
    alg: str | None = None
    kid: str | None = None
    _thumbprint: str | None = field(default=None, init=False, compare=False, repr=False)

    @classmethod
    def from_dict(cls, jwk: Mapping[str, Any], *, what: str = "JWK") -> PublicJWK:
        """Parse a public JWK (RSA, EC P-256 or OKP Ed25519), rejecting anything doubtful."""
        if not isinstance(jwk, Mapping):
            raise FormatError(f"{what}: expected a JSON object, found {type(jwk).__name__}")
        kty = jwk.get("kty")
        if not isinstance(kty, str) or kty not in _PUBLIC_MEMBERS:
            raise FormatError(f"{what}: unsupported key type {kty!r}", found=kty)
        private = PRIVATE_MEMBERS.intersection(jwk)
        if private:
            raise FormatError(
                f"{what}: contains private key members {sorted(private)}; "
                "only public keys are accepted"
            )
        alg = jwk.get("alg")
        if alg is not None and (not isinstance(alg, str) or _KTY_FOR_ALG.get(alg) != kty):
            raise FormatError(f"{what}: alg {alg!r} does not fit key type {kty}", found=alg)
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise FormatError(f"{what}: kid must be a string")
        use = jwk.get("use")
        if use is not None and use != "sig":
            raise FormatError(f"{what}: key use {use!r} is not 'sig'")
        key_ops = jwk.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            raise FormatError(f"{what}: key_ops {key_ops!r} does not allow 'verify'")
        key = _load_public_key(kty, jwk, what)
        return cls(
            kty=kty,
            key=key,
            members=MappingProxyType(dict(jwk)),
            alg=alg,
            kid=kid,
        )

    @classmethod
    def from_key(cls, key: PublicKey, *, alg: str, kid: str | None = None) -> PublicJWK:
        """Build the JWK of a cryptography public key (members sorted like Go's jwx)."""
        members: dict[str, Any] = {"alg": alg}
        if isinstance(key, rsa.RSAPublicKey):
            numbers = key.public_numbers()
            members.update(kty="RSA", n=_b64_uint(numbers.n), e=_b64_uint(numbers.e))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError("only P-256 EC keys are supported")
            ec_numbers = key.public_numbers()
            members.update(
                kty="EC",
                crv="P-256",
                x=b64url_encode(ec_numbers.x.to_bytes(32, "big")),
                y=b64url_encode(ec_numbers.y.to_bytes(32, "big")),
            )
        else:
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            members.update(kty="OKP", crv="Ed25519", x=b64url_encode(raw))
        if kid is not None:
            members["kid"] = kid
        return cls.from_dict({k: members[k] for k in sorted(members)})

    def to_dict(self) -> dict[str, Any]:
        """The JWK members as a plain dict (a copy)."""
        return dict(self.members)

    def public_members(self) -> dict[str, Any]:
        """``kty`` and the key's public parameters (``n e``, ``crv x y``, ``crv x``): the
        members RFC 7638 thumbprints cover, without ``alg``, ``kid`` or anything else."""
        required: dict[str, Any] = {"kty": self.kty}
        for name in _PUBLIC_MEMBERS[self.kty]:
            required[name] = self.members[name]
        return required

    def thumbprint(self) -> str:
        """RFC 7638 SHA-256 thumbprint, base64url (OpenPubkey's ``jkt``).

        Computed once: key lookups by ``jkt`` and every verified identity ask for it.
        """
        if self._thumbprint is None:
            value = b64url_encode(hashlib.sha256(go_json(self.public_members())).digest())
            object.__setattr__(self, "_thumbprint", value)
            return value
        return self._thumbprint

    def allows(self, alg: str) -> bool:
        """Whether this key may verify ``alg``: key type matches, and a declared alg agrees."""
        if _KTY_FOR_ALG.get(alg) != self.kty:
            return False
        if self.alg is None:
            return True
        # A JWKS RS256 key is the key GQ256 proves knowledge of a signature under.
        return self.alg == alg or (alg == "GQ256" and self.alg == "RS256")


def _b64_uint(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _load_public_key(kty: str, jwk: Mapping[str, Any], what: str) -> PublicKey:
    try:
        if kty == "RSA":
            n = _uint(jwk.get("n"), what=f"{what} n")
            e = _uint(jwk.get("e"), what=f"{what} e")
            if not _MIN_RSA_BITS <= n.bit_length() <= _MAX_RSA_BITS:
                raise FormatError(
                    f"{what}: RSA modulus of {n.bit_length()} bits is outside "
                    f"{_MIN_RSA_BITS}..{_MAX_RSA_BITS}"
                )
            if e % 2 == 0 or not 3 < e < 2**32:
                raise FormatError(f"{what}: RSA public exponent {e} is not odd in (3, 2**32)")
            if n % 2 == 0:
                raise FormatError(f"{what}: RSA modulus is even")
            return rsa.RSAPublicNumbers(e, n).public_key()
        crv = jwk.get("crv")
        if kty == "EC":
            if crv != "P-256":
                raise FormatError(f"{what}: unsupported EC curve {crv!r}", found=crv)
            x = b64url_decode(_member(jwk, "x", what), what=f"{what} x")
            y = b64url_decode(_member(jwk, "y", what), what=f"{what} y")
            if len(x) != 32 or len(y) != 32:
                raise FormatError(f"{what}: P-256 coordinates must be 32 bytes each")
            return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + x + y)
        if crv != "Ed25519":
            raise FormatError(f"{what}: unsupported OKP curve {crv!r}", found=crv)
        x = b64url_decode(_member(jwk, "x", what), what=f"{what} x")
        if len(x) != 32:
            raise FormatError(f"{what}: Ed25519 key must be 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(x)
    except ValueError as exc:  # invalid point, bad key parameters
        raise FormatError(f"{what}: invalid {kty} key ({exc})") from None


def verify_signature(alg: str, jwk: PublicJWK, signing_input: bytes, signature: bytes) -> None:
    """Check a JWS signature with ``jwk`` under the caller-chosen ``alg``.

    Raises :class:`SignatureError` if the key cannot be used for ``alg`` or the signature is
    invalid. GQ256 is not handled here (see :mod:`opkey.gq`).
    """
    if not jwk.allows(alg) or alg == "GQ256":
        raise SignatureError(
            f"key (kty {jwk.kty}, alg {jwk.alg}) cannot verify {alg}", expected=alg, found=jwk.alg
        )
    key = jwk.key
    try:
        if alg == "ES256":
            assert isinstance(key, ec.EllipticCurvePublicKey)
            if len(signature) != 64:
                raise SignatureError(
                    f"ES256 signature must be 64 bytes (r||s), found {len(signature)}"
                )
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            if not (0 < r < _P256_ORDER and 0 < s < _P256_ORDER):
                raise SignatureError("ES256 signature has r or s out of range")
            key.verify(encode_dss_signature(r, s), signing_input, _ECDSA_SHA256)
        elif alg in ("RS256", "PS256"):
            assert isinstance(key, rsa.RSAPublicKey)
            if len(signature) != (key.key_size + 7) // 8:
                raise SignatureError(
                    f"{alg} signature is {len(signature)} bytes, "
                    f"the modulus {(key.key_size + 7) // 8}"
                )
            pad = _PKCS1V15 if alg == "RS256" else _PSS_SHA256
            key.verify(signature, signing_input, pad, _SHA256)
        elif alg == "EdDSA":
            assert isinstance(key, ed25519.Ed25519PublicKey)
            if len(signature) != 64:
                raise SignatureError(f"EdDSA signature must be 64 bytes, found {len(signature)}")
            key.verify(signature, signing_input)
        else:  # pragma: no cover - allows() admits only the algorithms above
            raise SignatureError(f"unsupported algorithm {alg!r}")
    except InvalidSignature:
        raise SignatureError(f"{alg} signature does not verify") from None


def verify_cosign_signature(jwk: PublicJWK, payload: bytes, signature: bytes) -> None:
    """Check a signature as ``cosign verify --key`` does: over the payload bytes themselves,
    DER-encoded for ECDSA, PKCS#1 v1.5 for RSA, raw for Ed25519."""
    key = jwk.key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, _ECDSA_SHA256)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, _PKCS1V15, _SHA256)
        else:
            key.verify(signature, payload)
    except (InvalidSignature, ValueError):
        raise SignatureError(
            "the cosign signature does not verify under the PK token's key"
        ) from None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An ephemeral private key with its JWS algorithm and public JWK.

    It lives in memory; :meth:`private_pem` exists for callers that explicitly ask to keep it.
    """

    alg: UserAlgorithm
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = field(
        repr=False, compare=False
    )
    public_jwk: PublicJWK

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` and return the JWS signature bytes (ES256 as raw ``r || s``)."""
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data)

    def sign_der(self, data: bytes) -> bytes:
        """Sign ``data`` in the encoding cosign and X.509 use (DER for ECDSA)."""
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.sign(data)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM of the private key (unencrypted: write it only with mode 0600)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load a key written by :meth:`private_pem`."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise FormatError(f"invalid private key PEM ({exc})") from None
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return cls._from_private(key, "ES256")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls._from_private(key, "EdDSA")
        if isinstance(key, rsa.RSAPrivateKey):
            return cls._from_private(key, "RS256")
        raise FormatError("unsupported private key type (expected P-256, Ed25519 or RSA)")

    @classmethod
    def _from_private(
        cls,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
        alg: UserAlgorithm,
    ) -> SigningKey:
        return cls(
            alg=alg, private_key=key, public_jwk=PublicJWK.from_key(key.public_key(), alg=alg)
        )


def generate_signing_key(alg: str = "ES256") -> SigningKey:
    """Generate a fresh ephemeral key: ES256 (P-256, the default), EdDSA (Ed25519) or RS256."""
    if alg == "ES256":
        return SigningKey._from_private(ec.generate_private_key(ec.SECP256R1()), "ES256")
    if alg == "EdDSA":
        return SigningKey._from_private(ed25519.Ed25519PrivateKey.generate(), "EdDSA")
    if alg == "RS256":
        return SigningKey._from_private(
            rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"
        )
    raise ValueError(f"unsupported ephemeral key algorithm {alg!r}; use ES256, EdDSA or RS256")
