"""Test helpers for the pure core: an in-memory OpenID provider key that mints ID tokens.

The protocol core never does I/O, so its tests need ID tokens without a server: ``MiniOP`` signs
claim sets with a real RSA (or EC/Ed25519) key through PyJWT, the same way a provider does.
End-to-end tests use the real dev identity provider over HTTP instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from opkey import gq
from opkey.cic import ClientInstanceClaims
from opkey.http import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, HttpResponse, RequestsTransport
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK, SigningKey, generate_signing_key
from opkey.pktoken import PKToken

ISSUER = "https://op.example.test"
CLIENT_ID = "opkey-tests"
#: A fixed "now" for core tests: 2026-01-01T00:00:00Z.
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW_TS = int(NOW.timestamp())

_RSA_CACHE: dict[int, rsa.RSAPrivateKey] = {}


def rsa_key(bits: int = 2048, *, fresh: bool = False) -> rsa.RSAPrivateKey:
    """An RSA key, cached per size unless ``fresh`` (RSA generation is slow)."""
    if fresh or bits not in _RSA_CACHE:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if fresh:
            return key
        _RSA_CACHE[bits] = key
    return _RSA_CACHE[bits]


@dataclass
class MiniOP:
    """An identity provider reduced to its signing key: mints compact ID tokens."""

    issuer: str = ISSUER
    alg: str = "RS256"
    kid: str = "test-key-1"
    private_key: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.private_key is None:
            if self.alg in ("RS256", "PS256"):
                self.private_key = rsa_key()
            elif self.alg == "ES256":
                self.private_key = ec.generate_private_key(ec.SECP256R1())
            else:
                self.private_key = ed25519.Ed25519PrivateKey.generate()

    @property
    def public_jwk(self) -> PublicJWK:
        """The JWK the provider publishes for this key."""
        return PublicJWK.from_key(self.private_key.public_key(), alg=self.alg, kid=self.kid)

    @property
    def keyset(self) -> KeySet:
        """A one-key JWKS."""
        return KeySet((self.public_jwk,))

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """A plausible claim set issued at ``NOW``."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1234",
            "aud": CLIENT_ID,
            "iat": NOW_TS - 60,
            "nbf": NOW_TS - 120,
            "exp": NOW_TS + 240,
            "email": "dev@example.test",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """Sign ``claims`` into a compact JWT."""
        hdrs: dict[str, Any] = {"kid": self.kid, "typ": "JWT"}
        hdrs.update(headers or {})
        return jwt.encode(claims, self.private_key, algorithm=self.alg, headers=hdrs)

    def pktoken(
        self,
        commitment: CommitmentType = CommitmentType.NONCE,
        *,
        gq_sign: bool = False,
        user_alg: str = "ES256",
        signing_key: SigningKey | None = None,
        **claim_overrides: Any,
    ) -> tuple[PKToken, SigningKey]:
        """A complete PK token with the commitment where ``commitment`` says."""
        key = signing_key or generate_signing_key(user_alg)
        cic = ClientInstanceClaims.create(key.public_jwk)
        c = cic.commitment()
        if commitment is CommitmentType.NONCE:
            claims = self.claims(nonce=c, **claim_overrides)
        elif commitment is CommitmentType.AUD:
            claims = self.claims(aud=c, **claim_overrides)
        else:
            claims = self.claims(aud="OPENPUBKEY-PKTOKEN:test", **claim_overrides)
        id_token = self.mint(claims)
        if gq_sign or commitment is CommitmentType.GQ_BOUND:
            bound = c if commitment is CommitmentType.GQ_BOUND else None
            id_token = gq.sign_jwt(id_token, self.public_jwk, cic=bound)
        return PKToken.create(id_token, cic, key), key

    def config(
        self, commitment: CommitmentType = CommitmentType.NONCE, **overrides: Any
    ) -> IssuerConfig:
        """The issuer configuration that should verify this provider's PK tokens."""
        kwargs: dict[str, Any] = {"issuer": self.issuer, "commitment": commitment}
        if commitment is CommitmentType.NONCE:
            kwargs["client_id"] = CLIENT_ID
            kwargs["algorithms"] = frozenset({self.alg})
        if commitment is CommitmentType.GQ_BOUND:
            kwargs["require_gq"] = True
            kwargs["algorithms"] = frozenset({"GQ256"})
        kwargs.update(overrides)
        return IssuerConfig(**kwargs)


@dataclass
class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it instead of waiting."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RoutingTransport:
    """Sends requests for URL prefixes to other base URLs: a stand-in for DNS in tests, so a
    client's real HTTP path runs against a local server while it believes it talks to a public
    host. Responses keep the URL the client asked for."""

    routes: Mapping[str, str]
    inner: RequestsTransport = field(default_factory=RequestsTransport)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpResponse:
        target = url
        for prefix, base in self.routes.items():
            if url.startswith(prefix):
                target = base + url[len(prefix) :]
                break
        response = self.inner.request(
            method, target, headers=headers, data=data, timeout=timeout, max_bytes=max_bytes
        )
        return HttpResponse(response.status, response.headers, response.body, url)
