"""The README's "Trying verification locally" commands, run as written (on a free port)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import clean_env

README = Path(__file__).resolve().parents[2] / "README.md"
DOCUMENTED_PORT = "8900"


def _local_block() -> str:
    text = README.read_text()
    section = text.split("### Trying verification locally", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "the section has no sh block"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_documented_commands_sign_and_verify_against_the_dev_provider(
    tmp_path: Path,
) -> None:
    block = _local_block()
    assert "opkey dev-idp --port 8900 --env-file dev.env &" in block
    assert "--issuer http://127.0.0.1:8900 --github-repository-id 614000001" in block
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "opkey"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m opkey "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    script = "set -e\n" + block.replace(DOCUMENTED_PORT, str(_free_port()))
    env = clean_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"})
    process = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=120)
    finally:
        # The script's own `kill %1` stops the provider; this only cleans up after a failure.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    assert process.returncode == 0, err
    assert "Verified: hello.txt" in out
    assert "repository_id  614000001" in out
    assert "opkey: signed hello.txt" in err
    assert (work / "hello.txt.opkey.json").is_file()
