"""``opkey sign`` and ``opkey verify`` in-process against the real dev OpenID provider."""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path

import pytest

from opkey.cli import main
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload

REPO_ID = "614000001"


@pytest.fixture
def ci_env(dev_idp: DevIdP, monkeypatch: pytest.MonkeyPatch) -> DevIdP:
    """The environment of a GitHub Actions job whose identity provider is the dev IdP."""
    for name, value in dev_idp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITLAB_CI", raising=False)
    return dev_idp


def _sign_digest(digest: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["sign", "--digest", digest]) == 0
    captured = capsys.readouterr()
    assert "opkey: signed" in captured.err
    return captured.out


DIGEST = "sha256:" + "12" * 32


def test_sign_digest_prints_a_bundle_and_verify_accepts_it(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    assert json.loads(bundle.read_text())["mediaType"] == "application/vnd.opkey.bundle.v1+json"
    code = main(
        [
            "verify",
            "--digest",
            DIGEST,
            "--bundle",
            str(bundle),
            "--issuer",
            ci_env.issuer,
            "--github-repository-id",
            REPO_ID,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"Verified: {DIGEST}")
    assert "repo:octo-org/octo-repo:ref:refs/heads/main" in out


def test_verify_json_output(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    code = main(
        [
            "verify",
            "--digest",
            DIGEST,
            "--bundle",
            str(bundle),
            "--issuer",
            ci_env.issuer,
            "--github-repository",
            "octo-org/octo-repo",
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["verified"] is True
    assert result["signatures"][0]["claims"]["repository_id"] == REPO_ID
    assert result["signatures"][0]["key_source"] == "live"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--github-repository-id", "999"], "repository_id"),
        (["--github-repository", "octo-org/other"], "repository"),
        (["--github-ref", "refs/heads/dev"], "ref"),
        (["--subject", "repo:octo-org/octo-repo:ref:refs/heads/dev"], "sub"),
        (["--claim", "workflow=other"], "workflow"),
        (["--claim-regex", "repository=octo-org/octo"], "repository"),
    ],
)
def test_verify_rejects_other_identities_with_exit_1(
    ci_env: DevIdP,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    base = ["verify", "--digest", DIGEST, "--bundle", str(bundle), "--issuer", ci_env.issuer]
    if not {"--github-repository-id", "--github-repository"} & set(extra):
        base += ["--github-repository-id", REPO_ID]
    assert main(base + extra) == 1
    err = capsys.readouterr().err
    assert err.startswith("opkey: rejected: ")
    assert message in err


def test_verify_rejects_tampered_digest(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    other = "sha256:" + "13" * 32
    code = main(
        [
            "verify",
            "--digest",
            other,
            "--bundle",
            str(bundle),
            "--issuer",
            ci_env.issuer,
            "--github-repository-id",
            REPO_ID,
        ]
    )
    assert code == 1
    assert "not sha256:1313" in capsys.readouterr().err


def test_sign_and_verify_a_file(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = tmp_path / "release.tar.gz"
    artifact.write_bytes(b"payload" * 1000)
    assert main(["sign", "--file", str(artifact)]) == 0
    assert (tmp_path / "release.tar.gz.opkey.json").exists()
    args = [
        "verify",
        "--file",
        str(artifact),
        "--issuer",
        ci_env.issuer,
        "--github-repository-id",
        REPO_ID,
    ]
    assert main(args) == 0
    artifact.write_bytes(b"payload" * 1000 + b"!")
    assert main(args) == 1


def test_offline_verification_with_pinned_jwks(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    jwks = tmp_path / "jwks.json"
    with urllib.request.urlopen(f"{ci_env.issuer}/.well-known/jwks", timeout=5) as response:
        jwks.write_bytes(response.read())
    code = main(
        [
            "verify",
            "--digest",
            DIGEST,
            "--bundle",
            str(bundle),
            "--issuer",
            ci_env.issuer,
            "--github-repository-id",
            REPO_ID,
            "--jwks",
            str(jwks),
            "--offline",
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["key_source"] == "pinned"


def test_keys_named_by_a_policy_file_need_it_to_be_trusted(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy file's jwks_file is trust: used only with --trust-policy-anchors."""
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    with urllib.request.urlopen(f"{ci_env.issuer}/.well-known/jwks", timeout=5) as response:
        (tmp_path / "jwks.json").write_bytes(response.read())
    policy = tmp_path / "p.toml"
    policy.write_text(f"""
version = 1
[[issuers]]
issuer = "{ci_env.issuer}"
commitment = "aud"
jwks_file = "jwks.json"
[[signers]]
name = "build"
github = {{ issuer = "{ci_env.issuer}", repository_id = "{REPO_ID}" }}
""")
    base = ["verify", "--digest", DIGEST, "--bundle", str(bundle), "--policy", str(policy)]
    assert main([*base, "--offline"]) == 2
    err = capsys.readouterr().err
    assert "issuers[0].jwks_file: the policy file names key material" in err
    assert "--trust-policy-anchors" in err
    assert main([*base, "--offline", "--trust-policy-anchors", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["key_source"] == "pinned"
    # The same keys passed by the verifier itself need no such trust.
    policy.write_text(policy.read_text().replace('jwks_file = "jwks.json"\n', ""))
    assert main([*base, "--offline", "--jwks", str(tmp_path / "jwks.json")]) == 0
    assert main(["verify", "--digest", DIGEST, "--bundle", str(bundle), "--issuer",
                 ci_env.issuer, "--subject", "x", "--trust-policy-anchors"]) == 2  # fmt: skip
    assert "applies to a --policy file" in capsys.readouterr().err


def test_archive_is_fed_by_live_verification_then_used_offline(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    archive = tmp_path / "archive.sqlite"
    base = [
        "verify",
        "--digest",
        DIGEST,
        "--bundle",
        str(bundle),
        "--issuer",
        ci_env.issuer,
        "--github-repository-id",
        REPO_ID,
        "--jwks-archive",
        str(archive),
        "--json",
    ]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--offline"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["key_source"] == "archive"
    assert main(["jwks", "--archive", str(archive), "list", ci_env.issuer]) == 0
    assert f"kid={ci_env.active_kid}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--digest", DIGEST, "--bundle", "b.json"], "a policy is required"),
        (
            ["--digest", DIGEST, "--bundle", "b.json", "--issuer", "https://x.test"],
            "no identity to check",
        ),
        (
            ["--digest", DIGEST, "--issuer", "https://x.test", "--subject", "s"],
            "--bundle is required",
        ),
        (
            [
                "--digest",
                DIGEST,
                "--bundle",
                "b",
                "--subject",
                "s",
                "--issuer",
                "https://x.test",
                "--offline",
            ],
            "--offline needs",
        ),
        (
            ["--digest", "sha256:abc", "--bundle", "missing.json", "--github-repository-id", "1"],
            "cannot read|invalid digest",
        ),
        (
            ["--digest", DIGEST, "--bundle", "b", "--issuer", "https://x.test", "--subject", "s"],
            "--commitment: required for https://x.test|cannot read",
        ),
        (
            [
                "--digest",
                DIGEST,
                "--bundle",
                "b",
                "--github-repository-id",
                "1",
                "--claim-regex",
                "x=(",
            ],
            "cannot read|invalid",
        ),
    ],
)
def test_usage_errors_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["verify", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("opkey: error: ")
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_sign_without_ci_environment_names_the_permission(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "GITHUB_ACTIONS",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITLAB_CI",
    ):
        monkeypatch.delenv(name, raising=False)
    assert main(["sign", "--digest", DIGEST, "--provider", "github-actions"]) == 2
    assert "permissions: id-token: write" in capsys.readouterr().err
    assert main(["sign", "--digest", DIGEST]) == 2
    assert "choose a provider explicitly" in capsys.readouterr().err


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITLAB_CI", raising=False)
    from opkey.errors import ProviderError

    with pytest.raises(ProviderError):
        main(["--debug", "sign", "--digest", DIGEST])


def test_multi_signer_policy_file(
    make_dev_idp: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Build and scan workflows each sign the digest; the policy file needs both."""
    assert callable(make_dev_idp)
    idp = make_dev_idp()
    for name, value in idp.env().items():
        monkeypatch.setenv(name, value)
    bundles = []
    for workflow in ("build.yml", "scan.yml"):
        workload = GitHubWorkload.for_repository("octo-org/octo-repo", workflow_file=workflow)
        idp.provider.settings = dataclasses.replace(idp.provider.settings, github=workload)
        out = tmp_path / f"{workflow}.bundle.json"
        assert main(["sign", "--digest", DIGEST, "--bundle", str(out)]) == 0
        bundles.append(str(out))
    ref = "octo-org/octo-repo/.github/workflows/{}@refs/heads/main"
    policy = tmp_path / "policy.toml"
    policy.write_text(f"""
version = 1

[[issuers]]
issuer = "{idp.issuer}"
commitment = "aud"
require_gq = true
algorithms = ["GQ256"]
expiry = "never"

[[signers]]
name = "build"
github.issuer = "{idp.issuer}"
github.repository_id = "{REPO_ID}"
github.workflow_ref = "{ref.format("build.yml")}"

[[signers]]
name = "scan"
github.issuer = "{idp.issuer}"
github.repository_id = "{REPO_ID}"
github.workflow_ref = "{ref.format("scan.yml")}"
""")
    base = ["verify", "--digest", DIGEST, "--policy", str(policy)]
    assert main([*base, "--bundle", bundles[0], "--bundle", bundles[1]]) == 0
    capsys.readouterr()
    assert main([*base, "--bundle", bundles[0]]) == 1
    err = capsys.readouterr().err
    assert "'scan'" in err
    assert "sign-off incomplete" in err
    assert main([*base, "--bundle", bundles[0], "--bundle", bundles[0]]) == 1


def test_rotation_hint_and_archive_directory(
    make_dev_idp: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After the provider drops the signing key, the error says what to do; an archive
    directory that saw the key keeps the signature verifiable."""
    assert callable(make_dev_idp)
    idp = make_dev_idp()
    for name, value in idp.env().items():
        monkeypatch.setenv(name, value)
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    archive_dir = tmp_path / "keys"
    archive_dir.mkdir()
    base = [
        "verify",
        "--digest",
        DIGEST,
        "--bundle",
        str(bundle),
        "--issuer",
        idp.issuer,
        "--github-repository-id",
        REPO_ID,
    ]
    assert main([*base, "--jwks-archive", str(archive_dir)]) == 0  # records the live keys
    assert (archive_dir / "jwks-archive.sqlite").exists()
    idp.rotate_key(keep_old=False)
    capsys.readouterr()
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "no key with kid" in err
    assert "--jwks-archive" in err
    assert main([*base, "--jwks-archive", str(archive_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["signatures"][0]["key_source"] == "archive"


def test_unsafe_any_signer_warns_and_invalid_bundles_are_named(
    ci_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    bundle.write_text(_sign_digest(DIGEST, capsys))
    assert (
        main(
            [
                "verify",
                "--digest",
                DIGEST,
                "--bundle",
                str(bundle),
                "--issuer",
                ci_env.issuer,
                "--commitment",
                "aud",
                "--unsafe-any-signer",
            ]
        )
        == 0
    )
    assert "WARNING: --unsafe-any-signer" in capsys.readouterr().err
    policy = tmp_path / "p.toml"
    policy.write_text(f"""
version = 1
[[issuers]]
issuer = "{ci_env.issuer}"
commitment = "aud"
require_gq = true
algorithms = ["GQ256"]
[[signers]]
name = "build"
github.issuer = "{ci_env.issuer}"
github.repository_id = "{REPO_ID}"
""")
    other = "sha256:" + "99" * 32
    assert (
        main(["verify", "--digest", other, "--bundle", str(bundle), "--policy", str(policy)]) == 1
    )
    err = capsys.readouterr().err
    assert "'build'" in err
    assert "invalid signatures" in err
    assert str(bundle) in err
