"""A second registry implementation for the tests, beside the CNCF distribution registry.

go-containerregistry's registry (``pkg/registry``, the registry ``crane registry serve`` runs)
is an independent implementation of the OCI distribution API, in Go, that serves the OCI 1.1
referrers API (``GET /v2/<name>/referrers/<digest>``) when asked to; distribution (Debian's
2.8, and 3.1 too) answers that endpoint with 404. ``tests/tools/ggcr-registry`` builds it from
the module proxy with referrers on, listening on loopback only; why this one is in
``spec/registry.md`` §6.

Fixtures (import them into a test module, or a ``conftest.py``, to use them):

* ``ggcr_registry_server``: one ggcr registry for the whole session (tests use distinct
  repositories, as with ``registry_server``);
* ``each_registry``: parametrized over :data:`REGISTRY_KINDS`, the running server of that
  kind: a test that takes it runs once on each implementation.

:func:`registry_of_kind` gives the session server of a kind from inside another fixture.
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TypeAlias

import pytest

from opkey.errors import ConfigError
from opkey.sandbox.registry import LocalRegistry, free_port
from tests.toolchain import go_tool

__all__ = [
    "REGISTRY_KINDS",
    "GgcrRegistry",
    "RunningRegistry",
    "each_registry",
    "ggcr_registry_server",
    "registry_of_kind",
]

#: The registry implementations tests can run on: the CNCF distribution registry (the
#: ``registry_server`` fixture of ``tests/conftest.py``) and go-containerregistry's.
REGISTRY_KINDS = ("distribution", "ggcr")


class GgcrRegistry:
    """go-containerregistry's registry on ``127.0.0.1:<port>``, blobs under ``root``.

    Manifests and tags live in the process's memory (that is how this registry is built), so
    unlike :class:`~opkey.sandbox.registry.LocalRegistry` a restart forgets them; the fault tests
    that restart a registry therefore stay on distribution.
    """

    kind = "ggcr"

    def __init__(self, root: Path, binary: Path, *, port: int | None = None) -> None:
        self.root = Path(root)
        self.binary = binary
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        """The registry's own messages (start-up, failures)."""
        return self.root / "registry.log"

    @property
    def request_log(self) -> Path:
        """Every request the registry served, one line each (for tests that count them)."""
        return self.root / "requests.log"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until ``/v2/`` answers."""
        if self.running:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(self.binary),
                "-address",
                self.host,
                "-blobs",
                str(self.root / "blobs"),
                "-log",
                str(self.request_log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                raise ConfigError(f"ggcr-registry exited with status {code}; see {self.log_path}")
            if _answers(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise ConfigError(f"ggcr-registry did not answer within {timeout:g}s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the process (its manifests are gone; blobs stay on disk)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> GgcrRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: Either running registry: both have ``host``, ``url``, ``running`` and ``stop``.
RunningRegistry: TypeAlias = LocalRegistry | GgcrRegistry


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@pytest.fixture(scope="session")
def ggcr_registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GgcrRegistry]:
    """A running go-containerregistry registry on 127.0.0.1 for the whole session."""
    binary = go_tool("ggcr-registry")
    server = GgcrRegistry(tmp_path_factory.mktemp("ggcr-registry"), binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def registry_of_kind(request: pytest.FixtureRequest, kind: str) -> RunningRegistry:
    """The session's running registry of ``kind`` (one of :data:`REGISTRY_KINDS`)."""
    if kind == "distribution":
        server: LocalRegistry = request.getfixturevalue("registry_server")
        return server
    if kind == "ggcr":
        ggcr: GgcrRegistry = request.getfixturevalue("ggcr_registry_server")
        return ggcr
    raise LookupError(f"unknown registry kind {kind!r}; known: {', '.join(REGISTRY_KINDS)}")


@pytest.fixture(params=REGISTRY_KINDS)
def each_registry(request: pytest.FixtureRequest) -> RunningRegistry:
    """The running registry of each kind in turn (the test runs once per implementation)."""
    kind: str = request.param
    return registry_of_kind(request, kind)
