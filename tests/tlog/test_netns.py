"""The tests' own network namespace: isolation, the loopback bridge, and the skip rule."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.tlog import netns as netns_module
from tests.tlog.netns import NetworkNamespace, require_netns, wait_until


@pytest.fixture
def private_netns() -> Iterator[NetworkNamespace]:
    namespace = NetworkNamespace.start([8000])
    try:
        yield namespace
    finally:
        namespace.close()


def test_a_server_on_every_interface_is_reached_through_the_bridge_only(
    private_netns: NetworkNamespace, tmp_path: Path
) -> None:
    (tmp_path / "hello").write_text("from inside")
    argv = [sys.executable, "-m", "http.server", "--bind", "0.0.0.0", "8000"]
    server = private_netns.popen("http", [*argv, "--directory", str(tmp_path)], tmp_path)
    url = private_netns.url(8000, "/hello")
    wait_until(lambda: requests.get(url, timeout=2).ok, timeout=20, what="http", process=server)
    assert requests.get(url, timeout=5).text == "from inside"
    # Inside there is nothing but the namespace's own loopback.
    interfaces = private_netns.run(["cat", "/proc/net/dev"]).stdout.splitlines()[2:]
    assert [line.split(":")[0].strip() for line in interfaces] == ["lo"]


def test_closing_stops_what_runs_inside(private_netns: NetworkNamespace, tmp_path: Path) -> None:
    server = private_netns.popen("sleeper", ["sleep", "600"], tmp_path)
    private_netns.close()
    assert server.process.poll() is not None
    assert private_netns.holder.poll() is not None


def test_stopping_a_server_stops_what_it_forked(
    private_netns: NetworkNamespace, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 600 & echo $! > {pid_file}; wait"
    server = private_netns.popen("forking", ["sh", "-c", script], tmp_path)
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=10, what="child")
    child = int(pid_file.read_text())
    server.stop(grace=0.5)
    wait_until(
        lambda: not Path(f"/proc/{child}").exists() or _zombie(child), timeout=10, what="exit"
    )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def test_without_namespaces_the_tests_skip_and_ci_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPKEY_NETNS_MODE", "none")
    netns_module._mode.cache_clear()
    try:
        monkeypatch.delenv("CI", raising=False)
        with pytest.raises(pytest.skip.Exception, match="network namespaces are not available"):
            require_netns()
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="CI=true"):
            require_netns()
    finally:
        netns_module._mode.cache_clear()
