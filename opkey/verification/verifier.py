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

Time: see ``spec/time.md``. ``at`` defaults to the verifier's clock (now). When evidence
carries RFC 3161 timestamps and the trust names time-stamping authorities,
:meth:`Verifier.signing_time` proves when the signature existed (a
:class:`~opkey.verification.signing_time.SigningTime`); the PK token's expiry policy is then
evaluated at that time instead of ``at``, and the signature must have been made while the ID
token was valid (:func:`~opkey.verification.signing_time.check_signing_time`). Both happen in
:meth:`Verifier._verified`, the one place the time rule is applied, for every kind of evidence.

Transparency log entries the evidence carries (a bundle's ``tlogEntries``, an image layer's
``dev.opkey/tlog``) are checked in :meth:`Verifier.prove`, beside the timestamps: an entry of
a log the trust pins must verify offline under that log (``spec/transparency-log.md`` §5) and
record exactly this signature, key and PK token (§9); an entry of another log is skipped. A
verified Rekor v1 entry's signed integrated time is a proven signing time like a timestamp's,
and the earliest of all of them is the one the time rule uses
(:func:`~opkey.verification.signing_time.earliest_proof`).

Verified PK tokens are cached (bounded LRU, keyed by PK token hash and issuer configuration):
many signatures from one CI run then cost one OP/GQ verification. A cache hit still re-checks
that the provider key is trusted and re-applies the time rule. Verified timestamps are cached
too (bounded LRU, keyed by the SHA-256 of the token's DER and of the stamped signature).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from opkey.artifact import artifact_statement, parse_artifact_statement
from opkey.errors import (
    ConfigError,
    DeadlineError,
    KeyNotFoundError,
    OpkeyError,
    SignatureError,
    TimestampError,
    TransparencyLogError,
    UntrustedTimestampError,
)
from opkey.expiry import ExpiryPolicy, timestamp, utc_datetime
from opkey.issuers import IssuerConfig
from opkey.jose import CompactJWS
from opkey.jwks.sources import FallbackKeys, FoundKey
from opkey.keys import verify_cosign_signature
from opkey.message import OSM_TYP, verify_message
from opkey.pktoken import PKToken
from opkey.policy.signoff import Requirement
from opkey.verification.evidence import ClaimedSignature
from opkey.verification.identity import VerifiedIdentity, VerifiedMessage
from opkey.verification.signing_time import (
    SignatureProof,
    SigningTime,
    check_signing_time,
    earliest_proof,
    latest_second,
)
from opkey.verification.trust import Trust
from opkey.verification.verdict import SignatureOutcome, Verdict, decide, requirement_met
from opkey.verify import VerifiedPKToken, check_op_algorithm, op_key_id, verify_pktoken

if TYPE_CHECKING:
    from opkey.bundle import Bundle
    from opkey.digest import Digest
    from opkey.timestamp import TimestampToken, VerifiedTimestamp
    from opkey.tlog.entry import LogEntry, VerifiedLogEntry
    from opkey.tlog.log import TrustedLog
    from opkey.tlog.signature_entry import ExpectedSignature
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
    _stamps: OrderedDict[tuple[bytes, bytes], VerifiedTimestamp] = field(
        init=False, repr=False, default_factory=OrderedDict
    )

    def __post_init__(self) -> None:
        if not isinstance(self.trust, Trust):
            raise TypeError(f"Verifier needs a Trust, not {type(self.trust).__name__}")

    # -- PK tokens ------------------------------------------------------------------------

    def identify(self, pktoken: PKToken, *, at: datetime | None = None) -> VerifiedIdentity:
        """Verify a PK token under this verifier's trust as of ``at``; who it identifies."""
        return self._verified(pktoken, at, None, signature=False)[1]

    def _verified(
        self,
        pktoken: PKToken,
        at: datetime | None,
        signed_at: SigningTime | None,
        *,
        signature: bool = True,
    ) -> tuple[VerifiedPKToken, VerifiedIdentity]:
        """The PK token verified under the trust, and the time rule (``spec/time.md``).

        Without a proven signing time the expiry policy holds at ``at``; with one, at the
        latest instant it stands for, and :func:`check_signing_time` must accept it. For a
        signature (``signature``) under a trust that requires a signing time, one is needed.
        """
        when = at if at is not None else self.clock()
        now = timestamp(when)  # validates ``at`` before anything else
        if signed_at is None and signature and self.trust.require_signing_time:
            raise TimestampError(
                "no proven signing time: the signature carries no timestamp from a trusted "
                "time-stamping authority and no entry with a signed time in a pinned "
                "transparency log, and one is required"
            )
        policy_now = now if signed_at is None else latest_second(signed_at)
        policy_at = when if signed_at is None else signed_at.latest
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
            config.expiry.check(pktoken.claims, policy_now)
            verified, identity = entry.verified, entry.identity
            if identity.key_source != found.source:
                identity = _identity(entry.verified, found)
        else:
            verified = verify_pktoken(pktoken, config, found, now=policy_at)
            identity = _identity(verified, found)
            with self._lock:
                self._cache[cache_key] = _Entry(verified, verified.op_key_thumbprint, identity)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        if signed_at is not None:
            leeway = config.expiry.leeway
            # Not issued in the verifier's future either, as without a proven time.
            ExpiryPolicy.never(leeway=leeway).check(pktoken.claims, now)
            check_signing_time(pktoken.claims, signed_at, at=when, leeway=leeway)
            identity = dataclasses.replace(identity, signed_at=signed_at)
        return verified, identity

    # -- signing time ---------------------------------------------------------------------

    def signing_time(
        self, signature: bytes, tokens: Sequence[TimestampToken | bytes]
    ) -> SigningTime | None:
        """The signing time ``tokens`` (RFC 3161) prove for ``signature``: :meth:`prove`
        with no log entries."""
        return self.prove(signature, tokens).signed_at

    def prove(
        self,
        signature: bytes,
        tokens: Sequence[TimestampToken | bytes],
        entries: Sequence[LogEntry] = (),
        expected: ExpectedSignature | None = None,
    ) -> SignatureProof:
        """What ``tokens`` (RFC 3161, DER or parsed) and log ``entries`` prove for a signature.

        ``signature`` is the raw signature bytes the tokens stamp (``spec/timestamps.md`` §1).
        Each token is verified against the trust's authorities only: one signed by none of them
        is skipped (a signer may ask authorities this verifier does not trust); one that names
        a trusted authority but does not verify rejects the signature (:class:`TimestampError`),
        as does a malformed one (:class:`~opkey.errors.FormatError`).

        Each entry of a pinned log must verify under it and record ``expected`` (the signed
        bytes, the DER signature and the PK token), else :class:`TransparencyLogError`; an
        entry of a log the trust does not pin is skipped. Without a verified entry, a trust
        that requires one raises :class:`TransparencyLogError`.

        Of the signing times proven (verified tokens, verified entries with a signed time),
        the one whose interval ends first is the proof: the signature existed by then. None
        proven, under a trust that requires a signing time: :class:`TimestampError`.
        """
        proofs: list[SigningTime] = []
        skipped: list[str] = []
        authorities = self.trust.timestamp_authorities
        if not authorities and tokens:
            # Nothing can be proven, but a malformed token is still a malformed signature:
            # parse strictly whatever is carried.
            from opkey.timestamp import TimestampToken

            for token in tokens:
                if isinstance(token, bytes):
                    TimestampToken.from_der(token)
        else:
            for index, token in enumerate(tokens):
                try:
                    stamp = self._verified_timestamp(token, signature)
                except UntrustedTimestampError as exc:
                    skipped.append(f"timestamp {index}: {exc.message}")
                else:
                    proofs.append(SigningTime.from_timestamp(stamp))
        logged = self._log_entries(entries, expected, skipped)
        proofs.extend(
            SigningTime.from_log_entry(entry) for entry in logged if entry.integrated_time
        )
        signed_at = earliest_proof(proofs)
        if signed_at is None and self.trust.require_signing_time:
            reason = "; ".join(skipped) if skipped else "the signature carries no timestamp"
            if not skipped and logged:
                reason = "its log entries carry no signed time (Rekor v2 signs none)"
            raise TimestampError(
                f"no proven signing time, and one is required: {reason}",
                expected=[a.root_sha256 for a in authorities]
                + [log.log_id.hex() for log in self.trust.transparency_logs],
                found=len(tokens) + len(entries),
            )
        return SignatureProof(signed_at, logged)

    def _trusted_log(self, log_id: bytes) -> TrustedLog | None:
        for log in self.trust.transparency_logs:
            if log.log_id == log_id:
                return log
        return None

    def _log_entries(
        self,
        entries: Sequence[LogEntry],
        expected: ExpectedSignature | None,
        skipped: list[str],
    ) -> tuple[VerifiedLogEntry, ...]:
        """The entries of pinned logs, each verified and checked to record ``expected``."""
        verified: list[VerifiedLogEntry] = []
        if entries:
            from opkey.tlog.entry import verify_log_entry
            from opkey.tlog.signature_entry import check_entry_for

            for index, entry in enumerate(entries):
                log = self._trusted_log(entry.log_id)
                if log is None:
                    skipped.append(
                        f"log entry {index}: from log {entry.log_id.hex()[:16]}…, which is not "
                        f"pinned ({self._pinned_logs()})"
                    )
                    continue
                if expected is None:
                    raise TransparencyLogError(
                        f"log entry {index} is for a signature opkey does not log (only ES256 "
                        "signatures are logged)"
                    )
                checked = verify_log_entry(entry, log)
                check_entry_for(entry.body, expected)
                verified.append(checked)
        if not verified and self.trust.require_tlog:
            reason = "; ".join(skipped) if skipped else "the signature carries no log entry"
            raise TransparencyLogError(
                f"no entry in a pinned transparency log, and one is required: {reason}",
                expected=[log.origin for log in self.trust.transparency_logs],
                found=len(entries),
            )
        return tuple(verified)

    def _pinned_logs(self) -> str:
        """The pinned logs as a reader can tell them apart: a wrong origin on Rekor v2 and a
        wrong key both give another log id, so both are shown."""
        logs = self.trust.transparency_logs
        if not logs:
            return "no log is pinned"
        return "pinned: " + ", ".join(f"{log.origin!r} id {log.log_id.hex()[:16]}…" for log in logs)

    def _verified_timestamp(
        self, token: TimestampToken | bytes, signature: bytes
    ) -> VerifiedTimestamp:
        from opkey.timestamp import TimestampToken, verify_timestamp

        der = token if isinstance(token, bytes) else token.der
        key = (hashlib.sha256(der).digest(), hashlib.sha256(signature).digest())
        with self._lock:
            stamp = self._stamps.get(key)
            if stamp is not None:
                self._stamps.move_to_end(key)
                return stamp
        parsed = token if isinstance(token, TimestampToken) else TimestampToken.from_der(der)
        stamp = verify_timestamp(parsed, signature, self.trust.timestamp_authorities)
        with self._lock:
            self._stamps[key] = stamp
            while len(self._stamps) > self.cache_size:
                self._stamps.popitem(last=False)
        return stamp

    # -- signed messages ------------------------------------------------------------------

    def verify_message(
        self,
        pktoken: PKToken,
        signature: str | CompactJWS,
        *,
        policy: ClaimsPolicy,
        at: datetime | None = None,
        typ: str = OSM_TYP,
        signed_at: SigningTime | None = None,
    ) -> VerifiedMessage:
        """Verify an OSM made with ``pktoken``'s key and apply ``policy`` to its signer.

        ``signature`` is the compact OSM, or the same already parsed by
        :func:`~opkey.jose.parse_compact`; ``signed_at`` a signing time
        :meth:`signing_time` proved for it.
        """
        _require_policy(policy)
        message = self.open_message(pktoken, signature, at=at, typ=typ, signed_at=signed_at)
        policy.check(message.identity.claims)
        return message

    def open_message(
        self,
        pktoken: PKToken,
        signature: str | CompactJWS,
        *,
        at: datetime | None = None,
        typ: str = OSM_TYP,
        signed_at: SigningTime | None = None,
    ) -> VerifiedMessage:
        """Verify an OSM made with ``pktoken``'s key; who signed and what, *no policy applied*.

        For evidence that a :meth:`verdict` decides: deciding *who* is the requirement's job.
        ``signed_at`` is a signing time :meth:`signing_time` proved for this signature.
        """
        verified, identity = self._verified(pktoken, at, signed_at)
        content = verify_message(signature, pktoken, typ=typ, pktoken_hash=verified.pktoken_hash)
        return VerifiedMessage(identity, content)

    def open_bundle(
        self, bundle: Bundle, digest: Digest, *, at: datetime | None = None
    ) -> VerifiedIdentity:
        """Verify that ``bundle`` is a genuine signature of exactly ``digest``; who made it.

        The bundle's timestamps, if any, prove its signing time (:meth:`signing_time`).
        """
        jws = bundle.signature_jws
        expected = None
        if bundle.tlog_entries and jws.alg == "ES256" and len(jws.signature) == 64:
            from opkey.tlog.signature_entry import ExpectedSignature, der_signature

            expected = ExpectedSignature(
                jws.signing_input, der_signature(jws.signature), bundle.pktoken
            )
        proof = self.prove(jws.signature, bundle.timestamps, bundle.tlog_entries, expected)
        message = self.open_message(bundle.pktoken, jws, at=at, signed_at=proof.signed_at)
        if message.content != artifact_statement(digest):
            # Not the canonical statement for this digest: say what it signs instead (parsing
            # raises if it is no artifact statement at all).
            signed = parse_artifact_statement(message.content)
            raise SignatureError(
                f"the bundle signs {signed}, not {digest}", expected=str(digest), found=str(signed)
            )
        if proof.log_entries:
            return dataclasses.replace(message.identity, log_entries=proof.log_entries)
        return message.identity

    def open_signature(
        self, claim: ClaimedSignature, *, at: datetime | None = None
    ) -> VerifiedIdentity:
        """Verify a signature made with a PK token's key (an image signature layer, an
        attestation); who made it, *no policy applied*.

        Its timestamps and log entries prove its time (:meth:`prove`), the OSM and the PK token
        verify under the trust (:meth:`open_message`), and the raw signature verifies over
        ``claim.signed`` under the PK token's key, as ``cosign verify --key`` checks it.
        """
        proof = self.prove(claim.signature, claim.timestamps, claim.log_entries, claim.expected)
        message = self.open_message(claim.pktoken, claim.osm, at=at, signed_at=proof.signed_at)
        try:
            verify_cosign_signature(claim.pktoken.cic_claims.upk, claim.signed, claim.signature)
        except SignatureError:
            raise SignatureError(
                f"the {claim.what} does not verify under the PK token's key"
            ) from None
        return dataclasses.replace(
            message.identity, statement=claim.statement, log_entries=proof.log_entries
        )

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
        until_met: bool = False,
    ) -> Verdict:
        """Check every piece of ``evidence`` for ``subject``, then decide ``requirement``.

        Evidence is consumed one piece at a time and only its outcome is kept, so a long or
        lazy sequence (signature layers streamed from a registry) costs little memory. The
        verdict never raises for a bad signature: it records why. Call
        :meth:`~opkey.verification.verdict.Verdict.raise_if_rejected` to turn a rejection into
        the error that explains it. ``until_met``: stop reading evidence once the requirement
        is met (the verdict then lists what was read), for a gate that needs the decision, not
        the inventory; a rejection still reads everything.
        """
        if not isinstance(requirement, Requirement):
            raise ConfigError("a requirement is required (Requirement.of(policy) for one policy)")
        if at is not None:
            timestamp(at)  # a time no token can be checked at is the caller's error, not theirs
        outcomes: list[SignatureOutcome] = []
        for index, item in enumerate(evidence):
            outcome = self._outcome(index, item, subject, at)
            outcomes.append(outcome)
            if until_met and outcome.genuine and requirement_met(requirement, outcomes):
                break
        return decide(requirement, subject, outcomes)

    def check(
        self, evidence: Evidence, subject: Digest, *, at: datetime | None = None
    ) -> VerifiedIdentity:
        """Who made this genuine signature of exactly ``subject``; raises otherwise.

        No policy is applied: deciding who must have signed is :meth:`verdict`'s.
        """
        claim = evidence.claim(subject)
        if isinstance(claim, ClaimedSignature):
            return self.open_signature(claim, at=at)
        return self.open_bundle(claim, subject, at=at)

    def _outcome(
        self, index: int, evidence: Evidence, subject: Digest, at: datetime | None
    ) -> SignatureOutcome:
        try:
            identity = self.check(evidence, subject, at=at)
        except DeadlineError:
            raise  # the whole verification's time is up: no verdict
        except OpkeyError as exc:
            # Kept without its traceback: the frames would keep the evidence (a layer's
            # payload) alive, and only the outcome is to be kept.
            exc.__traceback__ = None
            exc.__context__ = None
            return SignatureOutcome(index, evidence.label, error=exc)
        return SignatureOutcome(index, evidence.label, identity=identity)


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
