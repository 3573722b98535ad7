"""Running the real cosign (v2 and v3, built from the module proxy) offline, against loopback.

cosign is a network program: without care it asks Sigstore's TUF repository for a trusted root
(cosign v2 does so even for ``verify --key``, then warns and goes on), and any registry
reference it is handed. :class:`Cosign` runs it with

* a home, docker config and TUF cache of the test's own (nothing of the user's is read);
* ``HTTPS_PROXY``/``HTTP_PROXY`` pointing at a :class:`Tripwire`: a loopback socket that counts
  connections. Go never proxies loopback addresses, so registry traffic on 127.0.0.1 goes
  straight through, while any request to the outside world lands on the tripwire (and fails)
  instead of leaving the machine. Tests assert the tripwire saw nothing;
* for ``verify --key``, :meth:`Cosign.verify_key_args`: ``--insecure-ignore-tlog=true`` (opkey
  signatures are not in Rekor) and, for v2, ``--trusted-root`` naming an empty trusted root,
  which stops v2's TUF fetch (v3 skips it by itself when given a key and no transparency log,
  ``verifyOfflineWithKey`` in ``cmd/cosign/cli/verify/common.go``).

Verification of the classic ``.sig`` layout needs no further flag in v3: it first looks for a
Sigstore bundle among the image's OCI 1.1 referrers and falls back to the ``.sig`` tag when
there is none. ``--new-bundle-format=false`` skips that look-up (one request fewer).
Signing in the classic layout with v3 needs ``--new-bundle-format=false
--use-signing-config=false`` beside ``--tlog-upload=false`` (:meth:`Cosign.sign_key_args`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.toolchain import go_tool

__all__ = [
    "COSIGN_MODULES",
    "EMPTY_TRUSTED_ROOT",
    "Cosign",
    "Tripwire",
    "cosign_for",
    "tripwire",
]

#: The tool modules under tests/tools that build cosign, oldest first.
COSIGN_MODULES = ("cosign-v2", "cosign-v3")

#: A Sigstore trusted root that trusts nothing: with ``--key`` nothing else is needed.
EMPTY_TRUSTED_ROOT = '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'

#: The password of the key pairs tests generate (``COSIGN_PASSWORD``).
KEY_PASSWORD = "opkey-test-password"


class Tripwire:
    """A loopback TCP listener that accepts, counts and closes every connection."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for proxy variables."""
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@contextmanager
def tripwire() -> Iterator[Tripwire]:
    """A :class:`Tripwire`, closed afterwards."""
    wire = Tripwire()
    try:
        yield wire
    finally:
        wire.close()


@dataclass(frozen=True)
class Cosign:
    """One cosign binary, run in a sandbox directory with outside traffic on a tripwire."""

    binary: Path
    module: str
    home: Path
    proxy: str

    @property
    def major(self) -> int:
        """2 or 3."""
        return int(self.module.rsplit("-v", 1)[1])

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """What cosign runs with: nothing from the user's environment but ``PATH``."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "DOCKER_CONFIG": str(self.home / "docker"),
            "TUF_ROOT": str(self.home / "tuf"),
            "HTTPS_PROXY": self.proxy,
            "HTTP_PROXY": self.proxy,
            "COSIGN_PASSWORD": KEY_PASSWORD,
            "COSIGN_YES": "true",
        }
        env.update(extra or {})
        return env

    def run(
        self, *args: str, timeout: float = 120, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cosign ARGS`` and return the finished process (never raises on exit codes)."""
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.environment(),
            cwd=cwd or self.home,
            timeout=timeout,
            check=False,
        )

    def trusted_root(self) -> Path:
        """The empty trusted root file (written on first use)."""
        path = self.home / "trusted_root.json"
        if not path.exists():
            path.write_text(EMPTY_TRUSTED_ROOT)
        return path

    def verify_key_args(self, public_key: Path, image: str) -> list[str]:
        """``verify --key`` arguments that check a key signature and talk to nothing else."""
        args = ["verify", "--key", str(public_key), "--insecure-ignore-tlog=true"]
        if self.major == 2:
            args += ["--trusted-root", str(self.trusted_root())]
        return [*args, image]

    def verify(self, public_key: Path, image: str) -> subprocess.CompletedProcess[str]:
        """``cosign verify --key PUBLIC_KEY IMAGE`` without transparency log or TUF."""
        return self.run(*self.verify_key_args(public_key, image))

    def sign_key_args(self, key: Path, image: str) -> list[str]:
        """``sign --key`` arguments that write the classic ``.sig`` tag and no log entry."""
        args = ["sign", "--key", str(key), "--tlog-upload=false", "-y"]
        if self.major >= 3:
            args += ["--new-bundle-format=false", "--use-signing-config=false"]
        return [*args, image]

    def generate_key_pair(self, directory: Path) -> tuple[Path, Path]:
        """``cosign generate-key-pair`` (encrypted with :data:`KEY_PASSWORD`) in ``directory``;
        returns the private and public key paths."""
        directory.mkdir(parents=True, exist_ok=True)
        result = self.run("generate-key-pair", cwd=directory)
        if result.returncode != 0:
            raise AssertionError(f"cosign generate-key-pair failed: {result.stderr}")
        return directory / "cosign.key", directory / "cosign.pub"

    def check(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run and require exit status 0 (the assertion message carries cosign's stderr)."""
        result = self.run(*args)
        assert result.returncode == 0, f"cosign {' '.join(args)}: {result.stderr[-2000:]}"
        return result


def cosign_for(module: str, home: Path, wire: Tripwire) -> Cosign:
    """The cosign of ``module`` (skips, or fails under CI=true, when it is not built)."""
    home.mkdir(parents=True, exist_ok=True)
    return Cosign(go_tool(module, "cosign"), module, home, wire.url)


@pytest.fixture(scope="session")
def session_tripwire() -> Iterator[Tripwire]:
    """One tripwire for the session; tests compare its count before and after."""
    with tripwire() as wire:
        yield wire


@pytest.fixture(params=COSIGN_MODULES)
def cosign(
    request: pytest.FixtureRequest, tmp_path: Path, session_tripwire: Tripwire
) -> Iterator[Cosign]:
    """Each built cosign in turn, sandboxed in the test's tmp dir; the test fails if cosign
    tried to reach anything but loopback."""
    before = session_tripwire.connections
    yield cosign_for(request.param, tmp_path / "cosign-home", session_tripwire)
    assert session_tripwire.connections == before, "cosign tried to reach the network"
