"""Several targets per command, inputs checked before an ID token is requested, and a file
given where an image reference belongs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from opkey.cli import main
from opkey.sandbox.devidp import DevIdP
from tests.cli.conftest import REPO_ID, enter_environment, fake_browser, run_opkey

DIGEST_A = "sha256:" + "a1" * 32
DIGEST_B = "sha256:" + "b2" * 32


def _artifacts(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(f"contents of {name}".encode())
        paths.append(path)
    return paths


def _verify_args(idp: DevIdP) -> list[str]:
    return ["--issuer", idp.issuer, "--github-repository-id", REPO_ID]


def test_several_files_are_signed_with_one_pk_token_and_verified_together(
    job_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = _artifacts(tmp_path, "a.tar.gz", "b.whl", "c.txt")
    assert main(["sign", "--file", str(a), "--file", str(b), "--file", str(c)]) == 0
    err = capsys.readouterr().err
    assert err.count("opkey: signed ") == 3
    bundles = [json.loads(Path(f"{p}.opkey.json").read_text()) for p in (a, b, c)]
    # One login, one ID token: the three bundles carry the same PK token.
    assert bundles[0]["pktoken"] == bundles[1]["pktoken"] == bundles[2]["pktoken"]
    assert len({b["signature"] for b in bundles}) == 3

    files = ["--file", str(a), "--file", str(b), "--file", str(c)]
    assert main(["verify", *files, *_verify_args(job_env)]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("Verified:")] == [
        f"Verified: {a}",
        f"Verified: {b}",
        f"Verified: {c}",
    ]
    assert main(["verify", *files, *_verify_args(job_env), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verified"] is True
    assert [t["target"] for t in document["targets"]] == [str(a), str(b), str(c)]
    assert all(t["verified"] for t in document["targets"])

    # One changed file rejects the whole command (exit 1), naming that file; the others are
    # still reported as verified.
    b.write_bytes(b"tampered")
    assert main(["verify", *files, *_verify_args(job_env), "--json"]) == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["verified"] is False
    assert [t["verified"] for t in document["targets"]] == [True, False, True]
    assert document["targets"][1]["kind"] == "SignatureError"
    assert f"opkey: rejected: {b}: " in captured.err


def test_several_digests_take_one_bundle_each_in_order(
    job_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    args = ["sign", "--digest", DIGEST_A, "--bundle", str(out_a)]
    assert main([*args, "--digest", DIGEST_B, "--bundle", str(out_b)]) == 0
    capsys.readouterr()
    for digest, bundle in ((DIGEST_A, out_a), (DIGEST_B, out_b)):
        verify = ["verify", "--digest", digest, "--bundle", str(bundle)]
        assert main([*verify, *_verify_args(job_env)]) == 0
    # Crossed over, each bundle signs the other digest: rejected.
    assert main(["verify", "--digest", DIGEST_A, "--bundle", str(out_b), *_verify_args(job_env)])
    assert "not " + DIGEST_A in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--digest", DIGEST_A, "--digest", DIGEST_B], "give each --digest its --bundle OUT"),
        (
            [
                "--digest",
                DIGEST_A,
                "--bundle",
                "x.json",
                "--digest",
                DIGEST_B,
                "--bundle",
                "x.json",
            ],
            "two bundles would be written to x.json",
        ),
        (["--digest", DIGEST_A, "--digest", DIGEST_A, "--bundle", "1", "--bundle", "2"], "twice"),
        (["--digest", DIGEST_A, "--bundle", "missing-dir/b.json"], "does not exist"),
        (["ghcr.io/octo-org/app:1", "--bundle", "b.json"], "drop --bundle"),
        ([], "nothing to sign"),
    ],
)
def test_sign_refuses_ambiguous_outputs(
    job_env: DevIdP,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sign", *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--digest", DIGEST_A, "--digest", DIGEST_B, "--bundle", "b"], "one --digest at a time"),
        (["--digest", DIGEST_A, "--file", "a", "--bundle", "b"], "cannot be combined"),
        (["--file", "a", "--file", "b", "--bundle", "b"], "--bundle names the signatures of one"),
        (["--file", "a", "--file", "a"], "a is named twice"),
        ([], "nothing to verify"),
    ],
)
def test_verify_refuses_targets_it_cannot_pair_with_bundles(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["verify", *args, "--issuer", "https://x.test", "--subject", "s"]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def token_endpoint(httpserver: HTTPServer) -> dict[str, str]:
    """A GitHub Actions job environment whose token endpoint records every request (and
    answers none usefully: a request reaching it is the failure these tests look for)."""
    httpserver.expect_request("/token").respond_with_json({"value": "not-a-token"})
    return {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": httpserver.url_for("/token") + "?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    }


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--file", "missing.tar.gz"], "cannot read file missing.tar.gz"),
        (["--digest", "sha256:abc"], "invalid digest"),
        (["Not_An/Image::ref"], "invalid"),
        (["--digest", DIGEST_A, "--bundle", "no/such/dir/b.json"], "does not exist"),
    ],
)
def test_every_input_is_checked_before_an_id_token_is_requested(
    token_endpoint: dict[str, str],
    httpserver: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad: list[str],
    message: str,
) -> None:
    enter_environment(monkeypatch, token_endpoint)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.txt").write_text("good")
    assert main(["sign", "--file", "good.txt", *bad]) == 2
    assert message in capsys.readouterr().err
    assert httpserver.log == []
    # The control: with valid inputs only, the token endpoint is asked (its answer is
    # refused, which is this endpoint's whole purpose).
    assert main(["sign", "--file", "good.txt"]) == 2
    assert len(httpserver.log) == 1
    assert not (tmp_path / "good.txt.opkey.json").exists()


def test_a_browser_login_starts_only_after_the_inputs_are_checked(
    dev_idp: DevIdP, tmp_path: Path
) -> None:
    browser, marker = fake_browser(tmp_path)
    login = ["--provider", "browser", "--issuer", dev_idp.issuer, "--client-id", "opkey-dev"]
    env = {"BROWSER": str(browser)}
    refused = run_opkey(["sign", "--file", str(tmp_path / "missing"), *login], env=env)
    assert refused.returncode == 2, refused.stderr
    assert "cannot read" in refused.stderr
    assert not marker.exists()
    # The control: a readable file, and the browser is opened (and the login completes).
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release")
    signed = run_opkey(["sign", "--file", str(artifact), *login], env=env)
    assert signed.returncode == 0, signed.stderr
    assert marker.exists()


@pytest.mark.parametrize("command", ["sign", "verify"])
def test_a_file_given_as_an_image_says_what_was_meant(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``opkey sign app.tar.gz`` would be docker.io/library/app.tar.gz: refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.tar.gz").write_bytes(b"release")
    extra = ["--issuer", "https://x.test", "--subject", "s"] if command == "verify" else []
    assert main([command, "app.tar.gz", *extra]) == 2
    err = capsys.readouterr().err
    assert "app.tar.gz is a file, not an image reference" in err
    assert f"to {command} the file, use --file app.tar.gz" in err
