"""The verifier: trusted issuers, key sources, signature checks, identity policy, caching.

A :class:`Verifier` is configured with the issuers it trusts (:class:`TrustedIssuer`: an
:class:`~opkey.verify.IssuerConfig` plus the key sources to consult) and answers one question:
*who* signed this message, and does the policy accept them? Every call needs an explicit policy;
skipping identity checks takes the visibly named :class:`~opkey.policy.UnsafeNoPolicy`.

Steps for a signed message: parse (strictly), find the trusted issuer by the token's exact
``iss`` (unknown issuers are rejected before any key lookup or network access), find the
provider key through the issuer's key sources (live JWKS, then archive, or a pinned JWKS), run
the pure PK token verification as of ``at``, verify the message signature (OSM) against the
PK token, and finally apply the policy to the verified claims.

Time: see ``spec/time.md``. ``at`` defaults to the verifier's clock (now).

Verified PK tokens are cached (bounded LRU, keyed by PK token hash and issuer configuration):
many signatures from one CI run then cost one OP/GQ verification. A cache hit still re-checks
that the provider key is trusted and re-applies the expiry policy at ``at``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from opkey.artifact import Digest, artifact_statement, parse_artifact_statement
from opkey.bundle import Bundle
from opkey.errors import ConfigError, KeyNotFoundError, SignatureError
from opkey.expiry import timestamp
from opkey.jose import CompactJWS
from opkey.keysource import FallbackKeys, IssuerKeys, KeySource
from opkey.message import OSM_TYP, verify_message
from opkey.pktoken import PKToken
from opkey.verify import IssuerConfig, VerifiedPKToken, find_op_key, verify_pktoken

__all__ = ["ClaimsPolicy", "TrustedIssuer", "VerifiedIdentity", "Verifier"]


class ClaimsPolicy(Protocol):
    """Anything that accepts or rejects verified claims (see :mod:`opkey.policy`)."""

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`~opkey.errors.PolicyError` unless the claims are acceptable."""
        ...


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer the verifier trusts, and where its keys come from (tried in order)."""

    config: IssuerConfig
    keys: Sequence[KeySource]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError(f"issuer {self.config.issuer}: at least one key source is required")


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who signed, as established by verification, and how."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]
    op_algorithm: str
    signature_algorithm: str
    key_thumbprint: str
    op_key_thumbprint: str
    key_source: str
    pktoken_hash: str
    issued_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        """A one-line human summary."""
        return f"{self.subject} (issuer {self.issuer})"


@dataclass(frozen=True)
class _Entry:
    verified: VerifiedPKToken
    key_thumbprint: str
    source: str


@dataclass
class Verifier:
    """Verifies PK tokens, signed messages and bundles against trusted issuers and a policy."""

    issuers: Sequence[TrustedIssuer]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    cache_size: int = 4096
    _by_issuer: dict[str, TrustedIssuer] = field(init=False, repr=False)
    _cache: OrderedDict[tuple[str, IssuerConfig], _Entry] = field(
        init=False, repr=False, default_factory=OrderedDict
    )
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.issuers:
            raise ConfigError("a verifier needs at least one trusted issuer")
        self._by_issuer = {}
        for trusted in self.issuers:
            if trusted.config.issuer in self._by_issuer:
                raise ConfigError(f"issuer {trusted.config.issuer} is configured twice")
            self._by_issuer[trusted.config.issuer] = trusted

    # -- PK tokens ------------------------------------------------------------------------

    def verify_pktoken(
        self, pktoken: PKToken, *, at: datetime | None = None
    ) -> tuple[VerifiedPKToken, str]:
        """Verify a PK token as of ``at``; return it with the name of the key source used."""
        when = at if at is not None else self.clock()
        timestamp(when)  # validates ``at`` before anything else
        issuer = pktoken.claims["iss"]
        trusted = self._by_issuer.get(issuer)
        if trusted is None:
            raise KeyNotFoundError(
                f"issuer {issuer!r} is not trusted by this verifier "
                f"(trusted: {', '.join(sorted(self._by_issuer))})",
                expected=sorted(self._by_issuer),
                found=issuer,
            )
        cache_key = (pktoken.hash(), trusted.config)
        keys = IssuerKeys(issuer, FallbackKeys(trusted.keys))
        with self._lock:
            entry = self._cache.get(cache_key)
            if entry is not None:
                self._cache.move_to_end(cache_key)
        if entry is not None and find_op_key(pktoken, keys).thumbprint() == entry.key_thumbprint:
            trusted.config.expiry.check(pktoken.claims, timestamp(when))
            return entry.verified, keys.used
        verified = verify_pktoken(pktoken, trusted.config, keys, now=when)
        with self._lock:
            self._cache[cache_key] = _Entry(verified, verified.op_key_thumbprint, keys.used)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verified, keys.used

    # -- signed messages ------------------------------------------------------------------

    def verify_message(
        self,
        pktoken: PKToken,
        signature: str | CompactJWS,
        *,
        policy: ClaimsPolicy,
        at: datetime | None = None,
        typ: str = OSM_TYP,
    ) -> tuple[VerifiedIdentity, bytes]:
        """Verify an OSM made with ``pktoken``'s key; return who signed and the content.

        ``signature`` is the compact OSM, or the same already parsed by
        :func:`~opkey.jose.parse_compact`.
        """
        if not callable(getattr(policy, "check", None)):
            raise ConfigError("a policy is required (use UnsafeNoPolicy to accept any signer)")
        verified, source = self.verify_pktoken(pktoken, at=at)
        content = verify_message(signature, pktoken, typ=typ, pktoken_hash=verified.pktoken_hash)
        policy.check(verified.claims)
        return self._identity(verified, source), content

    def verify_bundle(
        self,
        bundle: Bundle,
        digest: Digest,
        *,
        policy: ClaimsPolicy,
        at: datetime | None = None,
    ) -> VerifiedIdentity:
        """Verify that ``bundle`` signs exactly ``digest`` and ``policy`` accepts its signer."""
        identity, content = self.verify_message(
            bundle.pktoken, bundle.signature_jws, policy=policy, at=at
        )
        if content != artifact_statement(digest):
            # Not the canonical statement for this digest: say what it signs instead (parsing
            # raises if it is no artifact statement at all).
            signed = parse_artifact_statement(content)
            raise SignatureError(
                f"the bundle signs {signed}, not {digest}", expected=str(digest), found=str(signed)
            )
        return identity

    @staticmethod
    def _identity(verified: VerifiedPKToken, source: str) -> VerifiedIdentity:
        claims = verified.claims
        return VerifiedIdentity(
            issuer=verified.issuer,
            subject=verified.subject,
            claims=claims,
            op_algorithm=verified.op_algorithm,
            signature_algorithm=verified.upk.alg or "",
            key_thumbprint=verified.upk.thumbprint(),
            op_key_thumbprint=verified.op_key_thumbprint,
            key_source=source,
            pktoken_hash=verified.pktoken_hash,
            issued_at=datetime.fromtimestamp(claims["iat"], timezone.utc),
            expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc),
        )
