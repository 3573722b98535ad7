"""The GitHub Action (action.yml): its steps run as the Actions runner runs them, and sign.

The job is simulated: the runner's environment variables, with the ID token request URL and
token pointing at the dev IdP's GitHub-style endpoint, and pip restricted to the locked wheels
(``dependency_wheels``), so the install step does exactly what it does on GitHub, offline.
The signatures are then checked with ``opkey verify`` as a verifier would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from opkey import __version__
from opkey.cli import main
from opkey.registry import ImageReference
from opkey.sandbox.devidp import DevIdP
from tests.packaging.conftest import ROOT, locked, offline_pip_env
from tests.packaging.runner import ActionRun, load_action, parse_outputs, run_action

REPO_ID = "614000001"
DIGEST = "sha256:" + "5e" * 32
_SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``RUNNER_TEMP`` of one simulated job: every use of the action in this module shares it."""
    return tmp_path_factory.mktemp("runner-temp")


def job_env(idp: DevIdP, runner_temp: Path, home: Path, wheels: Path) -> dict[str, str]:
    """The environment of a GitHub Actions job step on a Linux runner."""
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "CI": "true",
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_REPOSITORY": "octo-org/octo-repo",
        "GITHUB_SHA": "6a8b9c2d4e1f30718293a4b5c6d7e8f901234567",
        **idp.env(),  # GITHUB_ACTIONS=true, ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, issuer
    }
    return offline_pip_env(wheels, env)


def use_action(
    idp: DevIdP,
    runner_temp: Path,
    wheels: Path,
    workspace: Path,
    **inputs: str,
) -> ActionRun:
    inputs = {"python": sys.executable, **inputs}
    return run_action(
        ROOT,
        inputs={name.replace("_", "-"): value for name, value in inputs.items()},
        env=job_env(idp, runner_temp, workspace.parent / "home", wheels),
        workspace=workspace,
        scratch=workspace.parent / f"scratch-{len(list(workspace.parent.glob('scratch-*')))}",
    )


def verify(*target: str, repository_id: str = REPO_ID, issuer: str) -> int:
    return main(["verify", *target, "--issuer", issuer, "--github-repository-id", repository_id])


@pytest.mark.slow
def test_action_installs_opkey_from_its_checkout_and_signs_files_and_a_digest(
    dev_idp: DevIdP,
    runner_temp: Path,
    dependency_wheels: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "dist" / "docs").mkdir(parents=True)
    (workspace / "dist" / "app.tar.gz").write_bytes(b"release 1.0")
    (workspace / "dist" / "app file.zip").write_bytes(b"release 1.0, zipped")
    (workspace / "dist" / "old.opkey.json").write_text("{}")  # a bundle: never signed
    (workspace / "notes.txt").write_text("notes")
    run = use_action(
        dev_idp,
        runner_temp,
        dependency_wheels,
        workspace,
        files="dist/*\nnotes.txt\n",
        digest=DIGEST,
    )
    assert run.ok, run.log
    assert [step.skipped for step in run.steps] == [True, False, False]  # no setup-python
    assert run.outputs["version"] == __version__
    bundles = run.outputs["bundles"].splitlines()
    assert bundles == [
        "opkey-bundle.json",
        "dist/app file.zip.opkey.json",
        "dist/app.tar.gz.opkey.json",
        "notes.txt.opkey.json",
    ]
    for name in ("dist/app.tar.gz", "dist/app file.zip", "notes.txt"):
        path = workspace / name
        assert verify("--file", str(path), issuer=dev_idp.issuer) == 0, name
    digest_bundle = str(workspace / "opkey-bundle.json")
    assert verify("--digest", DIGEST, "--bundle", digest_bundle, issuer=dev_idp.issuer) == 0
    # the check can fail: another repository, or another digest, is rejected
    assert (
        verify(
            "--digest", DIGEST, "--bundle", digest_bundle, issuer=dev_idp.issuer, repository_id="1"
        )
        == 1
    )
    other = "sha256:" + "00" * 32
    assert verify("--digest", other, "--bundle", digest_bundle, issuer=dev_idp.issuer) == 1
    capsys.readouterr()
    # opkey ran from the action's own environment, with exactly the locked dependencies
    venvs = list(runner_temp.glob("opkey-*"))
    assert len(venvs) == 1
    freeze = subprocess.run(
        [str(venvs[0] / "bin" / "python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", freeze, re.M)
    }
    assert re.search(r"^opkey @ file://", freeze, re.M)  # built from the checkout
    expected = {entry.name: entry.version for entry in locked() if entry.applies()}
    installed.pop(canonicalize_name("pip"))
    assert installed == expected


@pytest.mark.registry
def test_action_signs_an_image_and_reuses_its_environment(
    dev_idp: DevIdP,
    runner_temp: Path,
    dependency_wheels: Path,
    registry_image: ImageReference,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    first = use_action(
        dev_idp, runner_temp, dependency_wheels, workspace, image=str(registry_image)
    )
    assert first.ok, first.log
    assert first.outputs["bundles"] == ""
    assert "signed" in first.steps[2].stderr
    # The second use also attests the image: a layer of its .att tag.
    (workspace / "scan.json").write_text(json.dumps({"scanner": {"result": "PASSED"}}))
    second = use_action(
        dev_idp,
        runner_temp,
        dependency_wheels,
        workspace,
        image=str(registry_image),
        attest_type="vuln",
        attest_predicate="scan.json",
    )
    assert second.ok, second.log
    assert second.outputs["attestations"] == ""  # an image's attestation is in its registry
    # the same job's second use installs nothing again
    assert "Collecting" not in second.steps[1].stdout + second.steps[1].stderr
    assert len(list(runner_temp.glob("opkey-*"))) == 1
    assert verify(str(registry_image), issuer=dev_idp.issuer) == 0
    out = capsys.readouterr().out
    assert out.count("repo:octo-org/octo-repo") >= 2  # both signatures verified
    identity = ["--issuer", dev_idp.issuer, "--github-repository-id", REPO_ID]
    attested = ["verify-attestation", str(registry_image), *identity]
    assert main([*attested, "--type", "vuln"]) == 0
    assert main([*attested, "--type", "slsaprovenance1"]) == 1
    capsys.readouterr()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "nothing to sign: set image, files or digest"),
        ({"files": "missing/*.tar.gz"}, "no file matches 'missing/*.tar.gz'"),
        (
            {"files": "a\nb", "bundle": "out.json"},
            "bundle names the output of one digest or one file; 2",
        ),
        ({"files": "a", "provider": "browser"}, "--provider browser needs --issuer"),
    ],
)
def test_action_input_errors_are_reported(
    dev_idp: DevIdP,
    runner_temp: Path,
    dependency_wheels: Path,
    tmp_path: Path,
    inputs: dict[str, str],
    message: str,
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "a").write_text("a")
    (workspace / "b").write_text("b")
    run = use_action(dev_idp, runner_temp, dependency_wheels, workspace, **inputs)
    assert not run.ok
    failed = run.steps[-1]
    assert failed.name == "Sign"
    assert message in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr


def test_action_refuses_an_old_python(
    dev_idp: DevIdP, dependency_wheels: Path, tmp_path: Path
) -> None:
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.2'\nexit 1\n")
    old.chmod(0o755)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    run = use_action(
        dev_idp, tmp_path / "temp", dependency_wheels, workspace, python=str(old), files="x"
    )
    assert not run.ok
    assert "opkey needs Python 3.10 or newer" in run.steps[1].stdout
    assert "Python 3.9.2" in run.steps[1].stdout
    assert "python-version" in run.steps[1].stdout


# -- the action's text ---------------------------------------------------------------------


def test_inputs_reach_scripts_only_through_env() -> None:
    action = load_action(ROOT / "action.yml")
    steps = action["runs"]["steps"]
    for step in steps:
        if "run" in step:
            assert "${{" not in step["run"], step["name"]
            assert step["shell"] == "bash"
    # every input is used by some step
    used = " ".join(
        str(step.get("env", "")) + str(step.get("with", "")) + str(step.get("if", ""))
        for step in steps
    )
    for name in action["inputs"]:
        assert f"inputs.{name}" in used, name


def test_actions_it_uses_are_pinned_to_commits() -> None:
    text = (ROOT / "action.yml").read_text()
    uses = re.findall(r"^\s*(?:- )?uses:\s*(\S+)\s*(#.*)?$", text, re.M)
    assert uses
    for reference, comment in uses:
        assert _SHA_PIN.match(reference), reference
        assert re.match(r"# v\d+\.\d+\.\d+$", comment or ""), f"{reference}: name the release"
    setup = next(s for s in load_action(ROOT / "action.yml")["runs"]["steps"] if "uses" in s)
    assert setup["with"]["update-environment"] is False  # the job's own Python is left alone


def test_install_step_uses_only_the_lock() -> None:
    install = next(
        s for s in load_action(ROOT / "action.yml")["runs"]["steps"] if s.get("id") == "install"
    )
    script = install["run"]
    pip_installs = re.findall(r'"\$\{pip\[@\]\}" install(?:[^\n]*\\\n)*[^\n]*', script)
    assert len(pip_installs) == 2
    assert "--require-hashes" in pip_installs[0]
    assert "--only-binary ':all:'" in pip_installs[0]
    assert "action/requirements.txt" in pip_installs[0]
    assert "--no-index" in pip_installs[1]
    assert "--no-build-isolation" in pip_installs[1]
    assert "--no-deps" in pip_installs[1]


def test_github_output_parsing() -> None:
    text = "a=1\nlist<<EOF_X\nx\ny=z\nEOF_X\nb=\n"
    assert parse_outputs(text) == {"a": "1", "list": "x\ny=z", "b": ""}


@pytest.mark.slow
def test_action_stamps_every_signature_with_one_id_token(
    dev_idp: DevIdP,
    runner_temp: Path,
    dependency_wheels: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`timestamp-url` reaches `opkey sign`: the bundles carry tokens from a real authority
    (OpenSSL's `ts -reply`), and verification with its chain proves the signing time."""
    from tests.timestamps.authorities import OpenSslBackend, TsaFront, make_pki
    from tests.toolchain import system_tool

    openssl = system_tool("openssl", "openssl")
    pki = make_pki(tmp_path / "pki", name="opkey action test TSA")
    front = TsaFront(OpenSslBackend(openssl, pki, tmp_path / "tsa"), openssl=openssl, work=tmp_path)
    chain = tmp_path / "tsa-chain.pem"
    chain.write_bytes(pki.chain_pem)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "a.tar.gz").write_bytes(b"a")
    (workspace / "b.tar.gz").write_bytes(b"b")
    try:
        run = use_action(
            dev_idp,
            runner_temp,
            dependency_wheels,
            workspace,
            files="a.tar.gz\nb.tar.gz",
            timestamp_url=front.url,
        )
    finally:
        front.close()
    assert run.ok, run.log
    assert "timestamped by 1 authority" in run.steps[2].stderr
    pktokens = set()
    for name in ("a.tar.gz", "b.tar.gz"):
        path = str(workspace / name)
        argv = ["--file", path, "--timestamp-certs", str(chain), "--require-timestamp"]
        assert verify(*argv, issuer=dev_idp.issuer) == 0, name
        pktokens.add(
            json.dumps(json.loads((workspace / f"{name}.opkey.json").read_text())["pktoken"])
        )
    assert len(pktokens) == 1  # one ID token for every target
    capsys.readouterr()


@pytest.mark.slow
def test_action_attests_every_target_after_signing_it(
    dev_idp: DevIdP,
    runner_temp: Path,
    dependency_wheels: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "dist").mkdir(parents=True)
    (workspace / "dist" / "app.tar.gz").write_bytes(b"release 2.0")
    (workspace / "scan.json").write_text(json.dumps({"scanner": {"result": "PASSED"}}))
    run = use_action(
        dev_idp,
        runner_temp,
        dependency_wheels,
        workspace,
        files="dist/app.tar.gz",
        digest=DIGEST,
        attest_type="vuln",
        attest_predicate="scan.json",
    )
    assert run.ok, run.log
    assert run.outputs["bundles"].splitlines() == [
        "opkey-bundle.json",
        "dist/app.tar.gz.opkey.json",
    ]
    attestations = run.outputs["attestations"].splitlines()
    assert attestations == ["opkey-bundle.att.json", "dist/app.tar.gz.att.opkey.json"]
    artifact = str(workspace / "dist" / "app.tar.gz")
    identity = ["--issuer", dev_idp.issuer, "--github-repository-id", REPO_ID]
    # Each target keeps its signature and gains an attestation of the given predicate.
    assert main(["verify", "--file", artifact, *identity]) == 0
    assert main(["verify-attestation", "--file", artifact, "--type", "vuln", *identity]) == 0
    digest_statement = str(workspace / "opkey-bundle.att.json")
    assert (
        main(
            [
                "verify-attestation",
                "--digest",
                DIGEST,
                "--bundle",
                digest_statement,
                "--type",
                "vuln",
                *identity,
            ]
        )
        == 0
    )
    bundle = json.loads((workspace / "dist" / "app.tar.gz.att.opkey.json").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert statement["predicate"] == {"scanner": {"result": "PASSED"}}
    # The check can fail: another predicate type is not what was attested.
    assert (
        main(["verify-attestation", "--file", artifact, "--type", "slsaprovenance1", *identity])
        == 1
    )
    capsys.readouterr()


def test_action_refuses_a_predicate_without_a_type(
    dev_idp: DevIdP, runner_temp: Path, dependency_wheels: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "a.txt").write_text("a")
    run = use_action(
        dev_idp, runner_temp, dependency_wheels, workspace, files="a.txt", attest_predicate="p.json"
    )
    assert not run.ok
    assert "attest-predicate needs attest-type" in run.log
    assert not (workspace / "a.txt.opkey.json").exists()
