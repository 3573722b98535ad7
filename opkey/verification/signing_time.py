"""Proven signing time: when a signature is known to have existed, and the rule that uses it.

A PK token says until when its provider vouched for the ephemeral key (``exp``); nothing in a
signature says when the key made it (``spec/time.md``). Evidence of that time comes from an
authority the *verifier* trusts: an RFC 3161 time-stamping authority (:mod:`opkey.timestamp`)
or a pinned transparency log's signed integrated time (Rekor v1's SET, :mod:`opkey.tlog`).
Whatever its source, it is one :class:`SigningTime`: the proven time, the interval it stands
for, and who vouched; :func:`earliest_proof` picks, among all the proofs a signature carries,
the one that bounds its signing time first.

:func:`check_signing_time` is the rule, applied by :class:`~opkey.verification.Verifier` in
one place for every kind of evidence. With a proven time ``T`` standing for
``[earliest, latest]``, the ID token's ``iat`` and ``exp``, the issuer's leeway ``l`` and the
verification time ``at``:

* signed while the ID token was valid: ``iat − l ≤ latest ≤ exp + l`` (a key that leaked
  after ``exp`` cannot obtain such a proof);
* the proof is not from the verifier's future: ``earliest ≤ at + l``;
* the token was not issued in the future of ``at`` either (``iat``, ``nbf`` ≤ ``at + l``),
  as without a proven time.

The issuer's expiry policy is evaluated at ``latest`` instead of ``at`` (that is the
verifier's part, :meth:`Verifier._verified <opkey.verification.verifier.Verifier>`): a
signature proven to be made while the token was fresh stays acceptable however old it gets.
Nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from opkey.errors import ExpiredError, TimestampError

if TYPE_CHECKING:
    from opkey.timestamp import VerifiedTimestamp
    from opkey.tlog.entry import VerifiedLogEntry

__all__ = [
    "SignatureProof",
    "SigningTime",
    "check_signing_time",
    "earliest_proof",
    "latest_second",
]


def _iso(moment: datetime) -> str:
    text = moment.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SigningTime:
    """A signing time an authority the verifier trusts vouched for.

    ``time`` is the time the authority stated, ``earliest``/``latest`` the interval it stands
    for (its accuracy; both equal ``time`` when it states none). ``kind`` says what kind of
    authority (``"timestamp"``: an RFC 3161 time-stamping authority; ``"tlog"``: a
    transparency log), ``authority`` names it (the TSA certificate's subject, RFC 4514; the
    log's checkpoint origin) and ``authority_id`` identifies the configured trust anchor that
    vouched for it (the lowercase hex SHA-256 of the TSA root's DER; the log ID in hex).
    """

    time: datetime
    earliest: datetime
    latest: datetime
    kind: Literal["timestamp", "tlog"]
    authority: str
    authority_id: str

    @classmethod
    def from_log_entry(cls, entry: VerifiedLogEntry) -> SigningTime:
        """The signing time a verified log entry's signed integrated time proves: the entry
        existed when the log integrated it (whole seconds, as the log signs it)."""
        if entry.integrated_time is None:
            raise ValueError("the log entry carries no signed integrated time")
        moment = datetime.fromtimestamp(entry.integrated_time, timezone.utc)
        return cls(
            time=moment,
            earliest=moment,
            latest=moment,
            kind="tlog",
            authority=entry.origin,
            authority_id=entry.log_id.hex(),
        )

    @classmethod
    def from_timestamp(cls, stamp: VerifiedTimestamp) -> SigningTime:
        """The signing time a verified RFC 3161 token proves."""
        return cls(
            time=stamp.time,
            earliest=stamp.earliest,
            latest=stamp.latest,
            kind="timestamp",
            authority=stamp.tsa_subject,
            authority_id=stamp.root_sha256,
        )

    @property
    def accuracy(self) -> timedelta:
        """Half the width of the interval: how far the stated time may be off."""
        return self.latest - self.time

    def stated(self) -> str:
        """``2026-01-02T03:04:05Z (± 1 s)``: the time and its accuracy, for people."""
        seconds = self.accuracy.total_seconds()
        return f"{_iso(self.time)} (± {seconds:g} s)" if seconds else _iso(self.time)

    def describe(self) -> str:
        """``2026-01-02T03:04:05Z (± 1 s), timestamp by CN=…``: for people."""
        return f"{self.stated()}, {self.kind} by {self.authority}"

    def to_dict(self) -> dict[str, str]:
        """The JSON form ``opkey verify --json`` reports (times in RFC 3339, UTC)."""
        return {
            "time": _iso(self.time),
            "earliest": _iso(self.earliest),
            "latest": _iso(self.latest),
            "kind": self.kind,
            "authority": self.authority,
            "authority_id": self.authority_id,
        }


@dataclass(frozen=True)
class SignatureProof:
    """What a signature's timestamps and log entries prove: the signing time the time rule
    uses (the earliest proven, or ``None``) and the log entries that verified."""

    signed_at: SigningTime | None
    log_entries: tuple[VerifiedLogEntry, ...] = ()


def earliest_proof(proofs: Sequence[SigningTime]) -> SigningTime | None:
    """Of the signing times proven for one signature (by timestamps and log entries alike),
    the one whose interval ends first: the signature certainly existed by then. ``None``
    when there is none."""
    return min(proofs, key=lambda proof: proof.latest) if proofs else None


def latest_second(signed_at: SigningTime) -> int:
    """``signed_at.latest`` in whole epoch seconds, rounded up (the expiry policy's unit)."""
    return math.ceil(signed_at.latest.timestamp())


def check_signing_time(
    claims: Mapping[str, Any], signed_at: SigningTime, *, at: datetime, leeway: int
) -> None:
    """Raise unless ``signed_at`` shows the signature was made while the ID token was valid.

    ``claims`` are the verified ID token claims (``iat``, ``exp``, optional ``nbf``), ``at``
    the verification time and ``leeway`` the issuer's clock-skew allowance in seconds. See the
    module documentation for the rule. Signed after ``exp`` or before ``iat``:
    :class:`ExpiredError`; a proof from the verifier's future: :class:`TimestampError`.
    """
    margin = timedelta(seconds=leeway)
    iat = datetime.fromtimestamp(claims["iat"], timezone.utc)
    exp = datetime.fromtimestamp(claims["exp"], timezone.utc)
    by = (
        f"the {signed_at.kind} by {signed_at.authority}"
        if signed_at.kind == "timestamp"
        else f"the integrated time of transparency log {signed_at.authority}"
    )
    if signed_at.latest > exp + margin:
        raise ExpiredError(
            f"signed after the ID token expired: {by} proves {signed_at.stated()}, the ID "
            f"token expired at {_iso(exp)} (leeway {leeway} s)",
            expected=f"<= {_iso(exp + margin)}",
            found=_iso(signed_at.latest),
        )
    if signed_at.latest < iat - margin:
        raise ExpiredError(
            f"{by} ({_iso(signed_at.time)}) predates the ID token, issued at {_iso(iat)} "
            f"(leeway {leeway} s)",
            expected=f">= {_iso(iat - margin)}",
            found=_iso(signed_at.latest),
        )
    if signed_at.earliest > at + margin:
        raise TimestampError(
            f"{by} ({_iso(signed_at.time)}) lies after the verification time {_iso(at)}",
            expected=f"<= {_iso(at + margin)}",
            found=_iso(signed_at.earliest),
        )
