"""``opkey completion bash|zsh``: the scripts complete in the real shells.

bash runs the generated function the way readline would (``COMP_WORDS``/``COMP_CWORD``); zsh
runs interactively on a pseudo-terminal, with keys typed into its line editor.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from opkey.cli import build_parser, walk_parsers
from tests.cli.conftest import run_opkey
from tests.toolchain import system_tool


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = run_opkey(["completion", "bash"])
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("bash") / "opkey.bash"
    path.write_text(result.stdout)
    return path


def _bash_complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What the completion function offers for ``line`` (the cursor at its end)."""
    words = line.split(" ")
    program = "\n".join(
        [
            f"source {shlex.quote(str(script))}",
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            f"COMP_LINE={shlex.quote(line)}",
            "_opkey",
            "printf '%s\\n' \"${COMPREPLY[@]}\"",
        ]
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [w for w in result.stdout.splitlines() if w]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("opkey ver", ["verify", "verify-attestation"]),
        ("opkey verify-a", ["verify-attestation"]),
        ("opkey c", ["completion"]),
        ("opkey sign --prov", ["--provider"]),
        ("opkey sign --provider ", ["auto", "github-actions", "forgejo-actions", "gitlab-ci",
                                    "browser", "device"]),
        ("opkey sign --provider b", ["browser"]),
        ("opkey sign --key-type E", ["ES256", "EdDSA"]),
        ("opkey --debug verify --jwks-a", ["--jwks-archive"]),
        ("opkey jwks l", ["list"]),
        ("opkey jwks --archive list l", ["list"]),  # the option's value is not a command
        ("opkey jwks list --j", ["--json"]),
        ("opkey completion ", ["bash", "zsh"]),
        ("opkey verify --digest ", []),  # a digest: nothing to offer rather than something wrong
        ("opkey verify --commitment g", ["gq-bound"]),
    ],
)  # fmt: skip
def test_bash_completes_commands_options_and_choices(
    bash_script: Path, line: str, expected: list[str]
) -> None:
    assert _bash_complete(bash_script, line) == expected


def test_bash_completes_file_names_where_a_path_goes(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "release.tar.gz").write_text("x")
    (tmp_path / "policy.toml").write_text("x")
    assert _bash_complete(bash_script, "opkey verify --file rel", tmp_path) == ["release.tar.gz"]
    assert _bash_complete(bash_script, "opkey verify --policy p", tmp_path) == ["policy.toml"]
    assert _bash_complete(bash_script, "opkey inspect r", tmp_path) == ["release.tar.gz"]


def test_bash_offers_every_option_of_every_command(bash_script: Path) -> None:
    for path, parser in walk_parsers(build_parser()):
        wanted = sorted(
            flag
            for action in parser._actions
            if not isinstance(action, argparse._SubParsersAction)
            for flag in action.option_strings
        )
        offered = _bash_complete(bash_script, " ".join(["opkey", *path, "-"]))
        assert sorted(offered) == wanted, path


# -- zsh, interactively ---------------------------------------------------------------------

ZSHRC = """\
PS1='%% '
fpath=({functions} $fpath)
autoload -Uz compinit && compinit -u -D
zstyle ':completion:*' menu no
unsetopt beep
opkey() {{ print -r -- "ARGS[$*]" }}
"""


class Zsh:
    """An interactive zsh on a pseudo-terminal."""

    def __init__(self, home: Path) -> None:
        zsh = system_tool("zsh", "zsh")
        master, slave = pty.openpty()
        env = {"HOME": str(home), "ZDOTDIR": str(home), "TERM": "xterm", "PATH": os.defpath}
        self.process = subprocess.Popen(
            [zsh, "-d", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=home
        )
        os.close(slave)
        self.master = master
        self.seen = b""

    def read_until(self, pattern: bytes, timeout: float = 20) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.seen)
            if found:
                self.seen = self.seen[found.end() :]
                return found
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"zsh never showed {pattern!r}; it showed {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.5))
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    raise AssertionError(f"zsh exited; it showed {self.seen!r}") from None

    def run(self, keys: str) -> str:
        """Type ``keys`` (tabs complete), then Enter; the arguments opkey() was called with."""
        os.write(self.master, keys.encode())
        time.sleep(0.3)  # let the completion system draw before Enter arrives
        os.write(self.master, b"\r")
        return self.read_until(rb"ARGS\[([^\]\r\n]*)\]").group(1).decode()

    def close(self) -> None:
        try:
            os.write(self.master, b"exit\r")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self.master)


@pytest.fixture(scope="module")
def zsh(tmp_path_factory: pytest.TempPathFactory) -> object:
    home = tmp_path_factory.mktemp("zsh")
    functions = home / "functions"
    functions.mkdir()
    result = run_opkey(["completion", "zsh"])
    assert result.returncode == 0, result.stderr
    (functions / "_opkey").write_text(result.stdout)
    (home / ".zshrc").write_text(ZSHRC.format(functions=functions))
    (home / "release.tar.gz").write_text("x")
    shell = Zsh(home)
    try:
        shell.read_until(rb"% ")
        yield shell
    finally:
        shell.close()


@pytest.mark.parametrize(
    ("keys", "completed"),
    [
        ("opkey ver\t", "verify"),
        ("opkey jwks li\t", "jwks list"),
        ("opkey completion z\t", "completion zsh"),
        ("opkey sign --prov\tbro\t", "sign --provider browser"),
        ("opkey sign --key-type Ed\t", "sign --key-type EdDSA"),
        ("opkey verify --commitment gq\t", "verify --commitment gq-bound"),
        ("opkey verify --file rel\t", "verify --file release.tar.gz"),
        ("opkey dev-idp --env-f\t", "dev-idp --env-file"),
    ],
)
def test_zsh_completes_commands_options_choices_and_files(
    zsh: Zsh, keys: str, completed: str
) -> None:
    assert zsh.run(keys).strip() == completed
