"""A network namespace of the tests' own, with host-loopback ports bridged into it.

Some log servers bind every interface (rekor-server's Prometheus listener is hard-coded to
``:2112``; Trillian's defaults are ``localhost``), and fixed ports would collide with other
test runs on the same machine. So they run in a private network namespace whose only
interface is its own ``lo``:

* :meth:`NetworkNamespace.start` binds one listening socket per wanted port on the host's
  127.0.0.1 (free ports chosen by the kernel), then runs ``netns_forward.py`` under
  ``unshare --net`` with those sockets inherited. That process holds the namespace, brings
  ``lo`` up, and relays each connection on a host port to the fixed port it was paired with
  inside the namespace (so servers inside use fixed ports, and never collide).
* :meth:`NetworkNamespace.popen` starts a program inside with ``nsenter --net=/proc/PID/ns/net``.
* The test process and host tools (``requests``, ``rekor-cli``) talk to
  :meth:`NetworkNamespace.url` on the host side; nothing is exposed beyond 127.0.0.1.

As root ``unshare --net`` is enough; otherwise an unprivileged user namespace is tried
(``unshare --user --map-root-user --net``, entered with ``nsenter --user --net``).
``OPKEY_NETNS_MODE`` forces ``root`` or ``user`` (any other value: none). When neither works,
:func:`require_netns` skips the test with the reason (fails under ``CI=true``).
Every process started here gets ``PR_SET_PDEATHSIG``, so a killed test run leaves none behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO

from tests.toolchain import missing

__all__ = ["NetworkNamespace", "ServerProcess", "require_netns", "start_process", "wait_until"]

_FORWARDER = Path(__file__).with_name("netns_forward.py")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@cache
def _mode() -> tuple[str, str] | tuple[None, str]:
    """``("root" | "user", "")`` for the kind of namespace that works here, or ``(None, why)``."""
    unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
    if unshare is None or nsenter is None:
        return None, "unshare/nsenter (util-linux) are not installed"
    forced = os.environ.get("OPKEY_NETNS_MODE")
    if forced not in (None, "", "root", "user"):
        return None, f"OPKEY_NETNS_MODE={forced}"
    candidates = [forced] if forced else (["root"] if os.geteuid() == 0 else []) + ["user"]
    reasons = []
    for mode in candidates:
        argv = [unshare, *_unshare_flags(mode), "--", "true"]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            reasons.append(f"{' '.join(argv)}: {exc}")
            continue
        if result.returncode == 0:
            return mode, ""
        reasons.append(f"{' '.join(argv)}: {result.stderr.strip() or result.returncode}")
    return None, "; ".join(reasons)


def _unshare_flags(mode: str) -> list[str]:
    return ["--net"] if mode == "root" else ["--user", "--map-root-user", "--net"]


def require_netns() -> str:
    """The namespace mode to use; skips the test (fails it under ``CI=true``) without one."""
    mode, why = _mode()
    if mode is None:
        missing(
            "network namespaces are not available here, so the log servers cannot run "
            f"isolated ({why}); run as root or enable unprivileged user namespaces"
        )
    assert mode is not None
    return mode


@dataclass
class ServerProcess:
    """A child process with its output in a log file; stopped by :meth:`stop`."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        """The end of the process's output, for failure messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise if the process has exited, with the end of its log."""
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with {code}:\n{self.tail()}")

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM to the process's own group, then SIGKILL after ``grace`` seconds (Trillian's
        servers drain for 5 to 10 seconds; their data is thrown away anyway). The group holds
        whatever the process forked, so a wrapper that forks leaves nothing behind."""
        group = self.process.pid  # start_process makes each process a group leader
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def start_process(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start ``argv`` with its output in ``log_dir/name.log``; it dies with the test run."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return ServerProcess(name, process, log)


@dataclass
class NetworkNamespace:
    """A private network namespace held by the forwarder process (see the module docstring)."""

    mode: str
    holder: subprocess.Popen[bytes]
    host_ports: dict[int, int]
    _stdin: IO[bytes] = field(repr=False)
    processes: list[ServerProcess] = field(default_factory=list)

    @classmethod
    def start(cls, ports: Sequence[int]) -> NetworkNamespace:
        """A namespace whose ``ports`` (inside) are reachable from host loopback ports."""
        mode = require_netns()
        listeners = []
        for _ in ports:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            listeners.append(listener)
        unshare = shutil.which("unshare")
        assert unshare is not None
        pairs = [f"{s.fileno()}:{port}" for s, port in zip(listeners, ports, strict=True)]
        holder = subprocess.Popen(
            [unshare, *_unshare_flags(mode), "--", sys.executable, str(_FORWARDER), *pairs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=[s.fileno() for s in listeners],
            preexec_fn=_die_with_parent,
        )
        host_ports = {port: s.getsockname()[1] for s, port in zip(listeners, ports, strict=True)}
        for listener in listeners:
            listener.close()  # the forwarder holds its own copies
        assert holder.stdout is not None
        assert holder.stdin is not None
        line = holder.stdout.readline()
        if line != b"ready\n":
            holder.kill()
            _, err = holder.communicate(timeout=10)
            raise RuntimeError(
                f"the namespace forwarder did not start: {line!r} {err.decode(errors='replace')}"
            )
        return cls(mode, holder, host_ports, holder.stdin)

    def url(self, port: int, path: str = "") -> str:
        """``http://127.0.0.1:<host port>`` for a port inside the namespace."""
        return f"http://127.0.0.1:{self.host_ports[port]}{path}"

    def enter_argv(self) -> list[str]:
        """The ``nsenter`` prefix that runs a command inside this namespace."""
        pid = self.holder.pid
        nsenter = shutil.which("nsenter")
        assert nsenter is not None
        if self.mode == "root":
            return [nsenter, f"--net=/proc/{pid}/ns/net", "--"]
        return [
            nsenter,
            f"--user=/proc/{pid}/ns/user",
            f"--net=/proc/{pid}/ns/net",
            "--preserve-credentials",
            "--",
        ]

    def popen(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> ServerProcess:
        """Start a server inside the namespace; :meth:`close` stops it."""
        server = start_process(name, [*self.enter_argv(), *argv], log_dir, env=env)
        self.processes.append(server)
        return server

    def run(self, argv: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside the namespace."""
        argv = [*self.enter_argv(), *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def close(self) -> None:
        """Stop every server started inside, then the forwarder (the namespace goes with it)."""
        for server in reversed(self.processes):
            server.stop()
        self.processes.clear()
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait(timeout=10)
        for stream in (self.holder.stdout, self.holder.stderr):
            if stream is not None:
                stream.close()


def wait_until(
    check: Callable[[], object],
    *,
    timeout: float,
    what: str,
    process: ServerProcess | None = None,
) -> None:
    """Poll ``check()`` (truthy when ready) every 0.1 s; raise with the server log on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None:
            process.check_alive()
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            log = f"\n{process.tail()}" if process is not None else ""
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s{log}")
        time.sleep(0.1)
