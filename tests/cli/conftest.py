"""Helpers for the command-line tests: a CI job's environment, and opkey as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from opkey.sandbox.devidp import DevIdP

#: The repository id the dev provider's GitHub-style tokens carry.
REPO_ID = "614000001"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any CI identity, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "ACTIONS_", "OPKEY_DEV_", "FORGEJO_"))
        and k not in ("GITLAB_CI", "OPENPUBKEY_JWT")
    }
    env.update(extra or {})
    return env


def run_opkey(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    python: Sequence[str] = ("-m", "opkey"),
    **kwargs: object,
) -> subprocess.CompletedProcess[str]:
    """``python -m opkey ARGS`` as a separate process, output captured as text."""
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    options.update(kwargs)
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, *python, *args],
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=120,
        check=False,
        **options,
    )


def enter_environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Make this process's environment :func:`clean_env` plus ``env`` (undone after the test)."""
    for name in os.environ.keys() - clean_env().keys():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def job_env(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    """This process in a GitHub Actions job whose identity provider is the shared dev IdP."""
    enter_environment(monkeypatch, dev_idp.env())
    return dev_idp


#: A stand-in browser: note that it was opened, then load the URL and follow the redirects, as
#: a browser would.
BROWSER_SCRIPT = """\
#!{python}
import sys
import urllib.request

open({marker!r}, "w").write(sys.argv[1])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
with opener.open(sys.argv[1], timeout=10) as response:
    response.read()
"""


def fake_browser(directory: Path) -> tuple[Path, Path]:
    """A browser program in ``directory`` and the file it writes when it is opened."""
    marker = directory / "browser-opened"
    browser = directory / "browser"
    browser.write_text(BROWSER_SCRIPT.format(python=sys.executable, marker=str(marker)))
    browser.chmod(0o700)
    return browser, marker
