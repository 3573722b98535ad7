"""RFC 9162 proof checks against public vectors and an independent RFC 6962 construction."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import ConsistencyProof, InclusionProof, leaf_hash, node_hash
from tests.tlog.reference_tree import ReferenceTree

VECTORS = json.loads((Path(__file__).parents[1] / "data/tlog/merkle-vectors.json").read_text())
# transparency-dev/merkle compares roots as opaque bytes, so a 12-byte "root" passes its
# equal-size check; opkey rejects every hash that is not 32 bytes before comparing anything.
_STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


def _b(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _outcome(check: Any) -> str:
    try:
        check()
    except FormatError:
        return "format"
    except TransparencyLogError:
        return "rejected"
    return "ok"


@pytest.mark.parametrize("vector", VECTORS["inclusion"], ids=lambda v: v["file"][9:])
def test_transparency_dev_inclusion_vectors(vector: dict[str, Any]) -> None:
    def check() -> None:
        proof = InclusionProof(
            vector["leafIdx"], vector["treeSize"], tuple(_b(h) for h in vector["proof"] or ())
        )
        proof.verify(_b(vector["leafHash"]), _b(vector["root"]))

    assert (_outcome(check) != "ok") == vector["wantErr"], vector["desc"]


@pytest.mark.parametrize("vector", VECTORS["consistency"], ids=lambda v: v["file"][9:])
def test_transparency_dev_consistency_vectors(vector: dict[str, Any]) -> None:
    def check() -> None:
        proof = ConsistencyProof(
            vector["size1"], vector["size2"], tuple(_b(h) for h in vector["proof"] or ())
        )
        proof.verify(_b(vector["root1"]), _b(vector["root2"]))

    outcome = _outcome(check)
    if vector["file"] in _STRICTER:
        assert outcome == "format"
    else:
        assert (outcome != "ok") == vector["wantErr"], vector["desc"]


def test_the_vectors_hold_both_outcomes() -> None:
    kinds = {v["wantErr"] for v in VECTORS["inclusion"] + VECTORS["consistency"]}
    assert kinds == {True, False}
    assert len(VECTORS["inclusion"]) > 90
    assert len(VECTORS["consistency"]) > 90


def test_rfc6962_hashing_has_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    # A leaf whose data is two hashes is not the node over them.
    assert leaf_hash(b"a" * 32 + b"b" * 32) != node_hash(b"a" * 32, b"b" * 32)


TREE = ReferenceTree([f"leaf {i}".encode() * (i % 4) for i in range(41)])


def test_every_inclusion_and_consistency_proof_of_small_trees_verifies() -> None:
    for size in range(1, 42):
        root = TREE.root(size)
        for index in range(size):
            proof = InclusionProof(index, size, tuple(TREE.inclusion_proof(index, size)))
            proof.verify(TREE.leaf_hash(index), root)
        for old in range(1, size + 1):
            proof2 = ConsistencyProof(old, size, tuple(TREE.consistency_proof(old, size)))
            proof2.verify(TREE.root(old), root)


def _flip(data: bytes, bit: int) -> bytes:
    return data[: bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1 :]


@settings(max_examples=60)
@given(size=st.integers(2, 41), data=st.data())
def test_any_changed_part_of_an_inclusion_proof_is_rejected(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    proof = InclusionProof(index, size, tuple(TREE.inclusion_proof(index, size)))
    leaf, root = TREE.leaf_hash(index), TREE.root(size)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(TransparencyLogError):
        proof.verify(_flip(leaf, bit), root)
    with pytest.raises(TransparencyLogError):
        proof.verify(leaf, _flip(root, bit))
    if proof.hashes:
        i = data.draw(st.integers(0, len(proof.hashes) - 1))
        hashes = list(proof.hashes)
        hashes[i] = _flip(hashes[i], bit)
        with pytest.raises(TransparencyLogError):
            dataclasses.replace(proof, hashes=tuple(hashes)).verify(leaf, root)
    other = data.draw(st.integers(0, size - 1).filter(lambda o: o != index))
    with pytest.raises(TransparencyLogError):
        dataclasses.replace(proof, index=other).verify(leaf, root)
    # A wrong tree size with a path of another length never verifies. (One of the same length
    # can: the checkpoint's signed size is what pins it, see test_entry.py.)
    for wrong in (size // 2, size * 2):
        if wrong > index and len(TREE.inclusion_proof(index, min(wrong, 41))) != len(proof.hashes):
            with pytest.raises(TransparencyLogError):
                dataclasses.replace(proof, tree_size=wrong).verify(leaf, root)


@settings(max_examples=60)
@given(new=st.integers(2, 41), data=st.data())
def test_any_changed_part_of_a_consistency_proof_is_rejected(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, new - 1))
    proof = ConsistencyProof(old, new, tuple(TREE.consistency_proof(old, new)))
    old_root, new_root = TREE.root(old), TREE.root(new)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(TransparencyLogError):
        proof.verify(_flip(old_root, bit), new_root)
    with pytest.raises(TransparencyLogError):
        proof.verify(old_root, _flip(new_root, bit))
    i = data.draw(st.integers(0, len(proof.hashes) - 1))
    hashes = list(proof.hashes)
    hashes[i] = _flip(hashes[i], bit)
    with pytest.raises(TransparencyLogError):
        dataclasses.replace(proof, hashes=tuple(hashes)).verify(old_root, new_root)
    with pytest.raises(TransparencyLogError):
        dataclasses.replace(proof, hashes=proof.hashes[:-1]).verify(old_root, new_root)
    with pytest.raises(TransparencyLogError):
        dataclasses.replace(proof, hashes=(*proof.hashes, bytes(32))).verify(old_root, new_root)


def test_a_fork_is_caught_by_consistency() -> None:
    forked = ReferenceTree([*TREE.entries[:20], b"rewritten", *TREE.entries[21:]])
    proof = ConsistencyProof(25, 41, tuple(forked.consistency_proof(25, 41)))
    proof.verify(forked.root(25), forked.root(41))
    with pytest.raises(TransparencyLogError):
        proof.verify(TREE.root(25), forked.root(41))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: InclusionProof(3, 3, ()), "not below the tree size"),
        (lambda: InclusionProof(0, 0, ()), "outside 1"),
        (lambda: InclusionProof(-1, 3, ()), "outside 0"),
        (lambda: InclusionProof(True, 3, ()), "expected an integer"),
        (lambda: InclusionProof(0, 2**63, ()), "outside 1"),
        (lambda: InclusionProof(0, 4, [bytes(32)]), "tuple of hashes"),  # type: ignore[arg-type]
        (lambda: InclusionProof(0, 4, (bytes(31),)), "32 bytes"),
        (lambda: InclusionProof(0, 4, ("00" * 32,)), "expected bytes"),  # type: ignore[arg-type]
        (lambda: InclusionProof(0, 4, (bytes(32),) * 64), "more than"),
        (lambda: ConsistencyProof(0, 4, ()), "outside 1"),
        (lambda: ConsistencyProof(5, 4, ()), "larger than"),
        (lambda: ConsistencyProof(1, 4, (bytes(32),) * 127), "more than"),
    ],
)
def test_malformed_proofs_are_format_errors(build: Any, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        build()


def test_hashes_given_to_verify_are_checked() -> None:
    proof = InclusionProof(0, 1, ())
    with pytest.raises(FormatError):
        proof.verify(bytes(31), bytes(32))
    with pytest.raises(FormatError):
        proof.verify(bytes(32), b"")
    with pytest.raises(FormatError):
        ConsistencyProof(1, 1, ()).verify(bytes(32), bytes(33))


def test_equal_sizes_need_equal_roots_and_an_empty_proof() -> None:
    root = TREE.root(7)
    ConsistencyProof(7, 7, ()).verify(root, root)
    with pytest.raises(TransparencyLogError, match="same tree size"):
        ConsistencyProof(7, 7, ()).verify(root, TREE.root(8))
    with pytest.raises(TransparencyLogError, match="must be empty"):
        ConsistencyProof(7, 7, (root,)).verify(root, root)
    with pytest.raises(TransparencyLogError, match="is empty"):
        ConsistencyProof(7, 8, ()).verify(root, TREE.root(8))


def test_a_large_tree() -> None:
    tree = ReferenceTree([i.to_bytes(4, "big") for i in range(5000)])
    for index in (0, 1, 2047, 2048, 4095, 4096, 4999):
        InclusionProof(index, 5000, tuple(tree.inclusion_proof(index))).verify(
            tree.leaf_hash(index), tree.root()
        )
    ConsistencyProof(4096, 5000, tuple(tree.consistency_proof(4096))).verify(
        tree.root(4096), tree.root()
    )
