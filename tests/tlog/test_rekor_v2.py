"""Smoke tests against a real Rekor v2 (rekor-tiles v2.3.0, POSIX storage, Ed25519 checkpoints).

Rekor v2 answers an upload with a Sigstore ``TransparencyLogEntry``: the inclusion proof and a
C2SP checkpoint, no signed entry timestamp and no time (``integratedTime`` is 0 and must be
ignored). opkey's offline core must accept what it returns and reject each tampered part.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import json
from typing import Any

import pytest

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog import (
    LogEntry,
    SignedCheckpoint,
    entry_from_transparency_log_entry,
    verify_log_entry,
)
from tests.tlog.servers import RekorV2, post_json
from tests.tlog.uploads import SignedArtifact, sign_artifact

pytestmark = pytest.mark.rekor


def _upload(rekor: RekorV2, signed: SignedArtifact, **options: bool) -> Any:
    return post_json(f"{rekor.url}/api/v2/log/entries", signed.v2_request(**options))


@pytest.fixture(scope="module")
def uploaded(rekor_v2: RekorV2) -> tuple[SignedArtifact, dict[str, Any]]:
    """One entry uploaded to the log (after a few others, so its proof has hashes)."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        others = list(pool.map(lambda _: _upload(rekor_v2, sign_artifact()), range(4)))
    assert all(r.status_code == 201 for r in others), [r.text for r in others]
    signed = sign_artifact(b"opkey rekor v2 smoke test artifact")
    response = _upload(rekor_v2, signed)
    assert response.status_code == 201, response.text
    return signed, response.json()


def test_an_upload_returns_an_entry_that_verifies_offline(
    rekor_v2: RekorV2, uploaded: tuple[SignedArtifact, dict[str, Any]]
) -> None:
    signed, response = uploaded
    entry = entry_from_transparency_log_entry(response)
    verified = verify_log_entry(entry, rekor_v2.trusted_log)
    assert entry.log_id == rekor_v2.log_id  # the full C2SP checkpoint key hash
    assert verified.integrated_time is None  # Rekor v2 signs no time
    assert response["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in response or not response["inclusionPromise"]
    body = json.loads(verified.body)
    spec = body["spec"]["hashedRekordV002"]
    assert base64.b64decode(spec["data"]["digest"]) == signed.digest
    assert verified.checkpoint.origin == rekor_v2.origin
    assert verified.checkpoint.tree_size > verified.log_index


def test_a_certificate_verifier_is_accepted(rekor_v2: RekorV2) -> None:
    response = _upload(rekor_v2, sign_artifact(), certificate=True)
    assert response.status_code == 201, response.text
    verified = verify_log_entry(
        entry_from_transparency_log_entry(response.json()), rekor_v2.trusted_log
    )
    verifier = json.loads(verified.body)["spec"]["hashedRekordV002"]["signature"]["verifier"]
    assert "x509Certificate" in verifier


def test_a_bad_signature_is_refused_at_upload(rekor_v2: RekorV2) -> None:
    forged = dataclasses.replace(sign_artifact(), artifact=b"not what was signed")
    response = _upload(rekor_v2, forged)
    assert response.status_code == 400, response.text


def test_a_duplicate_upload_is_refused_naming_the_existing_index(
    rekor_v2: RekorV2, uploaded: tuple[SignedArtifact, dict[str, Any]]
) -> None:
    """Unlike v1, Rekor v2 returns no entry for a duplicate: a gRPC ALREADY_EXISTS (6) whose
    message names the index; the proof must come from the first upload or the tiles."""
    signed, response = uploaded
    again = _upload(rekor_v2, signed)
    assert again.status_code == 409, again.text
    answer = again.json()
    assert answer["code"] == 6
    first = entry_from_transparency_log_entry(response)
    assert answer["message"].endswith(f"with index {first.log_index}")


def test_the_published_checkpoint_verifies(
    rekor_v2: RekorV2, uploaded: tuple[SignedArtifact, dict[str, Any]]
) -> None:
    entry = entry_from_transparency_log_entry(uploaded[1])
    published = SignedCheckpoint.parse(rekor_v2.published_checkpoint())
    checkpoint = published.verify([rekor_v2.trusted_log.key], origin=rekor_v2.origin)
    assert checkpoint.tree_size >= entry.inclusion_proof.tree_size
    (line,) = published.note.signatures
    assert line.name == rekor_v2.origin
    assert line.key_id == rekor_v2.trusted_log.key.key_id


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_every_tampered_part_of_a_real_entry_is_rejected(
    rekor_v2: RekorV2, uploaded: tuple[SignedArtifact, dict[str, Any]]
) -> None:
    entry = entry_from_transparency_log_entry(uploaded[1])
    assert entry.inclusion_proof.hashes
    proof = entry.inclusion_proof
    note = entry.checkpoint.note
    (line,) = note.signatures

    def with_sig(signature: bytes) -> LogEntry:
        raw = (
            note.text
            + "\n"
            + f"— {line.name} "
            + base64.b64encode(line.key_id + signature).decode()
        )
        return dataclasses.replace(entry, checkpoint=SignedCheckpoint.parse(raw + "\n"))

    tampered = [
        *(
            _with_hashes(
                entry, tuple(_flip(h) if j == i else h for j, h in enumerate(proof.hashes))
            )
            for i in range(len(proof.hashes))
        ),
        dataclasses.replace(entry, root_hash=_flip(entry.root_hash)),
        dataclasses.replace(entry, body=entry.body.replace(b"SHA2_256", b"SHA2_257")),
        dataclasses.replace(entry, log_id=_flip(entry.log_id)),
        dataclasses.replace(entry, log_index=entry.log_index + 1),
        with_sig(_flip(line.signature, 5)),
    ]
    for candidate in tampered:
        with pytest.raises(TransparencyLogError):
            verify_log_entry(candidate, rekor_v2.trusted_log)


def _with_hashes(entry: LogEntry, hashes: tuple[bytes, ...]) -> LogEntry:
    return dataclasses.replace(
        entry, inclusion_proof=dataclasses.replace(entry.inclusion_proof, hashes=hashes)
    )


def test_a_v2_entry_is_not_accepted_as_a_v1_log(
    rekor_v2: RekorV2, uploaded: tuple[SignedArtifact, dict[str, Any]]
) -> None:
    from opkey.tlog import TrustedLog

    entry = entry_from_transparency_log_entry(uploaded[1])
    # Same key, but pinned as a Rekor v1 log: another log ID, another origin.
    as_v1 = TrustedLog.rekor_v1(rekor_v2.origin, 1, rekor_v2.public_key)
    with pytest.raises(TransparencyLogError):
        verify_log_entry(entry, as_v1)


def test_an_integrated_time_without_a_promise_is_dropped(
    uploaded: tuple[SignedArtifact, dict[str, Any]],
) -> None:
    response = dict(uploaded[1], integratedTime="1700000000")
    assert entry_from_transparency_log_entry(response).integrated_time is None
    broken = dict(uploaded[1], inclusionPromise={"signedEntryTimestamp": "not base64!"})
    with pytest.raises(FormatError):
        entry_from_transparency_log_entry(broken)
