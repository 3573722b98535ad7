"""Help, usage errors and output shape: every option explained, help that reads as plain text
and points where a reader can follow, ``--debug`` anywhere, JSON even for usage errors, and
human output whose columns line up."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from opkey.cli import build_parser, main, walk_parsers
from opkey.errors import FormatError
from opkey.sandbox.devidp import DevIdP
from tests.cli.conftest import REPO_ID, enter_environment, run_opkey

ROOT = Path(__file__).resolve().parents[2]
SPEC_URL = "https://github.com/opkey-dev/opkey/blob/main/spec/"
DIGEST = "sha256:" + "5e" * 32


def _parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    return list(walk_parsers(build_parser()))


def test_the_walk_reaches_every_command() -> None:
    paths = {" ".join(path) for path, _ in _parsers()}
    assert {"", "sign", "verify", "inspect", "login", "jwks", "jwks list", "completion"} <= paths


def test_every_option_and_argument_has_help() -> None:
    missing = []
    for path, parser in _parsers():
        for action in parser._actions:
            name = "/".join(action.option_strings) or action.dest
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                missing += [
                    f"opkey {' '.join((*path, sub))}"
                    for sub in action.choices
                    if not helps.get(sub)
                ]
            elif not action.help or action.help is argparse.SUPPRESS:
                missing.append(f"opkey {' '.join(path)} {name}".replace("  ", " "))
    assert missing == []


def test_help_is_plain_text_and_points_at_published_specifications() -> None:
    for path, parser in _parsers():
        text = parser.format_help()
        where = f"opkey {' '.join(path)} --help"
        assert "``" not in text, where
        assert not re.search(r":(class|func|meth|mod|attr):", text), where
        # spec/ files are not in the wheel: help names them by their published URL.
        assert not re.search(r"(?<!/blob/main/)\bspec/", text), where
        for name in re.findall(re.escape(SPEC_URL) + r"([\w.-]+)", text):
            assert (ROOT / "spec" / name).is_file(), f"{where}: spec/{name} does not exist"
    verify = dict(_parsers())[("verify",)].format_help()
    assert SPEC_URL + "policy-file.md" in verify


def test_login_help_shows_no_restructuredtext() -> None:
    result = run_opkey(["login", "--help"])
    assert result.returncode == 0
    assert "``" not in result.stdout
    assert "`opkey sign --session FILE`" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "sign", "--digest", "sha256:abc"],
        ["sign", "--digest", "sha256:abc", "--debug"],
        ["sign", "--debug", "--digest", "sha256:abc"],
    ],
)
def test_debug_is_accepted_before_and_after_the_command(argv: list[str]) -> None:
    with pytest.raises(FormatError):
        main(argv)


def test_debug_after_a_nested_command(tmp_path: Path) -> None:
    archive = str(tmp_path / "a.sqlite")
    with pytest.raises(FormatError):
        main(["jwks", "--archive", archive, "import", "https://x.test", "missing", "--debug"])
    assert main(["jwks", "--archive", archive, "import", "https://x.test", "missing"]) == 2


def test_without_debug_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", "--digest", "sha256:abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("opkey: error: invalid digest")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "kind", "message"),
    [
        (["verify", "--json", "--bogus"], "UsageError", "unrecognized arguments: --bogus"),
        (["verify", "--json", "--at", "yesterday"], "UsageError", "invalid time"),
        (["verify", "--json", "--commitment", "x"], "UsageError", "invalid choice"),
        (["verify", "--json", "--file", "f"], "ConfigError", "a policy is required"),
        (
            ["verify", "--json", "--file", "missing", "--issuer", "https://x.test", "--subject",
             "s", "--commitment", "aud"],
            "FormatError",
            "cannot read file missing",
        ),
        (["jwks", "list", "--json", "--nope"], "UsageError", "unrecognized arguments"),
    ],
)  # fmt: skip
def test_errors_under_json_print_a_json_document_too(
    argv: list[str], kind: str, message: str, tmp_path: Path
) -> None:
    result = run_opkey(argv, cwd=tmp_path)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert document["kind"] == kind
    assert message in document["error"]
    assert message in result.stderr  # people still read standard error


def test_usage_errors_without_json_leave_standard_output_empty() -> None:
    result = run_opkey(["verify", "--bogus"])
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage: opkey" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--issuer", "https://a.test", "--issuer", "https://b.test", "--subject", "s"],
        ["verify", "--policy", "a.toml", "--policy", "b.toml"],
        ["sign", "--provider", "browser", "--provider", "device", "--digest", DIGEST],
        ["sign", "--session", "a", "--session", "b", "--digest", DIGEST],
    ],
)
def test_an_option_that_takes_one_value_refuses_a_second(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse would keep the last value and drop the first without a word."""
    assert main(argv) == 2
    assert "given more than once" in capsys.readouterr().err


def test_verify_json_names_the_target_and_each_signers_subject(
    job_env: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "b.json"
    assert main(["sign", "--digest", DIGEST, "--bundle", str(bundle)]) == 0
    capsys.readouterr()
    verify = ["verify", "--digest", DIGEST, "--bundle", str(bundle), "--issuer", job_env.issuer]
    assert main([*verify, "--github-repository-id", REPO_ID, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["target"] == DIGEST
    assert document["digest"] == DIGEST
    assert "subject" not in document  # the top level names what was verified, not a signer
    assert document["signatures"][0]["subject"].startswith("repo:octo-org/octo-repo:")


def _value_columns(lines: list[str]) -> set[int]:
    """Where the value starts on each ``    name  value`` row of a verify report."""
    return {len(m.group(1)) for line in lines if (m := re.match(r"(    \S+(?: \S+)?\s+)\S", line))}


def test_verify_rows_line_up_across_signers(
    make_dev_idp: Callable[..., DevIdP],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A GitHub and a GitLab signer show different claims (repository_id, project_path): one
    value column for the whole report all the same."""
    github, gitlab = make_dev_idp(), make_dev_idp()
    enter_environment(monkeypatch, github.env())
    build, release = tmp_path / "build.json", tmp_path / "release.json"
    assert main(["sign", "--digest", DIGEST, "--bundle", str(build)]) == 0
    enter_environment(monkeypatch, {"OPENPUBKEY_JWT": gitlab.mint_gitlab_token()})
    sign_gitlab = ["sign", "--provider", "gitlab-ci", "--issuer", gitlab.issuer]
    assert main([*sign_gitlab, "--digest", DIGEST, "--bundle", str(release)]) == 0
    policy = tmp_path / "policy.toml"
    policy.write_text(f"""
version = 1
[[issuers]]
issuer = "{github.issuer}"
commitment = "aud"
[[issuers]]
issuer = "{gitlab.issuer}"
commitment = "gq-bound"
[[signers]]
name = "build"
github = {{ issuer = "{github.issuer}", repository_id = "{REPO_ID}" }}
[[signers]]
name = "release"
gitlab = {{ issuer = "{gitlab.issuer}", project_id = "20" }}
""")
    capsys.readouterr()
    verify = ["verify", "--digest", DIGEST, "--policy", str(policy)]
    assert main([*verify, "--bundle", str(build), "--bundle", str(release)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("  signed by ") for line in lines) == 2
    rows = [line for line in lines if line.startswith("    ")]
    assert any(row.split()[0] == "repository_id" for row in rows)
    assert any(row.split()[0] == "project_path" for row in rows)
    assert len(_value_columns(rows)) == 1, "\n".join(rows)


def test_jwks_list_columns_line_up(tmp_path: Path, data_dir: Path) -> None:
    archive = str(tmp_path / "a.sqlite")
    github = data_dir / "github-actions" / "github-jwks_2022_step-security.json"
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"keys": [json.loads(github.read_text())["keys"][0]]}))
    for issuer, jwks in (
        ("https://token.actions.githubusercontent.com", github),
        ("https://x.test", short),
    ):
        imported = run_opkey(["jwks", "--archive", archive, "import", issuer, str(jwks)])
        assert imported.returncode == 0, imported.stderr
    listed = run_opkey(["jwks", "--archive", archive, "list"])
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    for column in ("kid=", "jkt=", "seen "):
        assert len({line.index(column) for line in lines}) == 1, listed.stdout
