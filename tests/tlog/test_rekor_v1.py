"""Smoke tests against a real Rekor v1 (rekor-server v1.5.4 on Trillian and MariaDB).

Each proof, checkpoint and signed entry timestamp the real log returns must verify with
opkey's offline core (``opkey.tlog``), and every part of them, once tampered with, must be
rejected: the log is the oracle for the verifier, and the verifier for the log.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import (
    ConsistencyProof,
    InclusionProof,
    LogEntry,
    SignedCheckpoint,
    entry_from_rekor_v1,
    load_log_public_key,
    verify_log_entry,
)
from opkey.tlog.note import NoteSignature, SignedNote
from tests.tlog.servers import RekorV1, post_json
from tests.tlog.uploads import SignedArtifact, sign_artifact

pytestmark = pytest.mark.rekor


def _upload(rekor: RekorV1, signed: SignedArtifact, **options: bool) -> requests.Response:
    return post_json(f"{rekor.url}/api/v1/log/entries", signed.v1_request(**options))


@pytest.fixture(scope="module")
def uploaded(rekor_v1: RekorV1) -> tuple[SignedArtifact, dict[str, Any], int, int]:
    """One entry uploaded to the log: the artifact, the response and the upload's time span."""
    signed = sign_artifact(b"opkey rekor v1 smoke test artifact")
    before = int(time.time())
    response = _upload(rekor_v1, signed)
    after = int(time.time()) + 1
    assert response.status_code == 201, response.text
    return signed, response.json(), before, after


def test_the_log_serves_the_key_and_tree_it_was_started_with(rekor_v1: RekorV1) -> None:
    served = requests.get(f"{rekor_v1.url}/api/v1/log/publicKey", timeout=10)
    assert served.status_code == 200
    assert load_log_public_key(served.content) == rekor_v1.public_key
    info = requests.get(f"{rekor_v1.url}/api/v1/log", timeout=10).json()
    assert int(info["treeID"]) == rekor_v1.tree_id
    head = SignedCheckpoint.parse(info["signedTreeHead"])
    checkpoint = head.verify([rekor_v1.trusted_log.key], origin=rekor_v1.trusted_log.origin)
    assert checkpoint.tree_size == info["treeSize"]
    assert checkpoint.root_hash.hex() == info["rootHash"]
    # Rekor v1 signs with the key name <hostname>, the origin is "<hostname> - <tree ID>".
    assert [s.name for s in head.note.signatures] == [rekor_v1.hostname]
    assert checkpoint.origin == f"{rekor_v1.hostname} - {rekor_v1.tree_id}"


def test_an_upload_returns_an_entry_that_verifies_offline(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    signed, response, before, after = uploaded
    entry = entry_from_rekor_v1(response)
    verified = verify_log_entry(entry, rekor_v1.trusted_log)
    assert entry.log_id == rekor_v1.log_id
    assert verified.integrated_time is not None
    assert before <= verified.integrated_time <= after
    body = json.loads(verified.body)
    assert body["kind"] == "hashedrekord"
    assert body["spec"]["data"]["hash"]["value"] == signed.digest.hex()
    assert verified.checkpoint.tree_size > verified.log_index


def test_the_entry_read_back_by_uuid_and_by_index_verifies(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    _, response, _, _ = uploaded
    (uuid,) = response
    first = entry_from_rekor_v1(response)
    by_uuid = requests.get(f"{rekor_v1.url}/api/v1/log/entries/{uuid}", timeout=10)
    assert by_uuid.status_code == 200
    again = verify_log_entry(entry_from_rekor_v1(by_uuid.json()), rekor_v1.trusted_log)
    by_index = requests.get(
        f"{rekor_v1.url}/api/v1/log/entries", params={"logIndex": first.log_index}, timeout=10
    )
    assert by_index.status_code == 200
    indexed = verify_log_entry(entry_from_rekor_v1(by_index.json()), rekor_v1.trusted_log)
    assert again.body == indexed.body == first.body
    assert again.integrated_time == indexed.integrated_time == first.integrated_time


def test_a_duplicate_upload_is_refused_with_the_location_of_the_existing_entry(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    signed, response, _, _ = uploaded
    (uuid,) = response
    again = _upload(rekor_v1, signed)
    assert again.status_code == 409, again.text
    location = again.headers["Location"]
    assert location.endswith(f"/api/v1/log/entries/{uuid}")
    existing = requests.get(f"{rekor_v1.url}{location}", timeout=10)
    assert entry_from_rekor_v1(existing.json()).body == entry_from_rekor_v1(response).body


def test_a_bad_signature_is_refused_at_upload(rekor_v1: RekorV1) -> None:
    signed = sign_artifact()
    forged = dataclasses.replace(signed, artifact=b"other bytes than the signed ones")
    response = _upload(rekor_v1, forged)
    assert response.status_code == 400, response.text


def _search(rekor: RekorV1, query: dict[str, Any], want: str) -> list[str]:
    # Index writes run after the upload returns (best effort): poll briefly.
    deadline = time.monotonic() + 10
    while True:
        found = post_json(f"{rekor.url}/api/v1/index/retrieve", query)
        assert found.status_code == 200, found.text
        uuids: list[str] = found.json()
        if any(u.endswith(want) for u in uuids) or time.monotonic() > deadline:
            return uuids
        time.sleep(0.1)


def test_search_by_artifact_hash_and_by_key(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    signed, response, _, _ = uploaded
    (uuid,) = response
    leaf = uuid[-64:]
    by_hash = _search(rekor_v1, {"hash": f"sha256:{signed.digest.hex()}"}, leaf)
    assert any(u.endswith(leaf) for u in by_hash)
    key_query = {"publicKey": {"format": "x509", "content": _b64(signed.public_key_pem)}}
    assert any(u.endswith(leaf) for u in _search(rekor_v1, key_query, leaf))
    other = sign_artifact()
    nobody = {"publicKey": {"format": "x509", "content": _b64(other.public_key_pem)}}
    assert post_json(f"{rekor_v1.url}/api/v1/index/retrieve", nobody).json() == []


def test_a_certificate_entry_is_found_by_its_san(rekor_v1: RekorV1) -> None:
    san = "https://github.com/opkey-test/san-search/.github/workflows/release.yml@refs/heads/main"
    signed = sign_artifact(san=san)
    response = _upload(rekor_v1, signed, certificate=True)
    assert response.status_code == 201, response.text
    verify_log_entry(entry_from_rekor_v1(response.json()), rekor_v1.trusted_log)
    (uuid,) = response.json()
    assert any(u.endswith(uuid[-64:]) for u in _search(rekor_v1, {"subject": san}, uuid[-64:]))


def test_consistency_between_two_checkpoints_of_the_log(rekor_v1: RekorV1) -> None:
    old = _verified_head(rekor_v1)
    for _ in range(3):
        assert _upload(rekor_v1, sign_artifact()).status_code == 201
    new = _verified_head(rekor_v1)
    assert new.tree_size >= old.tree_size + 3
    answer = requests.get(
        f"{rekor_v1.url}/api/v1/log/proof",
        params={"firstSize": old.tree_size, "lastSize": new.tree_size},
        timeout=10,
    ).json()
    assert answer["rootHash"] == new.root_hash.hex()
    proof = ConsistencyProof(
        old.tree_size, new.tree_size, tuple(bytes.fromhex(h) for h in answer["hashes"])
    )
    proof.verify(old.root_hash, new.root_hash)
    for i in range(len(proof.hashes)):
        with pytest.raises(TransparencyLogError):
            _flip_hash(proof, i).verify(old.root_hash, new.root_hash)
    with pytest.raises(TransparencyLogError):
        proof.verify(_flip(old.root_hash), new.root_hash)
    with pytest.raises(TransparencyLogError):
        proof.verify(old.root_hash, _flip(new.root_hash))


def test_rekor_cli_verifies_what_we_uploaded(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    _, response, _, _ = uploaded
    (uuid,) = response
    result = subprocess.run(
        [str(rekor_v1.cli), "verify", f"--rekor_server={rekor_v1.url}", f"--uuid={uuid}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Inclusion Proof" in result.stdout or "inclusion" in result.stdout.lower()


# -- tampering: every part of the real evidence ------------------------------------------------


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _flip_hash(proof: ConsistencyProof, index: int) -> ConsistencyProof:
    hashes = list(proof.hashes)
    hashes[index] = _flip(hashes[index])
    return dataclasses.replace(proof, hashes=tuple(hashes))


def _verified_head(rekor: RekorV1) -> Any:
    info = requests.get(f"{rekor.url}/api/v1/log", timeout=10).json()
    head = SignedCheckpoint.parse(info["signedTreeHead"])
    return head.verify([rekor.trusted_log.key], origin=rekor.trusted_log.origin)


def _with_proof(entry: LogEntry, **changes: Any) -> LogEntry:
    return dataclasses.replace(
        entry, inclusion_proof=dataclasses.replace(entry.inclusion_proof, **changes)
    )


def _with_note(entry: LogEntry, text: str | None = None, sig: bytes | None = None) -> LogEntry:
    note = entry.checkpoint.note
    line = note.signatures[0]
    new_line = NoteSignature(line.name, line.key_id, sig if sig is not None else line.signature)
    raw = f"{text or note.text}\n— {new_line.name} " + _b64(new_line.key_id + new_line.signature)
    return dataclasses.replace(entry, checkpoint=SignedCheckpoint.parse(raw + "\n"))


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _tampers(entry: LogEntry) -> dict[str, Callable[[], LogEntry]]:
    proof = entry.inclusion_proof
    cp = entry.checkpoint.checkpoint

    def flip_proof_hash(i: int) -> Callable[[], LogEntry]:
        hashes = tuple(_flip(h) if j == i else h for j, h in enumerate(proof.hashes))
        return lambda: _with_proof(entry, hashes=hashes)

    tampers = {f"proof hash {i}": flip_proof_hash(i) for i in range(len(proof.hashes))}
    tampers |= {
        "root hash": lambda: dataclasses.replace(entry, root_hash=_flip(entry.root_hash)),
        "tree size": lambda: _with_proof(entry, tree_size=proof.tree_size + 1),
        "proof index": lambda: _with_proof(
            entry, index=proof.index + 1 if proof.index + 1 < proof.tree_size else 0
        ),
        "entry index": lambda: dataclasses.replace(entry, log_index=entry.log_index + 1),
        "body": lambda: dataclasses.replace(entry, body=entry.body.replace(b"sha256", b"sha257")),
        "log id": lambda: dataclasses.replace(entry, log_id=_flip(entry.log_id)),
        "integrated time": lambda: dataclasses.replace(
            entry, integrated_time=(entry.integrated_time or 0) + 1
        ),
        "signed entry timestamp": lambda: dataclasses.replace(
            entry, signed_entry_timestamp=_flip(entry.signed_entry_timestamp or b"\0", 10)
        ),
        "checkpoint signature": lambda: _with_note(
            entry, sig=_flip(entry.checkpoint.note.signatures[0].signature, 12)
        ),
        "checkpoint tree size": lambda: _with_note(
            entry, dataclasses.replace(cp, tree_size=cp.tree_size + 1).text()
        ),
        "checkpoint root": lambda: _with_note(
            entry, dataclasses.replace(cp, root_hash=_flip(cp.root_hash)).text()
        ),
        "checkpoint origin": lambda: _with_note(
            entry, dataclasses.replace(cp, origin=cp.origin + "0").text()
        ),
    }
    return tampers


def test_every_tampered_part_of_a_real_entry_is_rejected(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    # Grow the tree first so the entry's proof has hashes to tamper with.
    for _ in range(4):
        _upload(rekor_v1, sign_artifact())
    _, response, _, _ = uploaded
    (uuid,) = response
    current = requests.get(f"{rekor_v1.url}/api/v1/log/entries/{uuid}", timeout=10).json()
    entry = entry_from_rekor_v1(current)
    verify_log_entry(entry, rekor_v1.trusted_log)
    assert entry.inclusion_proof.hashes, "the tree should have grown past one leaf"
    tampers = _tampers(entry)
    assert len(tampers) == len(entry.inclusion_proof.hashes) + 12
    for tamper in tampers.values():
        try:
            tampered = tamper()
        except FormatError:
            continue  # refused while parsing: rejected all the same
        with pytest.raises(TransparencyLogError):
            verify_log_entry(tampered, rekor_v1.trusted_log)


def test_a_stripped_signed_entry_timestamp_leaves_no_time(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    entry = entry_from_rekor_v1(uploaded[1])
    stripped = dataclasses.replace(entry, signed_entry_timestamp=None)
    assert verify_log_entry(stripped, rekor_v1.trusted_log).integrated_time is None


def test_the_log_re_signs_the_time_trillian_stored(rekor_v1: RekorV1) -> None:
    """The integrated time comes from Trillian's database, and rekor-server signs whatever is
    there when an entry is read: moving that value is how a test gets a real, validly signed
    SET "from the future" (faketime cannot move a Go program's clock, see the report)."""
    response = _upload(rekor_v1, sign_artifact())
    assert response.status_code == 201
    entry = entry_from_rekor_v1(response.json())
    (uuid,) = response.json()
    later = (entry.integrated_time or 0) + 3600
    # Integers we computed, on the test's own database.
    statement = (
        "UPDATE SequencedLeafData SET IntegrateTimestampNanos = {} "
        "WHERE TreeId = {} AND SequenceNumber = {};"
    )
    rekor_v1.sql(
        statement.format(later * 1_000_000_000, rekor_v1.tree_id, entry.inclusion_proof.index)
    )
    moved = requests.get(f"{rekor_v1.url}/api/v1/log/entries/{uuid}", timeout=10).json()
    verified = verify_log_entry(entry_from_rekor_v1(moved), rekor_v1.trusted_log)
    assert verified.integrated_time == later


def test_a_proof_of_the_wrong_length_is_rejected_not_crashed(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    entry = entry_from_rekor_v1(uploaded[1])
    proof = entry.inclusion_proof
    longer = InclusionProof(proof.index, proof.tree_size, (*proof.hashes, bytes(32)))
    with pytest.raises(TransparencyLogError):
        verify_log_entry(dataclasses.replace(entry, inclusion_proof=longer), rekor_v1.trusted_log)


def test_a_note_from_another_key_is_not_trusted(
    rekor_v1: RekorV1, uploaded: tuple[SignedArtifact, dict[str, Any], int, int]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from opkey.tlog import TrustedLog

    entry = entry_from_rekor_v1(uploaded[1])
    impostor = TrustedLog.rekor_v1(
        rekor_v1.hostname, rekor_v1.tree_id, ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    with pytest.raises(TransparencyLogError, match="from log"):
        verify_log_entry(entry, impostor)
    same_id = dataclasses.replace(entry, log_id=impostor.log_id)
    with pytest.raises(TransparencyLogError, match="not signed by a trusted key"):
        verify_log_entry(same_id, impostor)
    assert isinstance(entry.checkpoint.note, SignedNote)
