"""The verdict cache's rules: lifetimes, the bound, what a key holds."""

from __future__ import annotations

import pytest

from opkey import Digest
from opkey.admission.cache import CacheKey, VerdictCache
from opkey.admission.response import MAX_REASON_CHARS
from tests.helpers import FakeClock

DIGEST = "sha256:" + "ab" * 32


def key(n: int = 0, policy: str = "p1", repository: str = "ghcr.io/acme/app") -> CacheKey:
    return CacheKey(repository, Digest(f"sha256:{n:064x}"), policy)


def test_a_pass_lives_for_the_ttl_and_a_rejection_for_the_negative_ttl() -> None:
    clock = FakeClock()
    cache = VerdictCache(ttl=600, negative_ttl=30, clock=clock)
    cache.passed(key(1))
    cache.rejected(key(2), "no signatures")
    clock.advance(29)
    assert cache.get(key(1)) is not None
    rejected = cache.get(key(2))
    assert rejected is not None
    assert (rejected.passed, rejected.reason) == (False, "no signatures")
    clock.advance(2)
    assert cache.get(key(2)) is None, "a rejection is forgotten after 30 s"
    passed = cache.get(key(1))
    assert passed is not None
    assert passed.passed
    clock.advance(570)
    assert cache.get(key(1)) is None, "a pass is forgotten after 600 s"
    assert len(cache) == 0


def test_the_bound_drops_the_least_recently_used() -> None:
    cache = VerdictCache(max_entries=3)
    for n in range(3):
        cache.passed(key(n))
    assert cache.get(key(0)) is not None  # used: now the most recent
    cache.passed(key(3))
    assert len(cache) == 3
    assert cache.get(key(1)) is None
    assert all(cache.get(key(n)) is not None for n in (0, 2, 3))
    assert cache.evictions == 1


def test_every_part_of_the_key_matters() -> None:
    cache = VerdictCache()
    cache.passed(key(1))
    assert cache.get(key(1)) is not None
    assert cache.get(key(1, policy="p2")) is None, "another policy fingerprint"
    assert cache.get(key(1, repository="ghcr.io/evil/app")) is None, "another repository"
    assert cache.get(key(2)) is None, "another digest"


def test_reasons_are_stored_bounded() -> None:
    cache = VerdictCache()
    cache.rejected(key(), "x" * 10_000)
    entry = cache.get(key())
    assert entry is not None
    assert len(entry.reason) == MAX_REASON_CHARS


def test_size_zero_or_lifetime_zero_turns_caching_off() -> None:
    off = VerdictCache(max_entries=0)
    off.passed(key())
    assert off.get(key()) is None
    no_negative = VerdictCache(negative_ttl=0)
    no_negative.rejected(key(), "no")
    assert no_negative.get(key()) is None
    no_negative.passed(key())
    assert no_negative.get(key()) is not None


def test_counts_hits_and_misses() -> None:
    cache = VerdictCache()
    assert cache.get(key()) is None
    cache.passed(key())
    assert cache.get(key()) is not None
    assert (cache.hits, cache.misses) == (1, 1)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        VerdictCache(ttl=-1)
