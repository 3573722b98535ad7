"""RFC 9162 Merkle tree proofs (the RFC 6962 hashing every Rekor log uses), checked offline.

A transparency log commits to its entries with one root hash per tree size. Two proofs make that
commitment useful to a verifier who holds only a root:

* an **inclusion proof** shows that a leaf sits at a given index of the tree of a given size;
* a **consistency proof** shows that the tree of an older size is a prefix of the newer tree,
  so the log never rewrote what it had already shown (what a monitor checks between two
  checkpoints it has seen).

Hashing follows RFC 6962 §2.1: a leaf hash is ``SHA-256(0x00 || entry)``, an interior node
``SHA-256(0x01 || left || right)``; the domain bytes keep a leaf from passing for a node. The
verification loops are RFC 9162 §2.1.3.2 and §2.1.4.2, step by step. Sizes and indexes are
bounded to ``2**63 - 1`` (what Rekor's signed integers can carry); every hash must be exactly
32 bytes, and a proof longer than a tree of that size can need is rejected before any hashing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from opkey.errors import FormatError, TransparencyLogError

__all__ = [
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "CompactRange",
    "ConsistencyProof",
    "InclusionProof",
    "leaf_hash",
    "node_hash",
]

#: Length of every hash in the tree (SHA-256).
HASH_SIZE = 32
#: Largest tree size (and so index + 1) accepted: Rekor carries sizes in signed 64-bit integers.
MAX_TREE_SIZE = 2**63 - 1
# A tree of at most 2**63 leaves has height 63: an inclusion path has at most 63 hashes and a
# consistency path at most 2 * 63.
_MAX_INCLUSION_HASHES = 63
_MAX_CONSISTENCY_HASHES = 126

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """The RFC 6962 hash of a leaf: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _check_size(value: object, what: str, *, minimum: int = 0) -> int:
    # bool is an int subclass; a JSON ``true`` must not pass for a tree size of 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise FormatError(f"{what}: expected an integer, found {type(value).__name__}")
    if not minimum <= value <= MAX_TREE_SIZE:
        raise FormatError(
            f"{what}: {value} is outside {minimum}..2**63-1", expected=minimum, found=value
        )
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise FormatError(f"{what}: expected bytes, found {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise FormatError(
            f"{what}: a hash is {HASH_SIZE} bytes, found {len(value)}",
            expected=HASH_SIZE,
            found=len(value),
        )
    return value


def _check_path(hashes: object, limit: int, what: str) -> tuple[bytes, ...]:
    if not isinstance(hashes, tuple):
        raise FormatError(f"{what}: expected a tuple of hashes, found {type(hashes).__name__}")
    if len(hashes) > limit:
        raise FormatError(
            f"{what}: {len(hashes)} hashes, more than a 2**63-leaf tree needs ({limit})",
            expected=limit,
            found=len(hashes),
        )
    for i, item in enumerate(hashes):
        _check_hash(item, f"{what}[{i}]")
    return hashes


def _walk(
    fn: int, sn: int, path: Sequence[bytes], count: int, what: str
) -> Iterator[tuple[bytes, bool]]:
    """Each hash of a proof path with whether it is a left sibling (hashed before the value
    so far), for the node numbers ``fn`` and ``sn`` (RFC 9162 §2.1.3.2 and §2.1.4.2 walk them
    alike). A path longer or shorter than the tree needs raises :class:`TransparencyLogError`
    (``count`` hashes in the proof as received, named in ``what``'s message)."""
    for hash_ in path:
        if sn == 0:
            raise TransparencyLogError(f"{what}: {count} hashes is too many")
        left = bool(fn & 1) or fn == sn
        if left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        yield hash_, left
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise TransparencyLogError(f"{what}: {count} hashes is too few")


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """An audit path from the leaf at ``index`` to the root of the tree of ``tree_size`` leaves.

    ``hashes`` are the sibling hashes from the leaf upwards (RFC 9162 §2.1.3.1), as a Rekor log
    returns them. Constructing one validates its shape; :meth:`root_for` and :meth:`verify` do
    the hashing.
    """

    index: int
    tree_size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_size(self.index, "inclusion proof index")
        _check_size(self.tree_size, "inclusion proof tree size", minimum=1)
        _check_path(self.hashes, _MAX_INCLUSION_HASHES, "inclusion proof")
        if self.index >= self.tree_size:
            raise FormatError(
                f"inclusion proof: index {self.index} is not below the tree size {self.tree_size}",
                expected=f"< {self.tree_size}",
                found=self.index,
            )

    def root_for(self, leaf: bytes) -> bytes:
        """The root hash this proof yields for ``leaf`` (a leaf *hash*, see :func:`leaf_hash`).

        Raises :class:`TransparencyLogError` when the path has the wrong length for the index
        and size: such a proof proves nothing, whatever root it is compared with.
        """
        _check_hash(leaf, "leaf hash")
        # RFC 9162 §2.1.3.2, steps 2 to 5.
        r = leaf
        what = f"inclusion proof for index {self.index} of {self.tree_size}"
        for p, left in _walk(self.index, self.tree_size - 1, self.hashes, len(self.hashes), what):
            r = node_hash(p, r) if left else node_hash(r, p)
        return r

    def verify(self, leaf: bytes, root: bytes) -> None:
        """Check that ``leaf`` (a leaf hash) is at :attr:`index` of the tree whose root is
        ``root``; raises :class:`TransparencyLogError` otherwise."""
        _check_hash(root, "root hash")
        if self.root_for(leaf) != root:
            raise TransparencyLogError(
                f"inclusion proof for index {self.index} of {self.tree_size} does not lead "
                "to the expected root hash",
                expected=root.hex(),
            )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size``.

    ``hashes`` are as RFC 9162 §2.1.4.1 lists them (Rekor's ``/api/v1/log/proof``). Equal sizes
    need an empty proof and equal roots; a proof from the empty tree is meaningless and is
    rejected, as transparency-dev/merkle does: a monitor starts from a checkpoint it holds.
    """

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_size(self.old_size, "consistency proof old size", minimum=1)
        _check_size(self.new_size, "consistency proof new size", minimum=1)
        _check_path(self.hashes, _MAX_CONSISTENCY_HASHES, "consistency proof")
        if self.old_size > self.new_size:
            raise FormatError(
                f"consistency proof: old size {self.old_size} is larger than new size "
                f"{self.new_size}",
                expected=f"<= {self.new_size}",
                found=self.old_size,
            )

    def verify(self, old_root: bytes, new_root: bytes) -> None:
        """Check that ``old_root`` (size :attr:`old_size`) and ``new_root`` (size
        :attr:`new_size`) are roots of one append-only log; raises
        :class:`TransparencyLogError` otherwise."""
        _check_hash(old_root, "old root hash")
        _check_hash(new_root, "new root hash")
        if self.old_size == self.new_size:
            if self.hashes:
                raise TransparencyLogError(
                    "consistency proof between equal sizes must be empty",
                    expected=0,
                    found=len(self.hashes),
                )
            if old_root != new_root:
                raise TransparencyLogError(
                    f"two different root hashes for the same tree size {self.old_size}: "
                    "the log is inconsistent",
                    expected=old_root.hex(),
                    found=new_root.hex(),
                )
            return
        if not self.hashes:
            raise TransparencyLogError(
                f"consistency proof from {self.old_size} to {self.new_size} is empty"
            )
        # RFC 9162 §2.1.4.2, steps 2 to 7.
        path = self.hashes
        if self.old_size & (self.old_size - 1) == 0:
            path = (old_root, *path)
        fn, sn = self.old_size - 1, self.new_size - 1
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = path[0]
        what = f"consistency proof from {self.old_size} to {self.new_size}"
        for c, left in _walk(fn, sn, path[1:], len(self.hashes), what):
            if left:
                fr = node_hash(c, fr)
                sr = node_hash(c, sr)
            else:
                sr = node_hash(sr, c)
        if fr != old_root:
            raise TransparencyLogError(
                f"consistency proof does not lead to the root hash of size {self.old_size}",
                expected=old_root.hex(),
                found=fr.hex(),
            )
        if sr != new_root:
            raise TransparencyLogError(
                f"consistency proof does not lead to the root hash of size {self.new_size}",
                expected=new_root.hex(),
                found=sr.hex(),
            )


@dataclass(frozen=True, slots=True)
class CompactRange:
    """The right edge of a tree: the roots of its perfect subtrees, largest first.

    With it, a monitor that reads every new leaf computes the new root itself (RFC 6962
    hashing, the tree shape of RFC 9162 §2.1.1): the leaves it read then *are* the tree the
    log signed, and the new tree extends the old one, whatever proofs the log sends. A tree of
    size ``n`` has one hash per set bit of ``n`` (at most 63).
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _check_size(self.size, "compact range size")
        hashes = _check_path(self.hashes, _MAX_INCLUSION_HASHES, "compact range")
        if len(hashes) != bin(self.size).count("1"):
            raise FormatError(
                f"compact range: a tree of size {self.size} has {bin(self.size).count('1')} "
                f"subtree hashes, found {len(hashes)}",
                expected=bin(self.size).count("1"),
                found=len(hashes),
            )
        object.__setattr__(self, "hashes", hashes)

    def append(self, leaf: bytes) -> CompactRange:
        """The range with one more leaf (a leaf *hash*) at index :attr:`size`."""
        return self.extend((leaf,))

    def extend(self, leaves: Iterable[bytes]) -> CompactRange:
        """The range with ``leaves`` (leaf hashes) appended in order."""
        hashes = list(self.hashes)
        size = self.size
        for leaf in leaves:
            _check_hash(leaf, "leaf hash")
            if size >= MAX_TREE_SIZE:
                raise FormatError("compact range: the tree is full")
            hashes.append(leaf)
            carry = size
            while carry & 1:
                right = hashes.pop()
                hashes[-1] = node_hash(hashes[-1], right)
                carry >>= 1
            size += 1
        return CompactRange(size, tuple(hashes))

    def root(self) -> bytes:
        """The tree's root hash (``SHA-256()`` of nothing for the empty tree)."""
        if not self.hashes:
            return hashlib.sha256(b"").digest()
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root
