"""verify_log_entry on logs built here: both key types, both Rekor flavours, value checks."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import (
    Checkpoint,
    InclusionProof,
    LogEntry,
    SignedCheckpoint,
    SignedEntryTimestamp,
    TrustedLog,
    verify_log_entry,
)
from tests.tlog.reference_tree import ReferenceTree

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _sign(key: PrivateKey, message: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def _entry(log: TrustedLog, key: PrivateKey, index: int = 3, size: int = 7) -> LogEntry:
    bodies = [f'{{"entry":{i}}}'.encode() for i in range(size)]
    tree = ReferenceTree(bodies)
    body = Checkpoint(log.origin, size, tree.root()).text()
    line = base64.b64encode(log.key.key_id + _sign(key, body.encode())).decode()
    checkpoint = SignedCheckpoint.parse(f"{body}\n— {log.key.name} {line}\n")
    set_ = None
    if log.signs_entry_timestamps:
        unsigned = SignedEntryTimestamp(bodies[index], 1_800_000_000, log.log_id, index, b"-")
        set_ = _sign(key, unsigned.payload())
    return LogEntry(
        body=bodies[index],
        log_index=index,
        log_id=log.log_id,
        inclusion_proof=InclusionProof(index, size, tuple(tree.inclusion_proof(index))),
        root_hash=tree.root(),
        checkpoint=checkpoint,
        integrated_time=1_800_000_000 if set_ else None,
        signed_entry_timestamp=set_,
    )


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_log_of_each_kind_and_key_type(kind: str, version: str) -> None:
    key: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "ecdsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    log = (
        TrustedLog.rekor_v1("log.example", 42, key.public_key())
        if version == "v1"
        else TrustedLog.rekor_v2("log.example", key.public_key())
    )
    entry = _entry(log, key)
    verified = verify_log_entry(entry, log)
    assert verified.log_index == 3
    assert verified.origin == ("log.example - 42" if version == "v1" else "log.example")
    assert verified.integrated_time == (1_800_000_000 if version == "v1" else None)
    assert verified.checkpoint.tree_size == 7


def test_a_v1_log_signs_with_its_hostname_and_checks_the_tree_id() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    log = TrustedLog.rekor_v1("log.example", 42, key.public_key())
    assert log.key.name == "log.example"
    entry = _entry(log, key)
    other_tree = TrustedLog.rekor_v1("log.example", 43, key.public_key())
    with pytest.raises(TransparencyLogError, match="origin"):
        verify_log_entry(entry, other_tree)


def test_a_proof_for_another_tree_size_is_rejected() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    log = TrustedLog.rekor_v2("log.example", key.public_key())
    entry = _entry(log, key, index=0, size=3)
    # Index 0 of 3 and of 4 share a path shape; only the signed size tells them apart.
    bumped = dataclasses.replace(
        entry, inclusion_proof=dataclasses.replace(entry.inclusion_proof, tree_size=4)
    )
    with pytest.raises(TransparencyLogError, match="tree size 4"):
        verify_log_entry(bumped, log)


def test_entry_values_are_checked() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    entry = _entry(TrustedLog.rekor_v2("l", key.public_key()), key)
    for change, message in (
        ({"body": b""}, "non-empty"),
        ({"body": b"x" * (256 * 1024 + 1)}, "more than"),
        ({"log_id": bytes(31)}, "32 bytes"),
        ({"root_hash": bytes(33)}, "32 bytes"),
        ({"log_index": -1}, "outside"),
        ({"signed_entry_timestamp": b"sig"}, "needs its integrated time"),
        ({"integrated_time": True}, "integer"),
    ):
        with pytest.raises(FormatError, match=message):
            dataclasses.replace(entry, **change)
    note_key = TrustedLog.rekor_v2("l", key.public_key()).key
    with pytest.raises(FormatError, match="one non-empty line"):
        TrustedLog("two\nlines", note_key, signs_entry_timestamps=False)
    with pytest.raises(FormatError, match="space"):
        TrustedLog.rekor_v2("has space", key.public_key())
    with pytest.raises(FormatError, match="outside 1"):
        TrustedLog.rekor_v1("l", 0, key.public_key())
