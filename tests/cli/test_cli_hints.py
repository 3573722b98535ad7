"""Advice that applies: hints depend on the command and on where the error came from, name only
choices the options accept, and messages say each thing once."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from opkey import ConfigError, ExpiredError, KeyNotFoundError, NetworkError
from opkey.cli import main
from opkey.cli._common import with_hint
from opkey.cli.providers import PROVIDERS
from opkey.providers import LOGIN_CLIENTS
from opkey.sandbox.devidp import DevIdP
from tests.cli.conftest import REPO_ID, enter_environment

DIGEST = "sha256:" + "d4" * 32
OFFLINE_HINT = "verify offline with --jwks FILE or --jwks-archive and --offline"


@pytest.mark.parametrize(
    "error",
    [
        KeyNotFoundError("no key with kid 'x'"),
        ExpiredError("the ID token expired"),
        NetworkError("GET https://idp.test/jwks: timed out"),
    ],
)
def test_signing_errors_never_suggest_verification_options(error: Exception) -> None:
    assert with_hint(error, command="sign") == str(error)
    assert "--" not in with_hint(error, command="login")


def test_verification_hints_follow_the_origin_of_the_error() -> None:
    network = NetworkError("GET https://registry.test/v2/: connection refused")
    assert with_hint(network, command="verify") == str(network)  # a registry: no key advice
    assert OFFLINE_HINT in with_hint(network, command="verify", origin="keys")
    assert "--jwks-archive" in with_hint(KeyNotFoundError("no key with kid 'x'"), command="verify")
    assert "--expiry" in with_hint(ExpiredError("expired"), command="verify")


def test_keys_that_cannot_be_fetched_get_the_offline_hint(
    make_dev_idp: Callable[..., DevIdP],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    idp = make_dev_idp()
    enter_environment(monkeypatch, idp.env())
    bundle = tmp_path / "b.json"
    assert main(["sign", "--digest", DIGEST, "--bundle", str(bundle)]) == 0
    issuer = idp.issuer
    idp.stop()  # the provider is gone: its keys cannot be fetched
    capsys.readouterr()
    verify = ["verify", "--digest", DIGEST, "--bundle", str(bundle), "--issuer", issuer]
    assert main([*verify, "--github-repository-id", REPO_ID]) == 1
    err = capsys.readouterr().err
    assert err.startswith("opkey: rejected: ")
    assert "the issuer's keys could not be fetched" in err
    assert OFFLINE_HINT in err


def test_a_sign_that_cannot_reach_its_provider_gets_no_verify_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enter_environment(
        monkeypatch,
        {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
            "OPKEY_DEV_ISSUER": "http://127.0.0.1:9",
        },
    )
    assert main(["sign", "--digest", DIGEST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("opkey: error: ")
    assert "--jwks" not in err
    assert "--offline" not in err


def test_an_unreachable_registry_names_the_url_once_and_suggests_no_offline_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = "127.0.0.1:9/octo-org/app:v1"
    verify = [
        "verify",
        image,
        "--issuer",
        "https://x.test",
        "--commitment",
        "aud",
        "--subject",
        "s",
    ]
    assert main(verify) == 2
    err = capsys.readouterr().err
    url = "http://127.0.0.1:9/v2/octo-org/app/manifests/v1"
    assert url in err
    assert err.count(url) == 1, err
    assert "--offline" not in err
    assert "--jwks" not in err


def test_outside_ci_the_hint_names_only_accepted_choices(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enter_environment(monkeypatch, {})
    assert main(["sign", "--digest", DIGEST]) == 2
    err = capsys.readouterr().err
    assert "choose a provider explicitly" in err
    named = re.findall(r"--provider ([\w|-]+)", err)
    assert named
    for group in named:
        for choice in group.split("|"):
            assert choice in PROVIDERS, f"--provider {choice} is not accepted: {err}"
    for group in re.findall(r"--issuer ([a-z|]+)(?= |,|;|$)", err):
        for name in group.split("|"):
            assert name in LOGIN_CLIENTS, f"--issuer {name} is not a built-in client: {err}"
    assert re.search(r"\bgithub\b(?!-)", err) is None  # `--provider github` is refused


def test_issuer_with_the_automatic_provider_is_refused(
    job_env: DevIdP, capsys: pytest.CaptureFixture[str]
) -> None:
    """--provider auto picks the job's own issuer; an --issuer beside it used to be dropped."""
    assert main(["sign", "--digest", DIGEST, "--issuer", "https://ghes.example/_services"]) == 2
    err = capsys.readouterr().err
    assert "--issuer needs --provider" in err
    assert "--provider github-actions" in err
    # Named explicitly, the provider honours it: the dev provider is the issuer asked for.
    args = ["sign", "--digest", DIGEST, "--provider", "github-actions", "--issuer", job_env.issuer]
    assert main(args) == 0
    assert f"(issuer {job_env.issuer})" in capsys.readouterr().err


def test_an_archive_in_a_missing_directory_is_an_error(
    job_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    assert main(["sign", "--digest", DIGEST, "--bundle", str(bundle)]) == 0
    verify = [
        "verify", "--digest", DIGEST, "--bundle", str(bundle), "--issuer", job_env.issuer,
        "--github-repository-id", REPO_ID,
    ]  # fmt: skip
    missing = tmp_path / "no-such-dir" / "keys.sqlite"
    capsys.readouterr()
    assert main([*verify, "--jwks-archive", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"directory {missing.parent} does not exist" in err
    assert not missing.parent.exists()
    # In a directory that exists, the archive is created and records the live keys.
    present = tmp_path / "keys.sqlite"
    assert main([*verify, "--jwks-archive", str(present)]) == 0
    assert main(["jwks", "--archive", str(present), "list", job_env.issuer]) == 0
    assert f"kid={job_env.active_kid}" in capsys.readouterr().out


def test_the_library_refuses_an_archive_in_a_missing_directory(tmp_path: Path) -> None:
    from opkey import KeyOptions, Trust, issuers

    options = KeyOptions(archive=tmp_path / "missing" / "a.sqlite")
    with pytest.raises(ConfigError, match="does not exist"):
        Trust.of([issuers.github_actions()], options)
