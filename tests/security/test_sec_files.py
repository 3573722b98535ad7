"""Local files as an attack surface: every read bounded, every write unredirectable.

Reads: every path opkey reads (bundles, PK tokens, JWKS files, policy files and the key files
they name, session files, JWKS imports, artifacts, the JWKS archive) must refuse what is not a
regular file — ``/dev/zero`` (endless), a FIFO without a writer (``open`` itself would block), a
directory — and a regular file over its limit, with an error naming the path, never a
``MemoryError`` or a hang. Standard input keeps the same bound.

FIFO cases run with a *rescuer*: should a regression block on the FIFO, a thread opens it for
writing after a grace period, writes a few bytes and closes it, so the blocked read returns and
the test fails on its assertion instead of hanging the suite.

Writes: output goes through an unpredictable temporary file created with ``O_EXCL |
O_NOFOLLOW`` and renamed, so symlinks an attacker plants in a shared directory (at the old
predictable names, at a name we are made to pick, at the target itself) never redirect a
write, and a leftover temporary file never breaks one.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opkey import Digest, FormatError
from opkey.cli import main
from opkey.cli._common import MAX_INPUT, write_new_file
from opkey.cli.session import MAX_SESSION_BYTES, load_session, save_session
from opkey.errors import ConfigError, OpkeyError
from opkey.files import read_regular_file, read_stream, write_file_atomically
from opkey.jwks.archive import JwksArchive
from opkey.jwks.sources import MAX_JWKS_FILE_BYTES, PinnedKeys
from opkey.policy.file import load_policy_file
from opkey.signer import Signer
from tests.helpers import NOW, MiniOP
from tests.security.sec_common import GITHUB

DIGEST = "sha256:" + "5e" * 32
POLICY_LIMIT = 1024 * 1024  # opkey.policy.file._MAX_FILE_BYTES


# -- hostile paths -------------------------------------------------------------------------------


class Fifo:
    """A FIFO with no writer, and a rescuer that unblocks a reader stuck on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.rescued = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._rescue, daemon=True)
        self._thread.start()

    def _rescue(self) -> None:
        # A correct reader opens and closes the FIFO within milliseconds; only a reader still
        # there after the grace period is stuck.
        if self._done.wait(3.0):
            return
        while not self._done.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    return
                time.sleep(0.05)
                continue
            self.rescued = True
            os.write(fd, b"{}")
            os.close(fd)
            return

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Fifo]:
    f = Fifo(tmp_path / "fifo")
    yield f
    f.close()
    assert not f.rescued, "a reader blocked on the FIFO"


@pytest.fixture
def oversize(tmp_path: Path) -> Callable[[int], Path]:
    """A sparse regular file of exactly ``n`` bytes (no disk used)."""

    def make(n: int) -> Path:
        path = tmp_path / f"big-{n}"
        with path.open("wb") as handle:
            handle.truncate(n)
        return path

    return make


def hostile(kind: str, fifo: Fifo, tmp_path: Path) -> str:
    return {"zero": "/dev/zero", "fifo": str(fifo.path), "directory": str(tmp_path)}[kind]


KINDS = ["zero", "fifo", "directory"]
WHAT = {"zero": "a character device", "fifo": "a FIFO", "directory": "a directory"}


# -- the command line ----------------------------------------------------------------------------


def _verify_args(tmp_path: Path, *extra: str) -> list[str]:
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}")
    return ["verify", "--digest", DIGEST, "--bundle", str(bundle), *extra]


GITHUB_FLAGS = ["--issuer", GITHUB, "--github-repository-id", "1"]


@pytest.mark.parametrize("kind", KINDS)
def test_cli_jwks_bundle_policy_and_inspect_refuse_what_is_not_a_regular_file(
    kind: str, fifo: Fifo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--jwks /dev/zero`` was a MemoryError; a FIFO as --bundle, --jwks or --policy hung."""
    path = hostile(kind, fifo, tmp_path)
    cases = [
        (_verify_args(tmp_path, *GITHUB_FLAGS, "--jwks", path, "--offline"), "JWKS file"),
        (["verify", "--digest", DIGEST, "--bundle", path, *GITHUB_FLAGS], "input"),
        (_verify_args(tmp_path, "--policy", path), "policy file"),
        (["inspect", path], "input"),
        (["jwks", "--archive", str(tmp_path / "a.sqlite"), "import", GITHUB, path], "input"),
    ]
    for argv, what in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"cannot read {what} {path}: it is {WHAT[kind]}" in err, err
        assert "not a regular file" in err


def test_cli_artifact_and_session_refuse_what_is_not_a_regular_file(
    fifo: Fifo, tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    session = tmp_path / "session.json"
    save_session(session, signer)
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}")
    for path in ("/dev/zero", str(fifo.path), str(tmp_path)):
        # The artifact to hash: /dev/zero would be hashed for ever.
        assert main(["verify", "--file", path, "--bundle", str(bundle), *GITHUB_FLAGS]) == 2
        assert f"cannot read file {path}: it is" in capsys.readouterr().err
        assert main(["sign", "--file", path, "--session", str(session)]) == 2
        assert f"cannot read file {path}: it is" in capsys.readouterr().err
        assert main(["sign", "--digest", DIGEST, "--session", path]) == 2
        assert f"cannot read session {path}: it is" in capsys.readouterr().err


@pytest.mark.parametrize("kind", KINDS)
def test_policy_file_key_material_is_read_bounded_too(
    kind: str, fifo: Fifo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``jwks_file = "/dev/zero"`` in a (trusted) policy file: a clear error, not MemoryError."""
    path = hostile(kind, fifo, tmp_path)
    policy = tmp_path / "p.toml"
    policy.write_text(f"""
version = 1
[[issuers]]
issuer = "{GITHUB}"
jwks_file = "{path}"
[[signers]]
name = "build"
github = {{ repository_id = "1" }}
""")
    argv = _verify_args(tmp_path, "--policy", str(policy), "--offline", "--trust-policy-anchors")
    assert main(argv) == 2
    assert f"cannot read JWKS file {path}: it is {WHAT[kind]}" in capsys.readouterr().err


def test_jwks_archive_that_is_no_regular_file(
    fifo: Fifo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "archives"
    (directory / "jwks-archive.sqlite").mkdir(parents=True)  # DIR/ holds a directory, not a file
    for path, given in (
        ("/dev/zero", "/dev/zero"),
        (str(fifo.path), str(fifo.path)),
        (str(directory / "jwks-archive.sqlite"), f"{directory}/"),
    ):
        with pytest.raises(ConfigError, match=f"cannot open JWKS archive {path}: not a regular"):
            JwksArchive(path)
        argv = _verify_args(tmp_path, *GITHUB_FLAGS, "--jwks-archive", given, "--offline")
        assert main(argv) == 2
        assert "not a regular file" in capsys.readouterr().err


def test_standard_input_is_bounded(tmp_path: Path) -> None:
    """``-`` reads at most MAX_INPUT + 1 bytes, even from an endless stream."""
    with open("/dev/zero", "rb") as zero:
        result = subprocess.run(
            [sys.executable, "-m", "opkey", "inspect", "-"],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert f"standard input (-) is larger than {MAX_INPUT} bytes" in result.stderr
    assert "Traceback" not in result.stderr


# -- the limits, exactly --------------------------------------------------------------------------


def test_each_reader_refuses_one_byte_over_its_limit_and_reads_its_limit(
    oversize: Callable[[int], Path], tmp_path: Path
) -> None:
    limits: list[tuple[int, Callable[[Path], object], str, type[OpkeyError]]] = [
        (MAX_JWKS_FILE_BYTES, lambda p: PinnedKeys.from_file(GITHUB, p), "JWKS file", FormatError),
        (POLICY_LIMIT, load_policy_file, "policy file", ConfigError),
        (MAX_SESSION_BYTES, load_session, "session", ConfigError),
    ]
    for limit, read, what, error in limits:
        over = oversize(limit + 1)
        over.chmod(0o600)
        with pytest.raises(error, match=f"{what} {over} is larger than {limit} bytes"):
            read(over)
        at_limit = oversize(limit)
        at_limit.chmod(0o600)
        with pytest.raises(OpkeyError) as info:  # read, then refused as content (zero bytes)
            read(at_limit)
        assert "larger than" not in str(info.value), what
    from opkey.cli._common import read_input

    with pytest.raises(FormatError, match=f"larger than {MAX_INPUT} bytes"):
        read_input(str(oversize(MAX_INPUT + 1)))
    assert len(read_input(str(oversize(MAX_INPUT)))) == MAX_INPUT


def test_the_bound_holds_when_the_size_lies() -> None:
    """Files in /proc report size 0: the read itself stops at limit + 1 bytes."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux /proc")
    assert os.stat(status).st_size == 0
    with pytest.raises(FormatError, match="larger than 16 bytes"):
        read_regular_file(status, limit=16, what="status")
    assert read_regular_file(status, limit=1 << 20, what="status").startswith(b"Name:")


def test_read_stream_bound() -> None:
    import io

    assert read_stream(io.BytesIO(b"x" * 10), limit=10) == b"x" * 10
    with pytest.raises(FormatError, match="larger than 10 bytes"):
        read_stream(io.BytesIO(b"x" * 11), limit=10)


def test_symlink_to_a_regular_file_is_read_but_to_a_device_is_not(tmp_path: Path) -> None:
    """Inputs follow links (configuration directories link to shared files); what is finally
    opened is what is checked."""
    target = tmp_path / "real.json"
    target.write_bytes(b"{}")
    (tmp_path / "link.json").symlink_to(target)
    assert read_regular_file(tmp_path / "link.json", limit=10) == b"{}"
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(FormatError, match="it is a character device"):
        read_regular_file(tmp_path / "zero", limit=10)
    with pytest.raises(FormatError, match="it is a character device"):
        Digest.of_file(tmp_path / "zero")


# -- writes ---------------------------------------------------------------------------------------


@pytest.fixture
def signer() -> Signer:
    pkt, key = MiniOP().pktoken()
    return Signer(pkt, key)


def _plant_predictable_links(directory: Path, name: str, victim: Path) -> None:
    """Symlinks at the temporary names opkey used to pick (name + pid), for many pids."""
    for pid in {os.getpid(), *range(os.getpid() - 50, os.getpid() + 50)}:
        link = directory / f".{name}.{pid}.tmp"
        if not link.exists() and not link.is_symlink():
            link.symlink_to(victim)


def test_bundle_write_never_follows_planted_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    shared = tmp_path / "shared"
    shared.mkdir()
    _plant_predictable_links(shared, "out.json", victim)
    write_new_file(shared / "out.json", b'{"bundle": 1}')
    assert victim.read_bytes() == b"precious"
    assert (shared / "out.json").read_bytes() == b'{"bundle": 1}'
    # A link at the target name itself is replaced, not written through.
    (shared / "linked.json").symlink_to(victim)
    write_new_file(shared / "linked.json", b"new")
    assert victim.read_bytes() == b"precious"
    assert not (shared / "linked.json").is_symlink()
    assert (shared / "linked.json").read_bytes() == b"new"


def test_a_link_planted_at_the_name_we_pick_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker guesses our random name (we make them right): O_EXCL | O_NOFOLLOW refuses
    to create through the link and another name is drawn."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    names = iter(["guessed", "guessed", "fresh"])
    monkeypatch.setattr("opkey.files.secrets.token_hex", lambda n: next(names))
    (tmp_path / ".out.json.guessed.tmp").symlink_to(victim)
    write_file_atomically(tmp_path / "out.json", b"data", what="bundle")
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "out.json").read_bytes() == b"data"
    # Every name taken: a clear error, the victim untouched.
    monkeypatch.setattr("opkey.files.secrets.token_hex", lambda n: "guessed")
    with pytest.raises(ConfigError, match=r"fresh temporary names .* were all taken"):
        write_file_atomically(tmp_path / "out.json", b"other", what="bundle")
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "out.json").read_bytes() == b"data"


def test_session_save_survives_leftovers_and_is_0600_from_creation(
    tmp_path: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leftover temporary session file made ``opkey login --save`` crash (FileExistsError)."""
    path = tmp_path / "session.json"
    (tmp_path / f".session.json.{os.getpid()}.tmp").write_text("leftover")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    _plant_predictable_links(tmp_path, "session.json", victim)
    modes: list[int] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr("opkey.files.os.replace", spy)
    old_umask = os.umask(0)  # even with no umask, the key is never readable by others
    try:
        save_session(path, signer)
    finally:
        os.umask(old_umask)
    assert modes == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert victim.read_bytes() == b"precious"
    assert load_session(path, now=NOW).pktoken.hash() == signer.pktoken.hash()


def test_bundles_are_ordinary_files_and_failed_writes_leave_nothing(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_new_file(tmp_path / "b.json", b"{}")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o644
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(FormatError, match=r"cannot write output file .*dir\.json"):
        write_new_file(tmp_path / "dir.json", b"{}")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(FormatError, match="cannot write output file"):
        write_new_file(tmp_path / "missing" / "b.json", b"{}")


BROWSER_SCRIPT = """\
#!{python}
import sys
import urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
with opener.open(sys.argv[1], timeout=10) as response:
    response.read()
"""


def test_login_save_with_a_leftover_temporary_file(
    dev_idp: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``opkey login --save`` end to end against the dev IdP, after a crashed earlier run left
    its temporary file behind and someone planted links at the old predictable names."""
    from opkey.sandbox.devidp import DevIdP

    assert isinstance(dev_idp, DevIdP)
    browser = tmp_path / "browser"
    browser.write_text(BROWSER_SCRIPT.format(python=sys.executable))
    browser.chmod(0o700)
    monkeypatch.setenv("BROWSER", str(browser))
    session = tmp_path / "session.json"
    (tmp_path / f".session.json.{os.getpid()}.tmp").write_text("leftover")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    _plant_predictable_links(tmp_path, "session.json", victim)
    argv = ["login", "--provider", "browser", "--issuer", dev_idp.issuer]
    assert main([*argv, "--client-id", dev_idp.client_id, "--save", str(session)]) == 0
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert json.loads(session.read_text())["mediaType"].startswith("application/vnd.opkey")
    assert victim.read_bytes() == b"precious"


def test_dev_idp_env_file_is_private_and_atomic(tmp_path: Path) -> None:
    from opkey.cli.dev_idp import write_env_file

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "dev.env").symlink_to(victim)
    write_env_file(tmp_path / "dev.env", {"A": "1"})
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "dev.env").read_text() == "A=1\n"
    assert stat.S_IMODE((tmp_path / "dev.env").stat().st_mode) == 0o600
