"""Expiry policies: how long after issuance a PK token is accepted.

A PK token outlives the ID token inside it: the ephemeral key signs *while* the ID token is
valid, but signatures are verified later, often much later. Without a trusted timestamp the
verifier cannot know when a signature was made, only when the ID token was issued (``iat``) and
until when the provider vouched for it (``exp``). The policies are OpenPubkey's:

* ``oidc``: accepted until the ID token's ``exp``;
* ``max-age`` (12h, 24h, 48h, 1w): accepted until ``iat`` + that age (OpenPubkey's default is
  24h);
* ``never``: no upper bound (for verifying long-lived artifacts; pair it with ``at=``).

Whatever the policy, a token issued in the future or not yet valid (``nbf``) is rejected, with
an explicit leeway for clock skew. ``now`` is always a parameter: the core never reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from opkey.errors import ConfigError, ExpiredError, FormatError

__all__ = [
    "DEFAULT_LEEWAY",
    "EARLIEST_TIME",
    "EXPIRY_NAMES",
    "LATEST_TIME",
    "ExpiryPolicy",
    "format_utc",
    "timestamp",
    "utc_datetime",
]

#: Clock skew tolerated on ``iat``, ``nbf`` and the expiry bound, in seconds.
DEFAULT_LEEWAY = 60
_MAX_LEEWAY = 600
_AGES = {"12h": 12 * 3600, "24h": 24 * 3600, "48h": 48 * 3600, "1w": 7 * 24 * 3600}
#: The names :meth:`ExpiryPolicy.parse` accepts (OpenPubkey's).
EXPIRY_NAMES = ("oidc", *_AGES, "never")

#: The range of times opkey works with, in seconds since the epoch: 1970-01-01T00:00:00Z to
#: 9999-12-31T23:59:59Z. Token claims outside it are refused when parsed
#: (``opkey.pktoken.MAX_TIME``), and so is a verification time (``at``) outside it: no token's
#: time lies before 1970, and ``datetime`` ends with the year 9999, so every time inside the
#: range can be shown and compared without overflowing.
EARLIEST_TIME = 0
LATEST_TIME = 253402300799
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RANGE = "1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"


def timestamp(now: datetime) -> int:
    """Seconds since the epoch of a timezone-aware ``datetime`` (rounded down).

    :class:`~opkey.errors.ConfigError` if it lies outside :data:`EARLIEST_TIME` ..
    :data:`LATEST_TIME` (``0001-01-01T00:00:00+14:00`` is a valid ``datetime`` but no time a
    token can be checked at).
    """
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    # Aware subtraction is exact and cannot overflow (a timedelta spans every datetime).
    seconds = (now - _EPOCH) // timedelta(seconds=1)
    if not EARLIEST_TIME <= seconds <= LATEST_TIME:
        raise ConfigError(
            f"time {now.isoformat()} is outside the times opkey can check ({_RANGE})",
            expected=_RANGE,
            found=now.isoformat(),
        )
    return seconds


def utc_datetime(seconds: object, *, what: str = "time") -> datetime:
    """The UTC ``datetime`` of ``seconds`` since the epoch (a token claim, a stored time).

    :class:`~opkey.errors.FormatError` unless it is an integer in the range of
    :data:`EARLIEST_TIME` .. :data:`LATEST_TIME`: never an ``OverflowError`` or ``OSError``.
    """
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not EARLIEST_TIME <= seconds <= LATEST_TIME
    ):
        raise FormatError(
            f"{what}: expected an integer time in {EARLIEST_TIME}..{LATEST_TIME} ({_RANGE}), "
            f"found {seconds!r}"[:300],
            expected=_RANGE,
            found=seconds,
        )
    return _EPOCH + timedelta(seconds=seconds)


def format_utc(seconds: int) -> str:
    """``seconds`` since the epoch as ``YYYY-MM-DDTHH:MM:SSZ``, for messages.

    Total: a value outside the range ``datetime`` can show (an ``iat`` plus a maximum age past
    the year 9999) is written as a number of seconds instead of raising.
    """
    if EARLIEST_TIME <= seconds <= LATEST_TIME:
        return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{seconds} s after 1970-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class ExpiryPolicy:
    """When a PK token stops being acceptable. Build with the class methods or :meth:`parse`."""

    kind: Literal["oidc", "max-age", "never"]
    max_age: int | None = None
    leeway: int = DEFAULT_LEEWAY

    def __post_init__(self) -> None:
        if self.kind not in ("oidc", "max-age", "never"):
            raise ConfigError(f"unknown expiry policy kind {self.kind!r}")
        if (self.kind == "max-age") != (self.max_age is not None):
            raise ConfigError("max_age is required for, and only for, the max-age policy")
        if self.max_age is not None and self.max_age <= 0:
            raise ConfigError("max_age must be positive")
        if not 0 <= self.leeway <= _MAX_LEEWAY:
            raise ConfigError(f"leeway must be between 0 and {_MAX_LEEWAY} seconds")

    @classmethod
    def oidc(cls, *, leeway: int = DEFAULT_LEEWAY) -> ExpiryPolicy:
        """Valid until the ID token's ``exp``."""
        return cls("oidc", leeway=leeway)

    @classmethod
    def max_age_of(cls, seconds: int, *, leeway: int = DEFAULT_LEEWAY) -> ExpiryPolicy:
        """Valid until ``iat + seconds``."""
        return cls("max-age", max_age=seconds, leeway=leeway)

    @classmethod
    def never(cls, *, leeway: int = DEFAULT_LEEWAY) -> ExpiryPolicy:
        """No upper bound."""
        return cls("never", leeway=leeway)

    @classmethod
    def parse(cls, text: str, *, leeway: int = DEFAULT_LEEWAY) -> ExpiryPolicy:
        """``oidc``, ``12h``, ``24h``, ``48h``, ``1w`` or ``never`` (OpenPubkey's names)."""
        if text == "oidc":
            return cls.oidc(leeway=leeway)
        if text == "never":
            return cls.never(leeway=leeway)
        if text in _AGES:
            return cls.max_age_of(_AGES[text], leeway=leeway)
        raise ConfigError(
            f"unknown expiry policy {text!r}; use oidc, 12h, 24h, 48h, 1w or never", found=text
        )

    def __str__(self) -> str:
        if self.kind != "max-age":
            return self.kind
        for name, seconds in _AGES.items():
            if seconds == self.max_age:
                return name
        return f"max-age {self.max_age}s"

    def check(self, claims: Mapping[str, Any], now: int) -> None:
        """Raise :class:`ExpiredError` unless the claims are acceptable at ``now``."""
        iat: int = claims["iat"]
        exp: int = claims["exp"]
        if iat > now + self.leeway:
            raise ExpiredError(
                f"token issued in the future (iat {format_utc(iat)}, now {format_utc(now)})",
                expected=f"<= {format_utc(now)}",
                found=format_utc(iat),
            )
        nbf = claims.get("nbf")
        if isinstance(nbf, int) and nbf > now + self.leeway:
            raise ExpiredError(f"token not valid before {format_utc(nbf)} (now {format_utc(now)})")
        if exp < iat:
            raise ExpiredError("token expires before it was issued (exp < iat)")
        if self.kind == "oidc" and now > exp + self.leeway:
            raise ExpiredError(
                f"ID token expired at {format_utc(exp)} (now {format_utc(now)}, "
                "expiry policy oidc)",
                expected=f">= {format_utc(now)}",
                found=format_utc(exp),
            )
        if self.kind == "max-age":
            assert self.max_age is not None
            limit = iat + self.max_age
            if now > limit + self.leeway:
                raise ExpiredError(
                    f"PK token older than {self} (issued {format_utc(iat)}, "
                    f"accepted until {format_utc(limit)}, now {format_utc(now)})",
                    expected=f"<= {format_utc(limit)}",
                    found=format_utc(now),
                )
