"""``opkey dev-idp`` runs on its own: env file, discovery, GitHub-style tokens, clean stop."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
import requests

from opkey.cli import main


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        values[name] = value
    return values


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_dev_idp_subprocess(tmp_path: Path, stop_signal: signal.Signals) -> None:
    env_file = tmp_path / "dev.env"
    process = subprocess.Popen(
        [sys.executable, "-m", "opkey", "dev-idp", "--port", "0", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 15
        while not env_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "dev-idp did not write its env file"
            time.sleep(0.05)
        env = read_env(env_file)
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it holds the request token
        assert list(tmp_path.iterdir()) == [env_file]  # no temporary file left behind
        assert env["GITHUB_ACTIONS"] == "true"
        issuer = env["OPKEY_DEV_ISSUER"]
        assert issuer.startswith("http://127.0.0.1:")
        discovery = requests.get(issuer + "/.well-known/openid-configuration", timeout=5).json()
        assert discovery["issuer"] == issuer
        url = env["ACTIONS_ID_TOKEN_REQUEST_URL"]
        assert "?" in url
        response = requests.get(
            url + "&audience=my-audience",
            headers={"Authorization": "Bearer " + env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]},
            timeout=5,
        )
        assert response.status_code == 200
        claims = jwt.decode(response.json()["value"], options={"verify_signature": False})
        assert (claims["iss"], claims["aud"]) == (issuer, "my-audience")
        gitlab = jwt.decode(env["OPENPUBKEY_JWT"], options={"verify_signature": False})
        assert gitlab["aud"].startswith("OPENPUBKEY-PKTOKEN:")
    finally:
        process.send_signal(stop_signal)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, stderr
    assert b"stopped" in stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(issuer + "/.well-known/openid-configuration", timeout=2)


def test_dev_idp_rejects_a_bad_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev-idp", "--github-repository", "no-slash"]) == 2
    assert "OWNER/REPO" in capsys.readouterr().err
