"""Fixtures of the transparency-log tests: real Rekor logs in a network namespace of our own.

* ``tlog_netns``: the session's private network namespace (``tests/tlog/netns.py``), with the
  Rekor v1 and v2 HTTP ports bridged to free ports on the host's 127.0.0.1;
* ``rekor_v1``: rekor-server v1.5.4 on Trillian v1.7.3 and a private MariaDB
  (:class:`~tests.tlog.servers.RekorV1`: ``url``, ``public_key``, ``log_id``, ``tree_id``,
  ``trusted_log``, ``cli`` for rekor-cli);
* ``rekor_v2``: rekor-tiles v2.3.0's POSIX server (:class:`~tests.tlog.servers.RekorV2`:
  ``url``, ``public_key``, ``log_id``, ``origin``, ``trusted_log``).

All are session-scoped: the Rekor v1 stack takes several seconds to start. Each skips with the
reason when a Go tool, MariaDB or namespaces are missing, and fails instead under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tlog.netns import NetworkNamespace
from tests.tlog.servers import (
    REKOR_V1_PORT,
    REKOR_V2_PORT,
    RekorV1,
    RekorV2,
    start_rekor_v1,
    start_rekor_v2,
    stop_rekor_v1,
)


@pytest.fixture(scope="session")
def tlog_netns() -> Iterator[NetworkNamespace]:
    """The private network namespace the log servers run in."""
    netns = NetworkNamespace.start([REKOR_V1_PORT, REKOR_V2_PORT])
    try:
        yield netns
    finally:
        netns.close()


@pytest.fixture(scope="session")
def rekor_v1(
    tlog_netns: NetworkNamespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RekorV1]:
    """A running Rekor v1 log for the whole session."""
    rekor = start_rekor_v1(tlog_netns, tmp_path_factory.mktemp("rekor-v1"))
    try:
        yield rekor
    finally:
        stop_rekor_v1(rekor)


@pytest.fixture(scope="session")
def rekor_v2(
    tlog_netns: NetworkNamespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RekorV2]:
    """A running Rekor v2 log for the whole session (stopped with the namespace)."""
    rekor = start_rekor_v2(tlog_netns, tmp_path_factory.mktemp("rekor-v2"))
    try:
        yield rekor
    finally:
        rekor.process.stop()
