"""The CLI as users run it: separate processes, real environment variables, exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from opkey import __version__
from opkey.sandbox.devidp import DevIdP

DIGEST = "sha256:" + "ab" * 32
TESTS = Path(__file__).resolve().parent.parent

BROWSER_SCRIPT = """\
#!{python}
# A stand-in browser: load the URL and follow redirects, as a browser would.
import sys
import urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
with opener.open(sys.argv[1], timeout=10) as response:
    response.read()
"""


def opkey(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ACTIONS_"))}
    base.pop("GITLAB_CI", None)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "opkey", *args],
        capture_output=True,
        text=True,
        env=base,
        input=stdin,
        timeout=120,
        check=False,
    )


def test_version() -> None:
    result = opkey("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"opkey {__version__}"


def test_no_command_is_a_usage_error() -> None:
    result = opkey()
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_demo_exits_zero() -> None:
    result = opkey("demo")
    assert result.returncode == 0, result.stderr
    assert "2 signatures verified, 3 forgeries rejected" in result.stdout
    assert "Traceback" not in result.stderr


def test_sign_and_verify_as_processes(dev_idp: DevIdP, tmp_path: Path) -> None:
    env = dev_idp.env()
    signed = opkey("sign", "--digest", DIGEST, env=env)
    assert signed.returncode == 0, signed.stderr
    bundle = tmp_path / "bundle.json"
    bundle.write_text(signed.stdout)
    base = ["verify", "--digest", DIGEST, "--bundle", str(bundle), "--issuer", dev_idp.issuer]
    ok = opkey(*base, "--github-repository-id", "614000001")
    assert ok.returncode == 0, ok.stderr
    assert "Verified:" in ok.stdout
    rejected = opkey(*base, "--github-repository-id", "614000002")
    assert rejected.returncode == 1
    assert rejected.stderr.startswith("opkey: rejected:")
    usage = opkey(*base)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr


def test_login_with_browser_saves_a_0600_session_used_by_sign(
    dev_idp: DevIdP, tmp_path: Path
) -> None:
    browser = tmp_path / "fake-browser"
    browser.write_text(BROWSER_SCRIPT.format(python=sys.executable))
    browser.chmod(0o700)
    session = tmp_path / "session.json"
    login = opkey(
        "login",
        "--provider",
        "browser",
        "--issuer",
        dev_idp.issuer,
        "--client-id",
        dev_idp.client_id,
        "--save",
        str(session),
        env={"BROWSER": str(browser)},
    )
    assert login.returncode == 0, login.stderr
    assert "logged in as dev@example.test" in login.stderr
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    signed = opkey("sign", "--session", str(session), "--digest", DIGEST)
    assert signed.returncode == 0, signed.stderr
    bundle = tmp_path / "b.json"
    bundle.write_text(signed.stdout)
    verified = opkey(
        "verify",
        "--digest",
        DIGEST,
        "--bundle",
        str(bundle),
        "--issuer",
        dev_idp.issuer,
        "--commitment",
        "nonce",
        "--client-id",
        dev_idp.client_id,
        "--subject",
        dev_idp.settings.user.sub,
        "--json",
    )
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["signatures"][0]["claims"]["email"] == "dev@example.test"
    session.chmod(0o644)
    refused = opkey("sign", "--session", str(session), "--digest", DIGEST)
    assert refused.returncode == 2
    assert "chmod 600" in refused.stderr


def test_login_without_save_writes_nothing(dev_idp: DevIdP, tmp_path: Path) -> None:
    browser = tmp_path / "fake-browser"
    browser.write_text(BROWSER_SCRIPT.format(python=sys.executable))
    browser.chmod(0o700)
    login = subprocess.run(
        [
            sys.executable,
            "-m",
            "opkey",
            "login",
            "--issuer",
            dev_idp.issuer,
            "--client-id",
            dev_idp.client_id,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
        env={**os.environ, "BROWSER": str(browser)},
    )
    assert login.returncode == 0, login.stderr
    assert "nothing saved" in login.stderr
    assert list(tmp_path.iterdir()) == [browser]


def test_jwks_import_list_export(tmp_path: Path) -> None:
    archive = tmp_path / "a.sqlite"
    jwks = TESTS / "data" / "github-actions" / "github-jwks_2022_step-security.json"
    issuer = "https://token.actions.githubusercontent.com"
    imported = opkey(
        "jwks",
        "--archive",
        str(archive),
        "import",
        issuer,
        str(jwks),
        "--seen-at",
        "2022-08-01T00:00:00Z",
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 key(s)" in imported.stderr
    listed = opkey("jwks", "--archive", str(archive), "list", "--json")
    entries = json.loads(listed.stdout)
    assert {e["kid"] for e in entries} == {
        "78167F727DEC5D801DD1C8784C704A1C880EC0E1",
        "52F197C481DE70112C441B4A9B37B53C7FCF0DB5",
    }
    exported = opkey("jwks", "--archive", str(archive), "export", issuer)
    assert len(json.loads(exported.stdout)["keys"]) == 2
    bad = opkey("jwks", "--archive", str(archive), "import", issuer, str(tmp_path / "nope"))
    assert bad.returncode == 2
    assert "cannot read" in bad.stderr


@pytest.mark.parametrize(
    "command", ["sign", "verify", "inspect", "login", "jwks", "demo", "dev-idp", "completion"]
)
def test_every_command_has_help(command: str) -> None:
    result = opkey(command, "--help")
    assert result.returncode == 0
    assert "usage: opkey" in result.stdout
