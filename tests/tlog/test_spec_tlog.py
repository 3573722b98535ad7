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


def _template(name: str) -> re.Pattern[str]:
    """A spec template as a pattern: each ``<placeholder>`` stands for a JSON string's content
    or a number."""
    parts = re.split(r"<[^>]+>", _blocks()[name].rstrip("\n"))
    return re.compile(r"[^\"]+".join(re.escape(part) for part in parts))


def test_the_spec_templates_are_what_the_code_writes() -> None:
    import json

    from opkey import CommitmentType
    from opkey.tlog.certificate import pktoken_certificate
    from opkey.tlog.rekor import cosign_rekor_bundle
    from opkey.tlog.signature_entry import EntryRequest
    from tests.helpers import MiniOP

    pktoken, key = MiniOP().pktoken(CommitmentType.GQ_BOUND)
    request = EntryRequest.hashedrekord(b"s", key.sign_der(b"s"), pktoken_certificate(pktoken, key))
    v1 = json.dumps(request.rekor_v1(), separators=(",", ":"))
    v2 = json.dumps(request.rekor_v2(), separators=(",", ":"))
    assert _template("v1-request").fullmatch(v1)
    assert _template("v2-request").fullmatch(v2)
    assert _template("cosign-bundle").fullmatch(
        cosign_rekor_bundle(entry_from_rekor_v1(V1["entry"]))
    )
    assert len(_blocks()) == 5
