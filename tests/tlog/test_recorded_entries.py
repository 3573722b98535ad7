"""Real Rekor answers, recorded once (tests/data/tlog/SOURCES.md), checked offline: parsing,
the SET's canonical bytes, inclusion, consistency; and strict parsing of every member used."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import (
    ConsistencyProof,
    SignedCheckpoint,
    SignedEntryTimestamp,
    TrustedLog,
    entry_from_rekor_v1,
    entry_from_transparency_log_entry,
    load_log_public_key,
    rekor_v1_log_id,
    verify_log_entry,
)
from opkey.tlog.entry_timestamp import MAX_JCS_INTEGER

DATA = Path(__file__).parents[1] / "data" / "tlog"
V1 = json.loads((DATA / "rekor-v1-entry.json").read_text())
V2 = json.loads((DATA / "rekor-v2-entry.json").read_text())


def v1_log() -> TrustedLog:
    key = load_log_public_key(V1["public_key_pem"].encode())
    return TrustedLog.rekor_v1(V1["hostname"], V1["tree_id"], key)


def v2_log() -> TrustedLog:
    return TrustedLog.rekor_v2(V2["origin"], load_log_public_key(V2["public_key_pem"].encode()))


def test_the_recorded_v1_entry_verifies_with_its_time() -> None:
    entry = entry_from_rekor_v1(V1["entry"])
    (value,) = V1["entry"].values()
    verified = verify_log_entry(entry, v1_log())
    assert verified.integrated_time == value["integratedTime"]
    assert entry.log_id == rekor_v1_log_id(v1_log().key.public_key) == bytes.fromhex(value["logID"])
    assert len(entry.inclusion_proof.hashes) == 4


def test_the_recorded_v2_entry_verifies_without_time() -> None:
    verified = verify_log_entry(entry_from_transparency_log_entry(V2["entry"]), v2_log())
    assert verified.integrated_time is None
    published = SignedCheckpoint.parse(V2["published_checkpoint"])
    assert published.verify([v2_log().key], origin=V2["origin"]).tree_size >= 7


def test_the_set_payload_is_the_canonical_json_rekor_signed() -> None:
    (value,) = V1["entry"].values()
    entry = entry_from_rekor_v1(V1["entry"])
    assert entry.signed_entry_timestamp is not None
    set_ = SignedEntryTimestamp(
        body=entry.body,
        integrated_time=value["integratedTime"],
        log_id=entry.log_id,
        log_index=entry.log_index,
        signature=entry.signed_entry_timestamp,
    )
    # RFC 8785 of these four members is sorted, compact JSON (ASCII strings, small integers).
    reference = json.dumps(
        {k: value[k] for k in ("body", "integratedTime", "logID", "logIndex")},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert set_.payload() == reference
    set_.verify(v1_log().key.public_key)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(TransparencyLogError, match="does not verify"):
        set_.verify(other)
    for change in (
        {"integrated_time": set_.integrated_time + 1},
        {"log_index": set_.log_index + 1},
        {"body": set_.body + b" "},
        {"log_id": bytes(32)},
    ):
        with pytest.raises(TransparencyLogError):
            dataclasses.replace(set_, **change).verify(v1_log().key.public_key)


def test_set_integers_beyond_2_53_are_refused() -> None:
    entry = entry_from_rekor_v1(V1["entry"])
    with pytest.raises(FormatError, match="outside"):
        SignedEntryTimestamp(entry.body, MAX_JCS_INTEGER + 1, entry.log_id, 1, b"sig")
    with pytest.raises(FormatError):
        SignedEntryTimestamp(entry.body, -1, entry.log_id, 1, b"sig")


def test_the_recorded_consistency_proof_verifies() -> None:
    log = v1_log()
    old = SignedCheckpoint.parse(V1["log_info_before"]["signedTreeHead"]).verify(
        [log.key], origin=log.origin
    )
    new = SignedCheckpoint.parse(V1["log_info_after"]["signedTreeHead"]).verify(
        [log.key], origin=log.origin
    )
    hashes = tuple(bytes.fromhex(h) for h in V1["consistency_proof"]["hashes"])
    ConsistencyProof(old.tree_size, new.tree_size, hashes).verify(old.root_hash, new.root_hash)
    with pytest.raises(TransparencyLogError):
        ConsistencyProof(old.tree_size, new.tree_size, hashes[::-1]).verify(
            old.root_hash, new.root_hash
        )


def _v1_value(doc: dict[str, Any]) -> dict[str, Any]:
    (value,) = doc.values()
    assert isinstance(value, dict)
    return value


V1_BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "body not base64": lambda d: _v1_value(d).update(body="%%%"),
    "body unpadded": lambda d: _v1_value(d).update(body=_v1_value(d)["body"].rstrip("=") + "A"),
    "logIndex negative": lambda d: _v1_value(d).update(logIndex=-1),
    "logIndex bool": lambda d: _v1_value(d).update(logIndex=True),
    "logIndex float": lambda d: _v1_value(d).update(logIndex=5.0),
    "logID upper hex": lambda d: _v1_value(d).update(logID=_v1_value(d)["logID"].upper()),
    "logID short": lambda d: _v1_value(d).update(logID=_v1_value(d)["logID"][:-2]),
    "no verification": lambda d: _v1_value(d).pop("verification"),
    "proof hash short": lambda d: _v1_value(d)["verification"]["inclusionProof"]["hashes"].append(
        "00" * 31
    ),
    "hashes not a list": lambda d: _v1_value(d)["verification"]["inclusionProof"].update(
        hashes="00"
    ),
    "checkpoint not text": lambda d: _v1_value(d)["verification"]["inclusionProof"].update(
        checkpoint=7
    ),
    "SET not base64": lambda d: _v1_value(d)["verification"].update(signedEntryTimestamp="@@"),
    "two entries": lambda d: d.update(other=_v1_value(d)),
    "uuid of another body": lambda d: d.update({"24296fb2" + "00" * 32: d.pop(next(iter(d)))}),
}


@pytest.mark.parametrize("name", sorted(V1_BREAKS))
def test_malformed_v1_answers_are_format_errors(name: str) -> None:
    doc = copy.deepcopy(V1["entry"])
    V1_BREAKS[name](doc)
    with pytest.raises(FormatError):
        entry_from_rekor_v1(doc)


V2_BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "logIndex leading zero": lambda d: d.update(logIndex="06"),
    "logIndex negative string": lambda d: d.update(logIndex="-6"),
    "treeSize huge": lambda d: d["inclusionProof"].update(treeSize=str(2**64)),
    "rootHash hex": lambda d: d["inclusionProof"].update(rootHash="00" * 32),
    "keyId missing": lambda d: d.update(logId={}),
    "no checkpoint": lambda d: d["inclusionProof"].pop("checkpoint"),
    "checkpoint garbage": lambda d: d["inclusionProof"].update(checkpoint={"envelope": "x"}),
    "body missing": lambda d: d.pop("canonicalizedBody"),
    "not an object": lambda d: d["inclusionProof"].update(hashes={"a": 1}),
}


@pytest.mark.parametrize("name", sorted(V2_BREAKS))
def test_malformed_v2_answers_are_format_errors(name: str) -> None:
    doc = copy.deepcopy(V2["entry"])
    V2_BREAKS[name](doc)
    with pytest.raises(FormatError):
        entry_from_transparency_log_entry(doc)


def test_non_objects_are_format_errors() -> None:
    values: tuple[object, ...] = (None, [], "x", 3)
    for value in values:
        with pytest.raises(FormatError):
            entry_from_rekor_v1(value)
        with pytest.raises(FormatError):
            entry_from_transparency_log_entry(value)


def test_unknown_members_are_ignored() -> None:
    doc = copy.deepcopy(V2["entry"])
    doc["somethingNew"] = {"x": 1}
    verify_log_entry(entry_from_transparency_log_entry(doc), v2_log())
