"""``opkey sign --timestamp-url`` and ``opkey verify --timestamp-certs`` in-process, with the
real dev OpenID provider and both real time-stamping authorities."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from opkey import Bundle, TimestampToken
from opkey.cli import main
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import list_signatures
from opkey.sandbox.devidp import DevIdP
from tests.timestamps.authorities import Fault, Pki
from tests.timestamps.conftest import LateScenario, RunningTsa

REPO_ID = "614000001"
DIGEST = "sha256:" + "34" * 32


def _use(idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    for name, value in idp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITLAB_CI", raising=False)
    return idp


@pytest.fixture
def ci_env(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    """A GitHub Actions job whose identity provider is the dev IdP."""
    return _use(dev_idp, monkeypatch)


@pytest.fixture
def chain_file(tsa: RunningTsa, tmp_path: Path) -> Path:
    path = tmp_path / f"{tsa.kind}-chain.pem"
    path.write_bytes(tsa.chain_pem)
    return path


def _verify(idp: DevIdP, *args: str) -> list[str]:
    return ["verify", *args, "--issuer", idp.issuer, "--github-repository-id", REPO_ID]


def _sign_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *urls: str, name: str = "app.tar.gz"
) -> tuple[Path, int, str]:
    artifact = tmp_path / name
    artifact.write_bytes(b"release " + name.encode())
    argv = ["sign", "--file", str(artifact)]
    for url in urls:
        argv += ["--timestamp-url", url]
    code = main(argv)
    return artifact, code, capsys.readouterr().err


def test_sign_and_verify_a_file_with_a_timestamp(
    ci_env: DevIdP,
    tsa: RunningTsa,
    chain_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code, err = _sign_file(tmp_path, capsys, tsa.url)
    assert code == 0, err
    assert "timestamped by 1 authority" in err
    bundle = Bundle.from_json(Path(f"{artifact}.opkey.json").read_bytes())
    (der,) = bundle.timestamps
    token = TimestampToken.from_der(der)

    argv = _verify(ci_env, "--file", str(artifact), "--timestamp-certs", str(chain_file))
    assert main([*argv, "--require-timestamp"]) == 0
    out = capsys.readouterr().out
    assert "signing time is not attested" not in out
    rows = dict(re.findall(r"^    (\S+(?: \S+)?) {2,}(.+)$", out, flags=re.MULTILINE))
    assert rows["signed at"].startswith(f"{token.claimed_time:%Y-%m-%dT%H:%M:%S}")
    assert rows["signed at"].endswith("(while the ID token was valid)")
    subject = tsa.authority.leaf.subject.rfc4514_string()  # type: ignore[union-attr]
    assert rows["timestamp by"] == subject
    assert rows["TSA root"] == f"sha256:{tsa.authority.root_sha256}"

    assert main([*argv, "--json"]) == 0
    (signature,) = json.loads(capsys.readouterr().out)["signatures"]
    assert signature["signed_at"]["time"] == token.claimed_time.isoformat().replace("+00:00", "Z")
    assert signature["signed_at"]["kind"] == "timestamp"
    assert signature["signed_at"]["authority"] == subject
    assert signature["signed_at"]["authority_id"] == tsa.authority.root_sha256

    # Without --timestamp-certs the token proves nothing and the output says so.
    assert main([*_verify(ci_env, "--file", str(artifact)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["signed_at"] is None


def test_require_timestamp_rejects_an_unstamped_bundle(
    ci_env: DevIdP, chain_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact, code, _ = _sign_file(tmp_path, capsys)
    assert code == 0
    argv = _verify(ci_env, "--file", str(artifact), "--timestamp-certs", str(chain_file))
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--require-timestamp", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["kind"] == "TimestampError"
    assert "no proven signing time" in captured.err
    assert main([*_verify(ci_env, "--file", str(artifact)), "--require-timestamp"]) == 2
    assert "no time-stamping authority is trusted" in capsys.readouterr().err


def test_the_wrong_chain_proves_nothing(
    ci_env: DevIdP,
    tsa: RunningTsa,
    other_pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code, _ = _sign_file(tmp_path, capsys, tsa.url)
    assert code == 0
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(other_pki.chain_pem)
    argv = _verify(ci_env, "--file", str(artifact), "--timestamp-certs", str(wrong))
    assert main([*argv, "--require-timestamp"]) == 1
    assert "no configured time-stamping authority issued" in capsys.readouterr().err


@pytest.mark.parametrize("fault", [Fault.GARBAGE, Fault.WRONG_NONCE, Fault.WRONG_IMPRINT])
def test_signing_writes_nothing_when_the_authority_fails(
    ci_env: DevIdP,
    faulty_tsa: Callable[[Fault], str],
    fault: Fault,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code, err = _sign_file(tmp_path, capsys, faulty_tsa(fault))
    assert code == 2
    assert err.startswith("opkey: ")
    assert "time-stamping authority" in err
    assert "Traceback" not in err
    assert not Path(f"{artifact}.opkey.json").exists()
    assert list(tmp_path.iterdir()) == [artifact]


def test_signing_writes_nothing_when_the_authority_is_slow_or_down(
    ci_env: DevIdP,
    faulty_tsa: Callable[[Fault], str],
    tsa_down_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")
    for url in (faulty_tsa(Fault.SLOW), tsa_down_url):
        argv = ["sign", "--file", str(artifact), "--timestamp-url", url]
        assert main([*argv, "--timestamp-timeout", "1"]) == 2
        assert "time-stamping authority" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == [artifact]


def test_timestamp_urls_are_checked_before_signing(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact, code, err = _sign_file(tmp_path, capsys, "http://tsa.example.com/")
    assert code == 2
    assert "time-stamping authority URL" in err
    assert not Path(f"{artifact}.opkey.json").exists()


@pytest.fixture
def late_idp(
    late_tsa: LateScenario,
    make_dev_idp: Callable[..., DevIdP],
    monkeypatch: pytest.MonkeyPatch,
) -> DevIdP:
    """A dev IdP whose clock issues tokens at the late scenario's ``issued_at``."""
    offset = late_tsa.issued_at.timestamp() - time.time()
    idp = make_dev_idp(clock=lambda: time.time() + offset)
    return _use(idp, monkeypatch)


def test_a_signature_stamped_after_the_id_token_expired_is_rejected(
    late_tsa: LateScenario,
    late_idp: DevIdP,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code, err = _sign_file(tmp_path, capsys, late_tsa.url)
    assert code == 0, err
    bundle = Bundle.from_json(Path(f"{artifact}.opkey.json").read_bytes())
    assert bundle.pktoken.claims["exp"] <= late_tsa.expires_at.timestamp() + 1
    chain = tmp_path / "chain.pem"
    chain.write_bytes(_pem_chain(late_tsa))
    argv = _verify(late_idp, "--file", str(artifact))
    assert main(argv) == 0  # no trusted authority: judged by the expiry policy (never)
    capsys.readouterr()
    assert main([*argv, "--timestamp-certs", str(chain)]) == 1
    assert "signed after the ID token expired" in capsys.readouterr().err


def _pem_chain(late: LateScenario) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    authority = late.authority
    certs = [authority.root, *authority.intermediates]
    if authority.leaf is not None:
        certs.append(authority.leaf)
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def test_policy_file_timestamps_need_trust_policy_anchors(
    ci_env: DevIdP,
    tsa: RunningTsa,
    chain_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    artifact, code, _ = _sign_file(tmp_path, capsys, tsa.url)
    assert code == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"""version = 1

[[issuers]]
issuer = "{ci_env.issuer}"
commitment = "aud"

[[signers]]
name = "build"
github = {{ issuer = "{ci_env.issuer}", repository_id = "{REPO_ID}" }}

[timestamps]
authorities = ["{chain_file.name}"]
required = true
"""
    )
    argv = ["verify", "--file", str(artifact), "--policy", str(policy)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "timestamps.authorities: the policy file names time-stamping authorities" in err
    assert "--trust-policy-anchors" in err
    assert main([*argv, "--trust-policy-anchors", "--json"]) == 0
    signed_at = json.loads(capsys.readouterr().out)["signatures"][0]["signed_at"]
    assert signed_at["authority_id"] == tsa.authority.root_sha256
    # The verifier's own --timestamp-certs is always used; the file's "required" still holds.
    policy.write_text(policy.read_text().replace(f'authorities = ["{chain_file.name}"]\n', ""))
    assert main(argv) == 2
    assert "no time-stamping authority is trusted" in capsys.readouterr().err
    assert main([*argv, "--timestamp-certs", str(chain_file)]) == 0
    unstamped, code, _ = _sign_file(tmp_path, capsys, name="unstamped.bin")
    assert code == 0
    argv = ["verify", "--file", str(unstamped), "--policy", str(policy)]
    assert main([*argv, "--timestamp-certs", str(chain_file)]) == 1
    assert "no proven signing time" in capsys.readouterr().err


def test_sign_and_verify_an_image_with_a_timestamp(
    ci_env: DevIdP,
    tsa: RunningTsa,
    chain_file: Path,
    other_pki: Pki,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = str(registry_image)
    assert main(["sign", image, "--timestamp-url", tsa.url]) == 0
    assert "timestamped by 1 authority" in capsys.readouterr().err
    (layer,) = list_signatures(registry_client, registry_image)
    assert "dev.sigstore.cosign/rfc3161timestamp" in layer.annotations
    argv = _verify(ci_env, image, "--timestamp-certs", str(chain_file), "--require-timestamp")
    assert main([*argv, "--json"]) == 0
    signed_at = json.loads(capsys.readouterr().out)["signatures"][0]["signed_at"]
    claimed = datetime.fromisoformat(signed_at["time"].replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - claimed).total_seconds()) < 120
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(other_pki.chain_pem)
    argv = _verify(ci_env, image, "--timestamp-certs", str(wrong), "--require-timestamp")
    assert main(argv) == 1
    assert "no proven signing time" in capsys.readouterr().err


def test_an_image_takes_one_timestamp_url(
    ci_env: DevIdP,
    tsa: RunningTsa,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["sign", str(registry_image), "--timestamp-url", tsa.url, "--timestamp-url", tsa.url]
    assert main(argv) == 2
    assert "one RFC 3161 timestamp" in capsys.readouterr().err
    assert list_signatures(registry_client, registry_image) == []
