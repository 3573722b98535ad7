"""spec/transparency-log.md's worked example is the recorded Rekor v1 evidence, and verifies."""

from __future__ import annotations

import re
from pathlib import Path

from opkey.tlog import SignedCheckpoint, SignedEntryTimestamp, entry_from_rekor_v1
from tests.tlog.test_recorded_entries import V1, v1_log

SPEC = Path(__file__).parents[2] / "spec" / "transparency-log.md"
_BLOCK = re.compile(r"<!-- tlog-example: ([\w-]+) -->\n```\n(.*?)```\n<!-- /tlog-example -->", re.S)


def _blocks() -> dict[str, str]:
    return dict(_BLOCK.findall(SPEC.read_text()))


def test_the_spec_checkpoint_is_the_recorded_one_and_verifies() -> None:
    (value,) = V1["entry"].values()
    recorded = value["verification"]["inclusionProof"]["checkpoint"]
    assert _blocks()["v1-checkpoint"] == recorded
    log = v1_log()
    checkpoint = SignedCheckpoint.parse(recorded).verify([log.key], origin=log.origin)
    assert log.key.key_id.hex() == value["logID"][:8]
    assert checkpoint.tree_size == 12


def test_the_spec_set_payload_is_what_the_code_signs() -> None:
    entry = entry_from_rekor_v1(V1["entry"])
    assert entry.integrated_time is not None
    payload = SignedEntryTimestamp(
        entry.body, entry.integrated_time, entry.log_id, entry.log_index, b"-"
    ).payload()
    head, tail = _blocks()["v1-set-payload-start"].rstrip("\n").split("…")
    text = payload.decode()
    assert text.startswith(head)
    assert text.endswith(tail)
    assert len(_blocks()) == 2
