"""The dev provider's RSA signing keys: one active key, older ones published on request.

Real providers rotate keys and keep the old one in their JWKS for a while; tests of key
rotation need both behaviours (old key still published, old key gone), so :meth:`rotate`
offers both. Tokens are minted and the published JWKs written with PyJWT, the way a typical
Python provider would: RS256 with ``kid`` and ``typ: JWT`` in the header. Keys are RSA-2048
from pyca/cryptography. PyJWT only *makes* tokens and keys here; everything opkey verifies is
read by its own strict parser (:mod:`opkey.jose`, :mod:`opkey.keys`), never by PyJWT.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from opkey.keys import PublicJWK

__all__ = ["DevKey", "KeyRing"]


@dataclass(frozen=True, slots=True)
class DevKey:
    """One signing key of the dev provider and its public JWK."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False, compare=False)
    public_jwk: PublicJWK

    @classmethod
    def generate(cls) -> DevKey:
        """A fresh RSA-2048 key whose ``kid`` is a prefix of its RFC 7638 thumbprint."""
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        unnamed = PublicJWK.from_key(private_key.public_key(), alg="RS256")
        kid = unnamed.thumbprint()[:16]
        return cls(
            kid=kid,
            private_key=private_key,
            public_jwk=PublicJWK.from_key(private_key.public_key(), alg="RS256", kid=kid),
        )

    def jwk(self) -> dict[str, Any]:
        """The published JWK: ``kty, alg, use, kid, n, e``."""
        from jwt.algorithms import RSAAlgorithm

        members: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {
            "kty": members["kty"],
            "alg": "RS256",
            "use": "sig",  # what providers publish; PyJWT's key_ops ("verify") says the same
            "kid": self.kid,
            "n": members["n"],
            "e": members["e"],
        }


class KeyRing:
    """The active signing key plus the retired keys still published (thread-safe)."""

    def __init__(self, initial: DevKey | None = None) -> None:
        self._lock = threading.Lock()
        self._active = initial if initial is not None else DevKey.generate()
        self._retired: list[DevKey] = []

    @property
    def active(self) -> DevKey:
        """The key new tokens are signed with."""
        with self._lock:
            return self._active

    def published(self) -> tuple[DevKey, ...]:
        """Keys in the JWKS: the active one first, then retired ones still published."""
        with self._lock:
            return (self._active, *self._retired)

    def rotate(self, *, keep_old: bool = True, new_key: DevKey | None = None) -> DevKey:
        """Make a new key active. ``keep_old``: keep publishing the previous keys."""
        key = new_key if new_key is not None else DevKey.generate()
        with self._lock:
            previous = self._active
            self._active = key
            self._retired = [previous, *self._retired] if keep_old else []
        return key

    def jwks(self) -> dict[str, Any]:
        """The JWKS document."""
        return {"keys": [key.jwk() for key in self.published()]}

    def sign(self, claims: Mapping[str, Any], *, key: DevKey | None = None) -> str:
        """Mint a compact RS256 JWT over ``claims`` with the active key (or ``key``)."""
        import jwt

        signer = key if key is not None else self.active
        return jwt.encode(
            dict(claims),
            signer.private_key,
            algorithm="RS256",
            headers={"kid": signer.kid, "typ": "JWT"},
        )
