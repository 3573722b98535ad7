"""A Merkle tree written from RFC 6962 §2.1's recursive definitions, to *make* proofs.

opkey only verifies proofs (``opkey.tlog.merkle``, which follows RFC 9162's iterative
algorithms). This independent, deliberately literal construction produces roots, audit paths
and consistency proofs for any tree, so tests can check the verifier against every index and
size pair, and benchmarks can build large trees. Subtree hashes are memoized, so a tree of a
hundred thousand leaves is built once and its proofs cost a logarithm each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["ReferenceTree"]


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two ``k`` with ``k < n`` (``n > 1``)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class ReferenceTree:
    """The Merkle tree over ``entries`` (the raw leaf data, D[0:n] in the RFC)."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self._mth = lru_cache(maxsize=None)(self._mth_uncached)

    def leaf_hash(self, index: int) -> bytes:
        """``SHA-256(0x00 || D[index])``."""
        return hashlib.sha256(b"\x00" + self.entries[index]).digest()

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]), the whole tree by default."""
        return self._mth(0, len(self.entries) if size is None else size)

    def _mth_uncached(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return self.leaf_hash(lo)
        k = _largest_power_of_two_below(n)
        return hashlib.sha256(b"\x01" + self._mth(lo, lo + k) + self._mth(lo + k, hi)).digest()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]), leaf to root."""
        return self._path(index, 0, len(self.entries) if size is None else size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _largest_power_of_two_below(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self._mth(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self._mth(lo, lo + k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size])."""
        new = len(self.entries) if new_size is None else new_size
        if old_size == new:
            return []
        return self._subproof(old_size, 0, new, complete=True)

    def _subproof(self, m: int, lo: int, hi: int, *, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self._mth(lo, hi)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete=complete), self._mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, complete=False), self._mth(lo, lo + k)]
