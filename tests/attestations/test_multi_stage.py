"""The multi-stage release of ``examples/multi-stage-policy.toml``, end to end on the command
line: the release workflow attests provenance (written by opkey from its token), the scan
workflow attests its result, the staging deployment signs; the policy requires all three,
each from its own workflow, in one verdict."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opkey.cli import main
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload
from opkey.sandbox.registry import seed_image

pytestmark = pytest.mark.registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi-stage-policy.toml"
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def idp(make_dev_idp: Callable[..., DevIdP]) -> DevIdP:
    return make_dev_idp()


class Stages:
    """Runs opkey as one workflow of ``octo-org/octo-repo`` after another."""

    def __init__(self, idp: DevIdP, monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
        self.idp, self.monkeypatch, self.tmp = idp, monkeypatch, tmp
        for name, value in idp.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp / "no-docker-config"))

    def as_workflow(self, workflow: str, **overrides: Any) -> None:
        workload = GitHubWorkload.for_repository(
            "octo-org/octo-repo", workflow_file=workflow, **overrides
        )
        settings = self.idp.provider.settings
        self.idp.provider.settings = dataclasses.replace(settings, github=workload)

    def build(self, image: str) -> None:
        self.as_workflow("release.yml")
        assert main(["attest", image, "--type", "slsaprovenance1"]) == 0

    def scan(self, image: str, result: str = "PASSED") -> None:
        self.as_workflow("scan.yml")
        report = self.tmp / f"scan-{result}.json"
        report.write_text(
            json.dumps({"scanner": {"uri": "https://scanner.example/v2", "result": result}})
        )
        assert main(["attest", image, "--type", "vuln", "--predicate", str(report)]) == 0

    def stage(self, image: str, workflow: str = "staging.yml") -> None:
        self.as_workflow(workflow, environment="staging")
        assert main(["sign", image]) == 0

    def policy(self) -> Path:
        path = self.tmp / "multi-stage-policy.toml"
        path.write_text(EXAMPLE.read_text().replace(GITHUB, self.idp.issuer))
        return path


def _image(registry: RegistryClient, base: ImageReference, name: str) -> str:
    ref = ImageReference.parse(f"{base.registry}/{base.repository}-{name}:v1")
    return str(seed_image(registry, ref))


@pytest.mark.both_registries
def test_production_deploys_only_what_every_stage_vouched_for(
    idp: DevIdP,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stages = Stages(idp, monkeypatch, tmp_path)
    policy = str(stages.policy())
    image = str(registry_image)
    stages.build(image)
    stages.scan(image)
    stages.stage(image)
    capsys.readouterr()
    assert main(["verify", image, "--policy", policy, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verified"] is True
    met = {r["name"]: r["signature"] for r in report["requirements"]}
    assert set(met) == {"build", "scan", "staging"}
    assert len(set(met.values())) == 3, "three distinct signatures"
    kinds = {s["index"]: s.get("predicate_type") for s in report["signatures"]}
    assert kinds[met["build"]] == "https://slsa.dev/provenance/v1"
    assert kinds[met["scan"]] == "https://cosign.sigstore.dev/attestation/vuln/v1"
    assert kinds[met["staging"]] is None

    # A release whose scan failed does not deploy.
    failed = _image(registry_client, registry_image, "failed")
    stages.build(failed)
    stages.scan(failed, result="FAILED")
    stages.stage(failed)
    capsys.readouterr()
    assert main(["verify", failed, "--policy", policy]) == 1
    error = capsys.readouterr().err
    assert "'scan'" in error
    assert "FAILED" in error

    # Nor one that skipped staging, nor one whose "staging" signature came from the build.
    skipped = _image(registry_client, registry_image, "skipped")
    stages.build(skipped)
    stages.scan(skipped)
    stages.stage(skipped, workflow="release.yml")
    capsys.readouterr()
    assert main(["verify", skipped, "--policy", policy]) == 1
    assert "'staging'" in capsys.readouterr().err

    # verify-attestation checks one predicate type alone.
    assert main(["verify-attestation", image, "--policy", policy, "--type", "vuln"]) == 0
    capsys.readouterr()
    assert main(["tree", image, "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert sorted((e["layout"], e["predicate_type"]) for e in tree["entries"]) == [
        (".att", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        (".att", "https://slsa.dev/provenance/v1"),
        (".sig", None),
    ]
