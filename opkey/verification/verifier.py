"""The verifier: one engine that checks signatures under a :class:`~opkey.verification.Trust`.

A :class:`Verifier` answers, for every caller (the command line, image verification, the
examples, the admission gate), the same two questions in the same order:

1. **Is this signature genuine?** Parse strictly; find the trusted issuer by the token's exact
   ``iss`` (unknown issuers are rejected before any key lookup or network access); find the
   provider key through that issuer's key sources; run the pure PK token check
   (:func:`opkey.verify.verify_pktoken`) as of ``at``; verify the signed message against the PK
   token. The result is a :class:`VerifiedIdentity` that says who signed and which key source
   vouched for the provider key.
2. **Are the right people among the signers?** :meth:`Verifier.verdict` checks every piece of
   evidence (bundles, image signatures) one at a time, keeping only the outcomes, and decides a
   :class:`~opkey.policy.signoff.Requirement` (one policy, or a multi-signer sign-off) over the
   genuine ones. It returns a :class:`~opkey.verification.verdict.Verdict`: which requirement
   was met by which signature, and why every other one was not.

Time: see ``spec/time.md``. ``at`` defaults to the verifier's clock (now).

Verified PK tokens are cached (bounded LRU, keyed by PK token hash and issuer configuration):
many signatures from one CI run then cost one OP/GQ verification. A cache hit still re-checks
that the provider key is trusted and re-applies the expiry policy at ``at``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from opkey.artifact import artifact_statement, parse_artifact_statement
from opkey.errors import ConfigError, KeyNotFoundError, SignatureError
from opkey.expiry import timestamp, utc_datetime
from opkey.issuers import IssuerConfig
from opkey.jose import CompactJWS
from opkey.jwks.sources import FallbackKeys, FoundKey
from opkey.message import OSM_TYP, verify_message
from opkey.pktoken import PKToken
from opkey.policy.signoff import Requirement
from opkey.verification.identity import VerifiedIdentity, VerifiedMessage
from opkey.verification.trust import Trust
from opkey.verification.verdict import Verdict, decide
from opkey.verify import VerifiedPKToken, check_op_algorithm, op_key_id, verify_pktoken

if TYPE_CHECKING:
    from opkey.bundle import Bundle
    from opkey.digest import Digest
    from opkey.verification.evidence import Evidence

__all__ = ["ClaimsPolicy", "Verifier"]


class ClaimsPolicy(Protocol):
    """Anything that accepts or rejects verified claims (see :mod:`opkey.policy.claims`)."""

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`~opkey.errors.PolicyError` unless the claims are acceptable."""
        ...


@dataclass(frozen=True)
class _Entry:
    verified: VerifiedPKToken
    key_thumbprint: str
    identity: VerifiedIdentity


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Verifier:
    """Verifies PK tokens, signed messages, bundles and whole verdicts under one :class:`Trust`."""

    trust: Trust
    clock: Callable[[], datetime] = field(default=_utc_now)
    cache_size: int = 4096
    _cache: OrderedDict[tuple[str, IssuerConfig], _Entry] = field(
        init=False, repr=False, default_factory=OrderedDict
    )
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not isinstance(self.trust, Trust):
            raise TypeError(f"Verifier needs a Trust, not {type(self.trust).__name__}")

    # -- PK tokens ------------------------------------------------------------------------

    def identify(self, pktoken: PKToken, *, at: datetime | None = None) -> VerifiedIdentity:
        """Verify a PK token under this verifier's trust as of ``at``; who it identifies."""
        return self._verified(pktoken, at)[1]

    def _verified(
        self, pktoken: PKToken, at: datetime | None
    ) -> tuple[VerifiedPKToken, VerifiedIdentity]:
        when = at if at is not None else self.clock()
        now = timestamp(when)  # validates ``at`` before anything else
        issuer = pktoken.claims["iss"]
        trusted = self.trust.issuer(issuer)
        if trusted is None:
            raise KeyNotFoundError(
                f"issuer {issuer!r} is not trusted by this verifier "
                f"(trusted: {', '.join(sorted(self.trust.urls))})",
                expected=sorted(self.trust.urls),
                found=issuer,
            )
        config = trusted.config
        check_op_algorithm(pktoken, config)  # before any key lookup can reach the network
        kid, jkt = op_key_id(pktoken)
        found = FallbackKeys(trusted.keys).find_key(issuer, kid=kid, jkt=jkt)
        cache_key = (pktoken.hash(), config)
        with self._lock:
            entry = self._cache.get(cache_key)
            if entry is not None:
                self._cache.move_to_end(cache_key)
        if entry is not None and found.key.thumbprint() == entry.key_thumbprint:
            config.expiry.check(pktoken.claims, now)
            identity = entry.identity
            if identity.key_source != found.source:
                identity = _identity(entry.verified, found)
            return entry.verified, identity
        verified = verify_pktoken(pktoken, config, found, now=when)
        identity = _identity(verified, found)
        with self._lock:
            self._cache[cache_key] = _Entry(verified, verified.op_key_thumbprint, identity)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verified, identity

    # -- signed messages ------------------------------------------------------------------

    def verify_message(
        self,
        pktoken: PKToken,
        signature: str | CompactJWS,
        *,
        policy: ClaimsPolicy,
        at: datetime | None = None,
        typ: str = OSM_TYP,
    ) -> VerifiedMessage:
        """Verify an OSM made with ``pktoken``'s key and apply ``policy`` to its signer.

        ``signature`` is the compact OSM, or the same already parsed by
        :func:`~opkey.jose.parse_compact`.
        """
        _require_policy(policy)
        message = self.open_message(pktoken, signature, at=at, typ=typ)
        policy.check(message.identity.claims)
        return message

    def open_message(
        self,
        pktoken: PKToken,
        signature: str | CompactJWS,
        *,
        at: datetime | None = None,
        typ: str = OSM_TYP,
    ) -> VerifiedMessage:
        """Verify an OSM made with ``pktoken``'s key; who signed and what, *no policy applied*.

        For evidence that a :meth:`verdict` decides: deciding *who* is the requirement's job.
        """
        verified, identity = self._verified(pktoken, at)
        content = verify_message(signature, pktoken, typ=typ, pktoken_hash=verified.pktoken_hash)
        return VerifiedMessage(identity, content)

    def open_bundle(
        self, bundle: Bundle, digest: Digest, *, at: datetime | None = None
    ) -> VerifiedIdentity:
        """Verify that ``bundle`` is a genuine signature of exactly ``digest``; who made it."""
        message = self.open_message(bundle.pktoken, bundle.signature_jws, at=at)
        if message.content != artifact_statement(digest):
            # Not the canonical statement for this digest: say what it signs instead (parsing
            # raises if it is no artifact statement at all).
            signed = parse_artifact_statement(message.content)
            raise SignatureError(
                f"the bundle signs {signed}, not {digest}", expected=str(digest), found=str(signed)
            )
        return message.identity

    def verify_bundle(
        self,
        bundle: Bundle,
        digest: Digest,
        *,
        policy: ClaimsPolicy,
        at: datetime | None = None,
    ) -> VerifiedIdentity:
        """Verify that ``bundle`` signs exactly ``digest`` and ``policy`` accepts its signer.

        The common case in one call; :meth:`verdict` decides the same for many signatures and
        multi-signer requirements.
        """
        _require_policy(policy)
        identity = self.open_bundle(bundle, digest, at=at)
        policy.check(identity.claims)
        return identity

    # -- verdicts -------------------------------------------------------------------------

    def verdict(
        self,
        requirement: Requirement,
        subject: Digest,
        evidence: Iterable[Evidence],
        *,
        at: datetime | None = None,
    ) -> Verdict:
        """Check every piece of ``evidence`` for ``subject``, then decide ``requirement``.

        Evidence is consumed one piece at a time and only its outcome is kept, so a long or
        lazy sequence (signature layers streamed from a registry) costs little memory. The
        verdict never raises for a bad signature: it records why. Call
        :meth:`~opkey.verification.verdict.Verdict.raise_if_rejected` to turn a rejection into
        the error that explains it.
        """
        if not isinstance(requirement, Requirement):
            raise ConfigError("a requirement is required (Requirement.of(policy) for one policy)")
        if at is not None:
            timestamp(at)  # a time no token can be checked at is the caller's error, not theirs
        return decide(self, requirement, subject, evidence, at=at)


def _require_policy(policy: object) -> None:
    if not callable(getattr(policy, "check", None)):
        raise ConfigError("a policy is required (use UnsafeNoPolicy to accept any signer)")


def _identity(verified: VerifiedPKToken, found: FoundKey) -> VerifiedIdentity:
    claims = verified.claims
    return VerifiedIdentity(
        issuer=verified.issuer,
        subject=verified.subject,
        claims=claims,
        op_algorithm=verified.op_algorithm,
        signature_algorithm=verified.upk.alg or "",
        key_thumbprint=verified.upk.thumbprint(),
        op_key_thumbprint=verified.op_key_thumbprint,
        key_source=found.source,
        pktoken_hash=verified.pktoken_hash,
        issued_at=utc_datetime(claims["iat"], what="claim 'iat'"),
        expires_at=utc_datetime(claims["exp"], what="claim 'exp'"),
    )
