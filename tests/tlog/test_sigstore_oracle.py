"""sigstore-python 4.5 as an oracle for the offline checks: on the entries opkey logged in real
Rekor v1 and v2 logs, its verifier (inclusion proof, signed checkpoint, SET) agrees with
opkey's, and each tampered part is rejected by both.

sigstore-python is a test dependency only; the functions used (``TransparencyLogEntry._verify``
and its keyring) are internal to that version, which is pinned."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.trust import Keyring, RekorKeyring
from sigstore.models import TransparencyLogEntry as SigstoreEntry
from sigstore_models.common import v1 as common_v1
from sigstore_models.rekor.v1 import TransparencyLogEntry as SigstoreEntryMessage

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import (
    LogEntry,
    SignedCheckpoint,
    TrustedLog,
    entry_from_transparency_log_entry,
    load_log_public_key,
    verify_log_entry,
)
from opkey.tlog.note import NoteSignature
from opkey.tlog.rekor import transparency_log_entry

DATA = json.loads(
    (Path(__file__).parents[1] / "data" / "tlog" / "logged-signatures.json").read_text()
)


def _log(version: str) -> TrustedLog:
    pin = DATA[version]["log"]
    return TrustedLog.pinned(pin["origin"], load_log_public_key(pin["public_key_pem"].encode()))


def _keyring(log: TrustedLog) -> RekorKeyring:
    key = log.key.public_key
    details = (
        "PKIX_ECDSA_P256_SHA_256" if isinstance(key, ec.EllipticCurvePublicKey) else "PKIX_ED25519"
    )
    raw = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # The models read protobuf JSON: bytes as base64 text.
    document = {"rawBytes": base64.b64encode(raw).decode(), "keyDetails": details}
    return RekorKeyring(Keyring([common_v1.PublicKey.from_json(json.dumps(document))]))


def _sigstore_accepts(entry: LogEntry, log: TrustedLog) -> bool:
    document = json.dumps(transparency_log_entry(entry))
    try:
        SigstoreEntry(SigstoreEntryMessage.from_json(document))._verify(_keyring(log))
    except Exception:
        return False
    return True


def _opkey_accepts(entry: LogEntry, log: TrustedLog) -> bool:
    try:
        verify_log_entry(entry, log)
    except (TransparencyLogError, FormatError):
        return False
    return True


def _entries(version: str) -> list[LogEntry]:
    bundle_entry = DATA[version]["bundle"]["tlogEntries"][0]
    layer_entry = json.loads(DATA[version]["layer"]["annotations"]["dev.opkey/tlog"])
    return [entry_from_transparency_log_entry(e) for e in (bundle_entry, layer_entry)]


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _resigned(entry: LogEntry, signature: bytes) -> LogEntry:
    note = entry.checkpoint.note
    line = note.signatures[0]
    other = NoteSignature(line.name, line.key_id, signature)
    text = (
        f"{note.text}\n— {other.name} {base64.b64encode(other.key_id + other.signature).decode()}\n"
    )
    return dataclasses.replace(entry, checkpoint=SignedCheckpoint.parse(text))


def _proof_hash_flipped(entry: LogEntry, index: int) -> Callable[[], LogEntry]:
    proof = entry.inclusion_proof
    hashes = tuple(_flip(h) if j == index else h for j, h in enumerate(proof.hashes))
    return lambda: dataclasses.replace(
        entry, inclusion_proof=dataclasses.replace(proof, hashes=hashes)
    )


def _tampers(entry: LogEntry) -> dict[str, Callable[[], LogEntry]]:
    proof = entry.inclusion_proof
    tampers: dict[str, Callable[[], LogEntry]] = {
        "root hash": lambda: dataclasses.replace(entry, root_hash=_flip(entry.root_hash)),
        # Still the same JSON, other bytes: the leaf is the bytes.
        "body": lambda: dataclasses.replace(entry, body=b" " + entry.body),
        "checkpoint signature": lambda: _resigned(
            entry, _flip(entry.checkpoint.note.signatures[0].signature, 9)
        ),
    }
    if proof.index ^ 1 < proof.tree_size:
        tampers["entry index"] = lambda: dataclasses.replace(
            entry,
            log_index=entry.log_index ^ 1,
            inclusion_proof=dataclasses.replace(proof, index=proof.index ^ 1),
        )
    for i in range(len(proof.hashes)):
        tampers[f"proof hash {i}"] = _proof_hash_flipped(entry, i)
    if entry.signed_entry_timestamp is not None:
        tampers["signed entry timestamp"] = lambda: dataclasses.replace(
            entry, signed_entry_timestamp=_flip(entry.signed_entry_timestamp or b"", 7)
        )
        tampers["integrated time"] = lambda: dataclasses.replace(
            entry, integrated_time=(entry.integrated_time or 0) + 1
        )
    return tampers


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_sigstore_and_opkey_agree_on_real_entries_and_their_tampers(version: str) -> None:
    log = _log(version)
    for entry in _entries(version):
        assert entry.inclusion_proof.hashes, "recorded in a tree of several entries"
        assert _opkey_accepts(entry, log)
        assert _sigstore_accepts(entry, log)
        for name, tamper in _tampers(entry).items():
            tampered = tamper()
            assert not _opkey_accepts(tampered, log), name
            assert not _sigstore_accepts(tampered, log), name


def test_sigstore_rejects_what_opkey_rejects_under_another_key() -> None:
    log = _log("v1")
    other = TrustedLog.pinned(log.origin, ec.generate_private_key(ec.SECP256R1()).public_key())
    (entry, _) = _entries("v1")
    assert not _sigstore_accepts(entry, other)
    assert not _opkey_accepts(entry, other)


def test_the_oracle_reads_the_same_members() -> None:
    (entry, _) = _entries("v1")
    message: Any = SigstoreEntryMessage.from_json(json.dumps(transparency_log_entry(entry)))
    assert message.log_index == entry.log_index
    assert message.canonicalized_body == entry.body
    assert message.inclusion_proof.root_hash == entry.root_hash
