"""Provider-key flags read alike in every command that verifies PK tokens: a flag that would
be ignored is refused before anything is read from the network."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from opkey.cli import EXIT_USAGE, main


def _log_key(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_verify_refuses_trust_policy_anchors_without_a_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    code = main(
        [
            "verify",
            "--file",
            str(artifact),
            "--issuer",
            "https://token.actions.githubusercontent.com",
            "--unsafe-any-signer",
            "--trust-policy-anchors",
        ]
    )
    assert code == EXIT_USAGE
    assert "--trust-policy-anchors applies to a --policy file" in capsys.readouterr().err


def test_monitor_refuses_trust_policy_anchors_without_a_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The log URL is never contacted: the flags are refused first.
    code = main(
        [
            "monitor",
            "--log",
            "http://127.0.0.1:9/",
            "--log-key",
            str(_log_key(tmp_path / "log.pem")),
            "--log-origin",
            "rekor.example - 1",
            "--state",
            str(tmp_path / "state.json"),
            "--identity",
            "https://token.actions.githubusercontent.com=repo:o/r:ref:refs/heads/main",
            "--trust-policy-anchors",
        ]
    )
    assert code == EXIT_USAGE
    assert "--trust-policy-anchors applies to a --policy file" in capsys.readouterr().err
    assert not (tmp_path / "state.json").exists()
