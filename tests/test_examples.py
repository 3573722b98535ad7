"""Every example in examples/ runs and does what it says."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from opkey import Digest, GitHubActionsProvider, JwksClient, Signer, load_policy_file
from opkey.cli import build_parser
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(EXAMPLES.parent)},
    )


def test_every_python_example_has_a_test() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == {"sign_and_verify.py", "verify_offline.py"}


def test_sign_and_verify() -> None:
    result = _run("sign_and_verify.py")
    assert result.returncode == 0, result.stderr
    assert "verified: app.tar.gz signed by repo:octo-org/octo-repo" in result.stdout
    assert "rejected for another repository" in result.stdout


def test_verify_offline_with_two_stage_sign_off(make_dev_idp: object, tmp_path: Path) -> None:
    assert callable(make_dev_idp)
    idp: DevIdP = make_dev_idp()
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release")
    bundles = []
    for workflow in ("release.yml", "scan.yml"):
        workload = GitHubWorkload.for_repository("octo-org/octo-repo", workflow_file=workflow)
        idp.provider.settings = dataclasses.replace(idp.provider.settings, github=workload)
        provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
        bundle = Signer.from_provider(provider).sign_digest(Digest.of_file(artifact))
        path = tmp_path / f"{workflow}.opkey.json"
        path.write_bytes(bundle.to_json())
        bundles.append(str(path))
    # the example policy, pointed at the dev issuer instead of GitHub's
    policy_text = (
        (EXAMPLES / "release-policy.toml")
        .read_text()
        .replace("https://token.actions.githubusercontent.com", idp.issuer)
    )
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text)
    for signer in load_policy_file(policy).signers:
        assert signer.policy.describe()
    jwks = tmp_path / "jwks.json"
    with urllib.request.urlopen(f"{idp.issuer}/.well-known/jwks", timeout=5) as response:
        jwks.write_bytes(response.read())
    idp.stop()  # from here on there is no provider to talk to: verification is offline
    ok = _run("verify_offline.py", str(artifact), str(policy), str(jwks), *bundles)
    assert ok.returncode == 0, ok.stderr
    assert "build: signed by" in ok.stdout
    assert "scan: signed by" in ok.stdout
    missing = _run("verify_offline.py", str(artifact), str(policy), str(jwks), bundles[0])
    assert missing.returncode == 1
    assert "'scan'" in missing.stderr
    artifact.write_bytes(b"release, modified")
    tampered = _run("verify_offline.py", str(artifact), str(policy), str(jwks), *bundles)
    assert tampered.returncode == 1


def test_github_actions_workflow_example() -> None:
    workflow = (EXAMPLES / "github-actions" / "release.yml").read_text()
    assert re.search(r"^permissions:\n(  .*\n)*  id-token: write", workflow, re.M)
    commands = re.findall(
        r"^\s+(?:run: )?(opkey (?:sign|verify)[^\n]*(?:\n\s+--[^\n]*)*)", workflow, re.M
    )
    assert len(commands) >= 3
    parser = build_parser()
    for command in commands:
        command = re.sub(r"\$\{\{[^}]*\}\}", "X", command.split(" #")[0])
        words = [w for w in re.split(r"\s+", command.strip()) if w and w != ">"]
        words = [w.strip('"') for w in words]
        args = parser.parse_args(words[1:])
        assert args.command in ("sign", "verify")


@pytest.mark.parametrize("name", ["release-policy.toml"])
def test_policy_examples_parse(name: str) -> None:
    policy = load_policy_file(EXAMPLES / name)
    assert [s.name for s in policy.signers] == ["build", "scan"]
