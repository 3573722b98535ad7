"""``opkey attest`` and ``opkey verify-attestation`` on files, digests and images, in-process,
with the dev IdP's GitHub-style job, a real registry and a real RFC 3161 authority."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opkey.attestation import SignedAttestation
from opkey.cli import main
from opkey.intoto import Statement
from opkey.registry.attestations import attestation_layers
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from tests.timestamps.conftest import RunningTsa, openssl_bin, openssl_pki, openssl_tsa

__all__ = ["openssl_bin", "openssl_pki", "openssl_tsa"]

REPO_ID = "614000001"
VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"


@pytest.fixture
def ci(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DevIdP:
    """A GitHub Actions job whose identity provider is the dev IdP."""
    for name, value in dev_idp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITLAB_CI", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    return dev_idp


def _who(idp: DevIdP) -> list[str]:
    return ["--issuer", idp.issuer, "--github-repository-id", REPO_ID]


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "scan.json"
    path.write_text(json.dumps({"scanner": {"result": "PASSED"}}))
    return path


def test_attest_and_verify_a_file(
    ci: DevIdP, tmp_path: Path, scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release")
    assert (
        main(["attest", "--file", str(artifact), "--type", "vuln", "--predicate", str(scan)]) == 0
    )
    bundle = tmp_path / "app.tar.gz.att.opkey.json"
    attestation = SignedAttestation.from_json(bundle.read_bytes())
    statement = Statement.from_json(attestation.envelope.payload)
    assert statement.subjects[0].name == "app.tar.gz"
    assert statement.predicate_type == VULN
    capsys.readouterr()
    check = ["verify-attestation", "--file", str(artifact), "--type", "vuln", *_who(ci)]
    assert main([*check, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["signatures"][0]["predicate_type"] == VULN
    assert (
        main(
            ["verify-attestation", "--file", str(artifact), "--type", "slsaprovenance1", *_who(ci)]
        )
        == 1
    )
    assert "not https://slsa.dev/provenance/v1" in capsys.readouterr().err
    # An attestation is not a signature: plain verify does not accept it.
    assert main(["verify", "--file", str(artifact), "--bundle", str(bundle), *_who(ci)]) == 1
    assert "a signature is required" in capsys.readouterr().err
    artifact.write_bytes(b"release, modified")
    assert main(check) == 1
    assert "the attestation is about" in capsys.readouterr().err


def test_provenance_from_the_jobs_token_for_a_digest(
    ci: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = "sha256:" + "12" * 32
    assert main(["attest", "--digest", digest, "--type", "slsaprovenance1"]) == 0
    out = tmp_path / "provenance.json"
    out.write_text(capsys.readouterr().out)
    statement = Statement.from_json(SignedAttestation.from_json(out.read_bytes()).envelope.payload)
    predicate = statement.predicate
    assert (
        predicate["buildDefinition"]["buildType"]
        == "https://actions.github.io/buildtypes/workflow/v1"
    )
    assert predicate["runDetails"]["builder"]["id"] == (
        "https://github.com/octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    )
    args = ["verify-attestation", "--digest", digest, "--bundle", str(out), "--type"]
    assert main([*args, "slsaprovenance1", *_who(ci)]) == 0


def test_attest_refuses_before_any_token_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    digest = "sha256:" + "12" * 32
    assert main(["attest", "--digest", digest, "--type", "vuln"]) == 2
    assert "give the predicate with --predicate FILE" in capsys.readouterr().err
    browser = ["attest", "--digest", digest, "--type", "slsaprovenance1", "--provider", "browser"]
    assert main(browser) == 2
    assert "a login is no build" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["attest", "--digest", digest, "--type", "vuln", "--predicate", str(bad)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err
    assert (
        main(["attest", "--digest", digest, "--type", "not a type", "--predicate", str(bad)]) == 2
    )
    assert "not an absolute URI" in capsys.readouterr().err


def test_attestations_carry_a_proven_signing_time(
    ci: DevIdP,
    openssl_tsa: RunningTsa,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
    scan: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(openssl_tsa.chain_pem)
    stamp = ["--timestamp-url", openssl_tsa.url]
    trust = ["--timestamp-certs", str(chain), "--require-timestamp"]
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release")
    attest = ["attest", "--type", "vuln", "--predicate", str(scan), *stamp]
    assert main([*attest, "--file", str(artifact)]) == 0
    assert main([*attest, str(registry_image)]) == 0
    (layer,) = attestation_layers(registry_client, registry_image)
    assert "dev.opkey/rfc3161timestamp" in layer.annotations
    assert "dev.sigstore.cosign/rfc3161timestamp" not in layer.annotations
    capsys.readouterr()
    for target in (["--file", str(artifact)], [str(registry_image)]):
        assert (
            main(["verify-attestation", *target, "--type", "vuln", *_who(ci), *trust, "--json"])
            == 0
        )
        (signature,) = json.loads(capsys.readouterr().out)["signatures"]
        assert signature["signed_at"]["kind"] == "timestamp"
    # Without a timestamp, a verifier that requires one refuses.
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(b"plain")
    assert main(["attest", "--type", "vuln", "--predicate", str(scan), "--file", str(plain)]) == 0
    assert (
        main(["verify-attestation", "--file", str(plain), "--type", "vuln", *_who(ci), *trust]) == 1
    )
    assert "no proven signing time" in capsys.readouterr().err
