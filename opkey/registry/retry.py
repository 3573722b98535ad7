"""When and how long to wait before repeating a registry request.

Registries fail transiently: they restart, sit behind load balancers that answer 502/503 while
a backend is replaced, and rate-limit with 429. A signer in CI should ride that out, but never
forever and never by hammering the registry, so:

* only 429 and 5xx answers (except 501/505, which will not change) and transport failures are
  retried; any other 4xx is the registry's final word;
* waits grow exponentially with *full jitter* (a uniform draw below the exponential bound), so
  concurrent signers that failed together do not retry together;
* ``Retry-After`` (seconds or an HTTP date) is honoured, but a wait beyond ``max_retry_after``
  or past the deadline ends the operation at once with an error that says so;
* attempts are bounded and the whole operation has a deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "parse_retry_after",
]

#: Statuses worth repeating a request for.
RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying one registry operation.

    ``max_attempts`` counts the first try. ``deadline`` (seconds) bounds the whole operation,
    waits included.
    """

    max_attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 4.0
    deadline: float = 60.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.deadline, self.max_retry_after) < 0:
            raise ValueError("retry delays and deadline must not be negative")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (1 for the first retry): full jitter."""
        bound = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return (rng or random).uniform(0, bound)


#: Longest wait a ``Retry-After`` is read as (a year): anything longer is "too long" all the same.
_MAX_RETRY_AFTER = 365 * 86_400.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (at most a year), or ``None`` when absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # not str.isdigit alone: "²" is a digit to it
        return float(int(text)) if len(text) <= 9 else _MAX_RETRY_AFTER
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return min(_MAX_RETRY_AFTER, max(0.0, (when - current).total_seconds()))
