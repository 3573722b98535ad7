"""``opkey inspect`` in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opkey.cli import main
from opkey.digest import Digest
from opkey.signer import Signer
from tests.helpers import MiniOP


@pytest.fixture(scope="module")
def signer() -> Signer:
    pkt, key = MiniOP().pktoken()
    return Signer(pkt, key)


def test_inspect_bundle(tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(signer.sign_digest(Digest.of_bytes(b"x")).to_json())
    assert main(["inspect", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is False
    assert out["pktoken"]["hash"] == signer.pktoken.hash()
    assert out["signature"]["statement"]["digest"] == str(Digest.of_bytes(b"x"))
    assert [s["role"] for s in out["pktoken"]["signatures"]] == ["OP", "CIC"]


def test_inspect_pktoken_prints_general_serialization(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pkt.compact"
    path.write_text(signer.pktoken.to_compact() + "\n")
    assert main(["inspect", str(path), "--pktoken"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads(signer.pktoken.to_json())
    assert out["signatures"][0]["protected"] == signer.pktoken.op.protected_b64


def test_inspect_garbage_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad"
    path.write_text("{not json")
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("opkey: error: ")
    assert "Traceback" not in err
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err
