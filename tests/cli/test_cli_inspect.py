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


def test_public_key_of_a_bundle_and_a_pktoken(
    tmp_path: Path,
    signer: Signer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptography.hazmat.primitives import serialization

    expected = signer.pktoken.cic_claims.upk.to_pem()
    bundle = tmp_path / "b.json"
    bundle.write_bytes(signer.sign_digest(Digest.of_bytes(b"x")).to_json())
    assert main(["inspect", str(bundle), "--public-key"]) == 0
    assert capsys.readouterr().out.encode() == expected
    out = tmp_path / "key.pem"
    assert main(["inspect", str(bundle), "--public-key", str(out)]) == 0
    assert out.read_bytes() == expected
    assert "not verified" in capsys.readouterr().err
    der = serialization.load_pem_public_key(expected).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert der == signer.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # a PK token on standard input
    monkeypatch.setattr("sys.stdin", _Stdin(signer.pktoken.to_compact().encode()))
    assert main(["inspect", "-", "--public-key", "-"]) == 0
    assert capsys.readouterr().out.encode() == expected


class _Stdin:
    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)


def test_signature_index_is_for_images_and_unknown_files_stay_files(
    tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pkt.compact"
    path.write_text(signer.pktoken.to_compact())
    assert main(["inspect", str(path), "--public-key", "--signature", "0"]) == 2
    assert "not of a file" in capsys.readouterr().err
    # A missing name without a registry part is a missing file, never a Docker Hub request.
    for missing in ("dist/app.json", "./dist/app.json", "../app.json"):
        assert main(["inspect", missing, "--public-key"]) == 2
        assert f"cannot read input {missing}" in capsys.readouterr().err
