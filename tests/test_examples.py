"""Every example in examples/ runs and does what it says."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

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


# -- the GitHub Actions workflow (examples/github-actions/release.yml and the README's) -------

ROOT = EXAMPLES.parent
#: Expressions that may appear inside a run: script: values GitHub computes, which an attacker
#: cannot choose. Everything else reaches scripts through env: (script injection).
SAFE_IN_RUN = {"github.sha", "github.run_id", "github.run_number", "github.run_attempt"}
_USES = re.compile(r"^\s*(?:- )?(?:uses):\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*))?$", re.M)
_PLACEHOLDER = "opkey-dev/opkey@" + "0" * 40


def _readme_workflow() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Signing in GitHub Actions", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1)


WORKFLOWS = {
    "release.yml": lambda: (EXAMPLES / "github-actions" / "release.yml").read_text(),
    "README": _readme_workflow,
}


def _load(text: str) -> dict[str, Any]:
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    if True in document:  # YAML 1.1 reads the key `on` as true
        document["on"] = document.pop(True)
    return document


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = document["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _index(steps: list[dict[str, Any]], action: str) -> int:
    found = [
        i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith(action + "@")
    ]
    assert len(found) == 1, f"expected one {action} step"
    return found[0]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_is_a_complete_job_with_the_permissions_it_needs(name: str) -> None:
    document = _load(WORKFLOWS[name]())
    assert document["on"]
    assert document.get("permissions") in (None, {}), "grant permissions per job"
    (job,) = document["jobs"].values()
    assert job["runs-on"]
    assert job["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "packages": "write",
    }


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_pins_every_action_to_a_commit(name: str) -> None:
    text = WORKFLOWS[name]()
    uses = list(_USES.finditer(text))
    assert len(uses) >= 4
    for match in uses:
        ref, comment = match.group("ref"), match.group("comment") or ""
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
        if ref == _PLACEHOLDER:
            assert "reviewed" in comment, "the placeholder must say what to put there"
        else:
            assert re.fullmatch(r"v\d+\.\d+\.\d+", comment), f"{ref}: say which release"


def test_readme_and_example_pin_the_same_releases() -> None:
    pins = []
    for read in WORKFLOWS.values():
        found = {}
        for match in _USES.finditer(read()):
            action, sha = match.group("ref").split("@")
            found[action] = (sha, match.group("comment"))
        pins.append(found)
    readme, example = pins[1], pins[0]
    for action, pin in readme.items():
        if action != "opkey-dev/opkey":
            assert example[action] == pin, action


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_keeps_expressions_out_of_scripts(name: str) -> None:
    for step in _steps(_load(WORKFLOWS[name]())):
        for expression in re.findall(r"\$\{\{\s*(.*?)\s*\}\}", str(step.get("run", ""))):
            assert expression in SAFE_IN_RUN, f"{expression!r} in a run: script; pass it in env:"


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_signs_the_pushed_digest_of_a_lower_cased_image(name: str) -> None:
    text = WORKFLOWS[name]()
    assert "ghcr.io/${{ github.repository" not in text  # mixed-case owners break that
    steps = _steps(_load(text))
    namer = next(s for s in steps if "ghcr.io/" in str(s.get("run", "")))
    assert namer["env"]["REPOSITORY"] == "${{ github.repository }}"
    assert "ghcr.io/${REPOSITORY,,}" in namer["run"]  # bash lower-casing
    login, build = _index(steps, "docker/login-action"), _index(steps, "docker/build-push-action")
    sign = _index(steps, "opkey-dev/opkey")
    assert login < build < sign
    assert steps[login]["with"]["registry"] == "ghcr.io"
    assert steps[build]["with"]["push"] is True
    build_id = steps[build]["id"]
    assert steps[build]["with"]["tags"].startswith(f"${{{{ steps.{namer['id']}.outputs.name }}}}:")
    image = steps[sign]["with"]["image"]
    assert image == (
        f"${{{{ steps.{namer['id']}.outputs.name }}}}@${{{{ steps.{build_id}.outputs.digest }}}}"
    )
    assert not any("opkey sign" in str(s.get("run", "")) for s in steps)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_uses_the_actions_inputs(name: str) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = _steps(_load(WORKFLOWS[name]()))
    sign = steps[_index(steps, "opkey-dev/opkey")]
    assert set(sign["with"]) <= set(action["inputs"])
    assert sign["with"]["files"] == "app.tar.gz"
    assert sign["with"]["python-version"]  # a known Python, whatever the runner image has


def test_example_verifies_the_file_and_the_image() -> None:
    steps = _steps(_load(WORKFLOWS["release.yml"]()))
    sign = steps[_index(steps, "opkey-dev/opkey")]
    check = next(s for s in steps if "verify" in str(s.get("run", "")))
    assert check["env"]["OPKEY"] == f"${{{{ steps.{sign['id']}.outputs.opkey }}}}"
    assert check["env"]["IMAGE"] == sign["with"]["image"]
    parser = build_parser()
    targets = []
    for line in check["run"].strip().splitlines():
        words = [w.strip('"') for w in line.split()]
        assert words[0] == "$OPKEY"
        args = parser.parse_args(words[1:])
        assert args.command == "verify"
        assert args.github_repository_id == "$REPOSITORY_ID"
        assert args.github_ref == "$REF"
        targets += [*args.file, *args.image]
    assert targets == ["app.tar.gz", "$IMAGE"]


@pytest.mark.parametrize("name", ["release-policy.toml"])
def test_policy_examples_parse(name: str) -> None:
    policy = load_policy_file(EXAMPLES / name)
    assert [s.name for s in policy.signers] == ["build", "scan"]
