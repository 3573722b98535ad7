"""``opkey sign --tlog-url`` and ``opkey verify --tlog-key --tlog-origin --require-tlog``
in-process, with the real dev OpenID provider (GitHub Actions-style GQ256 tokens) and the real
Rekor logs; the verifier pins the provider's JWKS, so verification makes no request."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opkey import Bundle
from opkey.cli import main
from opkey.cli.session import save_session
from opkey.sandbox.devidp import DevIdP
from opkey.signer import Signer
from tests.helpers import MiniOP
from tests.tlog.servers import RekorV1, RekorV2

pytestmark = pytest.mark.rekor

REPO_ID = "614000001"


@pytest.fixture
def ci_env(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    """A GitHub Actions job whose identity provider is the dev IdP."""
    for name, value in dev_idp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITLAB_CI", raising=False)
    return dev_idp


@pytest.fixture
def jwks_file(dev_idp: DevIdP, tmp_path: Path) -> Path:
    path = tmp_path / "dev-jwks.json"
    path.write_text(json.dumps(dev_idp.keyring.jwks()))
    return path


def _key_file(tmp_path: Path, pem: bytes, name: str = "rekor.pub") -> Path:
    path = tmp_path / name
    path.write_bytes(pem)
    return path


def _v1_pin(rekor: RekorV1, tmp_path: Path) -> list[str]:
    key = _key_file(tmp_path, rekor.public_key_pem)
    return ["--tlog-key", str(key), "--tlog-origin", rekor.trusted_log.origin]


def _verify(idp: DevIdP, jwks: Path, *args: str) -> list[str]:
    return [
        "verify",
        *args,
        "--issuer",
        idp.issuer,
        "--github-repository-id",
        REPO_ID,
        "--jwks",
        str(jwks),
        "--offline",
    ]


def _sign(tmp_path: Path, *args: str, name: str = "app.tar.gz") -> tuple[Path, int]:
    artifact = tmp_path / name
    artifact.write_bytes(b"release " + name.encode())
    return artifact, main(["sign", "--file", str(artifact), *args])


def test_sign_log_and_verify_a_file(
    ci_env: DevIdP,
    rekor_v1: RekorV1,
    jwks_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pin = _v1_pin(rekor_v1, tmp_path)
    artifact, code = _sign(tmp_path, "--tlog-url", rekor_v1.url, *pin)
    err = capsys.readouterr().err
    assert code == 0, err
    assert re.search(r"logged at index \d+", err)
    bundle = Bundle.from_json(Path(f"{artifact}.opkey.json").read_bytes())
    (entry,) = bundle.tlog_entries

    argv = _verify(ci_env, jwks_file, "--file", str(artifact), *pin)
    assert main([*argv, "--require-tlog", "--require-signing-time"]) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^    (\S+(?: \S+)*?) {2,}(.+)$", out, flags=re.MULTILINE))
    assert rows["logged in"] == f"{rekor_v1.trusted_log.origin} at index {entry.log_index}"
    assert rows["time by log"] == rekor_v1.trusted_log.origin
    assert rows["signed at"].endswith("(while the ID token was valid)")

    assert main([*argv, "--json"]) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert signature["signed_at"]["kind"] == "tlog"
    assert signature["signed_at"]["authority_id"] == rekor_v1.log_id.hex()
    assert signature["log_entries"] == [
        {
            "origin": rekor_v1.trusted_log.origin,
            "log_id": rekor_v1.log_id.hex(),
            "log_index": entry.log_index,
            "integrated_time": entry.integrated_time,
        }
    ]
    # Without the pin, the entry proves nothing, and requiring one rejects the bundle.
    plain = _verify(ci_env, jwks_file, "--file", str(artifact))
    assert main([*plain, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["log_entries"] == []
    assert main([*plain, "--require-tlog"]) == 2
    assert "no log is pinned" in capsys.readouterr().err


def test_require_tlog_rejects_an_unlogged_bundle(
    ci_env: DevIdP,
    rekor_v1: RekorV1,
    jwks_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code = _sign(tmp_path)
    assert code == 0
    argv = _verify(ci_env, jwks_file, "--file", str(artifact), *_v1_pin(rekor_v1, tmp_path))
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--require-tlog", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["kind"] == "TransparencyLogError"
    assert "no entry in a pinned transparency log" in captured.err


def test_the_policy_file_pins_the_log_only_when_trusted(
    ci_env: DevIdP,
    rekor_v2: RekorV2,
    jwks_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code = _sign(tmp_path, "--tlog-url", rekor_v2.url)
    assert code == 0, capsys.readouterr().err
    from cryptography.hazmat.primitives import serialization

    pem = rekor_v2.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _key_file(tmp_path, pem, "rekor2.pub")
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"""version = 1

[[issuers]]
issuer = "{ci_env.issuer}"
commitment = "aud"
jwks_file = "{jwks_file}"

[[signers]]
name = "build"
github = {{ repository_id = "{REPO_ID}", issuer = "{ci_env.issuer}" }}

[tlog]
logs = [{{ key = "rekor2.pub", origin = "{rekor_v2.origin}" }}]
required = true
"""
    )
    argv = ["verify", "--file", str(artifact), "--policy", str(policy), "--offline"]
    assert main(argv) == 2
    assert "tlog.logs: the policy file names transparency logs" in capsys.readouterr().err
    assert main([*argv, "--trust-policy-anchors", "--json"]) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert signature["log_entries"][0]["origin"] == rekor_v2.origin
    assert signature["signed_at"] is None  # Rekor v2 signs no time


def test_signing_writes_nothing_when_the_log_fails(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    artifact, code = _sign(tmp_path, "--tlog-url", down, "--tlog-timeout", "2")
    err = capsys.readouterr().err
    assert code == 2
    assert "transparency log" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [artifact]
    artifact, code = _sign(tmp_path, "--tlog-url", "http://rekor.example.com/", name="b.bin")
    assert code == 2
    assert "plain http" in capsys.readouterr().err
    assert not Path(f"{artifact}.opkey.json").exists()


def test_a_replayable_pk_token_is_never_published(
    rekor_v1: RekorV1, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session whose PK token carries the provider's RS256 signature (a browser login)."""
    now = int(time.time())
    pktoken, key = MiniOP().pktoken(iat=now - 10, nbf=now - 20, exp=now + 600)
    session = tmp_path / "session.json"
    save_session(session, Signer(pktoken, key))
    artifact, code = _sign(tmp_path, "--session", str(session), "--tlog-url", rekor_v1.url)
    err = capsys.readouterr().err
    assert code == 2
    assert "only GQ256 PK tokens may be published" in err
    assert not Path(f"{artifact}.opkey.json").exists()


def test_a_token_expired_before_the_upload_is_refused(
    rekor_v1: RekorV1,
    make_dev_idp: Callable[..., DevIdP],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The dev IdP's clock an hour behind: its token expired before the log integrated the
    entry, and the log's signed time says so."""
    idp = make_dev_idp(clock=lambda: time.time() - 3600)
    for name, value in idp.env().items():
        monkeypatch.setenv(name, value)
    artifact, code = _sign(tmp_path, "--tlog-url", rekor_v1.url)
    assert code == 2
    assert "after the ID token expired" in capsys.readouterr().err
    assert not Path(f"{artifact}.opkey.json").exists()


def test_tlog_flags_are_checked_before_any_token_is_requested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact, code = _sign(tmp_path, "--tlog-url", "http://127.0.0.1:1", "--tlog-key", "k.pub")
    assert code == 2
    assert "--tlog-key and --tlog-origin go together" in capsys.readouterr().err
    assert (
        main(
            [
                "verify",
                "--file",
                str(artifact),
                "--issuer",
                "https://x",
                "--subject",
                "s",
                "--tlog-origin",
                "o",
            ]
        )
        == 2
    )
    assert "go together" in capsys.readouterr().err
