"""The gate's verdict cache: what was decided for an image's digest under one trust, for a while.

A deploy asks about the same few images again and again (every replica of a ReplicaSet, every
restart of a Job), and verifying an image costs registry round trips and signature checks. So
the gate remembers each verdict, under a key that names everything the verdict depends on and
nothing that can move:

* the image's **repository** (``registry/repository``: signatures live beside the image, so
  the same digest in another repository has other signatures, or none);
* its **digest**, never a tag (a tag can point elsewhere a second later);
* the **policy fingerprint** of :mod:`opkey.admission.policies`: a hash of the policy file
  (signers, attestations, timestamps), of the key material and time-stamping authorities it
  names or the gate's flags pin, and of those flags. A changed policy or pinned key is another
  key, so an old verdict is never reused for it.

Rules (``spec/admission.md``, "Verdict cache"):

* an image that met its requirement is remembered for ``ttl`` seconds;
* an image that a *completed* verification rejected (no signatures, wrong signer, expired
  token…) for ``negative_ttl`` seconds, much shorter: the image may be signed a moment later,
  and a deploy must not wait long for a cached "no";
* a failure that says nothing about the image (the registry or the provider unreachable, the
  deadline passed, a configuration error) is never stored: the next request tries again;
* at most ``max_entries`` entries; the least recently used goes first. Reasons are stored
  shortened, so an entry's size is bounded too.

The clock is a parameter (monotonic seconds), so the rules are tested without waiting. The
cache is safe to use from several threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from opkey.admission.response import MAX_REASON_CHARS
from opkey.digest import Digest

__all__ = [
    "DEFAULT_CACHE_ENTRIES",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_NEGATIVE_TTL",
    "CacheKey",
    "CachedVerdict",
    "VerdictCache",
]

#: Entries kept by default: far more distinct images than a large cluster runs.
DEFAULT_CACHE_ENTRIES = 100_000
#: Seconds a passed verdict is reused by default. The live keys and the archive change slowly;
#: a signature, once verified for a digest under a fixed policy, stays verified.
DEFAULT_CACHE_TTL = 600.0
#: Seconds a rejection is reused by default: long enough to absorb a crash-looping controller's
#: retries, short enough that signing an image and deploying it again is not held up.
DEFAULT_NEGATIVE_TTL = 30.0


class CacheKey(NamedTuple):
    """What a verdict depends on: repository, digest and the policy's fingerprint.

    A named tuple rather than a dataclass: a tuple of strings is not tracked by Python's cycle
    collector, so 100,000 cached verdicts add nothing to the pauses of a full collection (a
    slotted dataclass instance is tracked: a full collection then takes 50 ms instead of 12).
    """

    repository: str
    digest: Digest
    policy: str


class CachedVerdict(NamedTuple):
    """A remembered verdict: passed, or failed with ``reason``; valid until ``expires``."""

    passed: bool
    reason: str
    expires: float


class VerdictCache:
    """A bounded, expiring map from :class:`CacheKey` to :class:`CachedVerdict` (see module)."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        ttl: float = DEFAULT_CACHE_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0 or ttl < 0 or negative_ttl < 0:
            raise ValueError("cache sizes and lifetimes must not be negative")
        self.max_entries = max_entries
        self.ttl = float(ttl)
        self.negative_ttl = float(negative_ttl)
        self._clock = clock
        self._entries: OrderedDict[CacheKey, CachedVerdict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> CachedVerdict | None:
        """The unexpired verdict for ``key``, or ``None`` (an expired one is dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry.expires > self._clock():
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry
                del self._entries[key]
            self.misses += 1
            return None

    def passed(self, key: CacheKey) -> None:
        """Remember that ``key`` met its requirement (for ``ttl``)."""
        self._put(key, True, "", self.ttl)

    def rejected(self, key: CacheKey, reason: str) -> None:
        """Remember that a completed verification rejected ``key`` (for ``negative_ttl``)."""
        self._put(key, False, reason[:MAX_REASON_CHARS], self.negative_ttl)

    def _put(self, key: CacheKey, passed: bool, reason: str, lifetime: float) -> None:
        if self.max_entries == 0 or lifetime <= 0:
            return
        verdict = CachedVerdict(passed, reason, self._clock() + lifetime)
        with self._lock:
            self._entries[key] = verdict
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evictions += 1

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._entries.clear()
