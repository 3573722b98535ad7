"""The GitHub Action's ``tlog-url`` input: the simulated job (``test_action.py``) signs with
the job's GQ256 PK token and logs every signature in the real Rekor v1 log of the tests; the
bundle carries the entry, which verifies under the pinned log."""

from __future__ import annotations

from pathlib import Path

import pytest

from opkey import Bundle
from opkey.cli import main
from opkey.sandbox.devidp import DevIdP
from tests.packaging.test_action import REPO_ID, runner_temp, use_action
from tests.tlog.conftest import rekor_v1, tlog_netns
from tests.tlog.servers import RekorV1

pytestmark = [pytest.mark.slow, pytest.mark.rekor]
__all__ = ["rekor_v1", "runner_temp", "tlog_netns"]  # fixtures


def test_action_logs_every_signature_when_given_a_tlog_url(
    dev_idp: DevIdP,
    runner_temp: Path,
    dependency_wheels: Path,
    rekor_v1: RekorV1,
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "app.tar.gz").write_bytes(b"release 2.0")
    run = use_action(
        dev_idp,
        runner_temp,
        dependency_wheels,
        workspace,
        files="app.tar.gz",
        tlog_url=rekor_v1.url,
    )
    assert run.ok, run.log
    assert "logged at index" in run.steps[2].stderr
    bundle = Bundle.from_json((workspace / "app.tar.gz.opkey.json").read_bytes())
    (entry,) = bundle.tlog_entries
    key = tmp_path / "rekor.pub"
    key.write_bytes(rekor_v1.public_key_pem)
    argv = [
        "verify",
        "--file",
        str(workspace / "app.tar.gz"),
        "--issuer",
        dev_idp.issuer,
        "--github-repository-id",
        REPO_ID,
        "--tlog-key",
        str(key),
        "--tlog-origin",
        rekor_v1.trusted_log.origin,
        "--require-tlog",
    ]
    assert main(argv) == 0
    assert entry.log_index >= 0
    # A log that cannot be reached fails the step, and no bundle is written.
    (workspace / "b.bin").write_bytes(b"b")
    failed = use_action(
        dev_idp,
        runner_temp,
        dependency_wheels,
        workspace,
        files="b.bin",
        tlog_url="http://127.0.0.1:1",
    )
    assert not failed.ok
    assert "transparency log" in failed.log
    assert not (workspace / "b.bin.opkey.json").exists()
