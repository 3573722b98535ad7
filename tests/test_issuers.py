"""The one reader of issuer settings: policy files and command-line flags get the same config."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from opkey import issuers
from opkey.cli import build_parser
from opkey.cli.verification import VerificationRequest, issuer_config_for
from opkey.errors import ConfigError
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType, issuer_config, issuer_settings
from opkey.policy.file import parse_policy_file


def _from_flags(*flags: str) -> issuers.IssuerConfig:
    args: argparse.Namespace = build_parser().parse_args(
        ["verify", "--digest", "sha256:" + "ab" * 32, "--bundle", "b.json", *flags]
    )
    request = VerificationRequest.from_args(args)
    assert request.issuer is not None
    return issuer_config_for(request, request.issuer)


def _from_policy_file(table: str) -> issuers.IssuerConfig:
    text = f'version = 1\n[[issuers]]\n{table}\n[[signers]]\nname = "a"\nunsafe_no_policy = true\n'
    return parse_policy_file(text).issuers[0].config


@pytest.mark.parametrize(
    ("flags", "table"),
    [
        (
            ["--issuer", "https://idp.example", "--commitment", "aud"],
            'issuer = "https://idp.example"\ncommitment = "aud"',
        ),
        (
            ["--issuer", "https://idp.example", "--commitment", "nonce", "--client-id", "c"],
            'issuer = "https://idp.example"\ncommitment = "nonce"\nclient_id = "c"',
        ),
        (
            ["--issuer", "https://idp.example", "--commitment", "gq-bound", "--expiry", "oidc"],
            'issuer = "https://idp.example"\ncommitment = "gq-bound"\nexpiry = "oidc"',
        ),
        (
            ["--issuer", issuers.GITHUB_ACTIONS_ISSUER],
            f'issuer = "{issuers.GITHUB_ACTIONS_ISSUER}"',
        ),
        (
            ["--issuer", issuers.GOOGLE_ISSUER, "--client-id", "mine", "--expiry", "24h"],
            f'issuer = "{issuers.GOOGLE_ISSUER}"\nclient_id = "mine"\nexpiry = "24h"',
        ),
    ],
)
def test_flags_and_policy_files_give_the_same_config(flags: list[str], table: str) -> None:
    assert _from_flags(*flags, "--unsafe-any-signer") == _from_policy_file(table)


def test_the_defaults_are_those_of_spec_time_and_policy_file() -> None:
    aud = issuer_config({"issuer": "https://ci.example", "commitment": "aud"})
    assert aud.expiry == ExpiryPolicy.never()
    assert aud.require_gq
    assert aud.algorithms == {"GQ256"}
    nonce = issuer_config({"issuer": "https://id.example", "commitment": "nonce", "client_id": "c"})
    assert not nonce.require_gq
    assert nonce.algorithms == {"RS256", "GQ256"}
    key_bound = issuer_config(
        {"issuer": "https://id.example", "commitment": "key-bound", "client_id": "c"}
    )
    assert not key_bound.require_gq
    assert issuer_config({"issuer": issuers.GITLAB_ISSUER}) == issuers.gitlab_ci()
    assert issuer_config({"issuer": issuers.GITHUB_ACTIONS_ISSUER}) == issuers.github_actions()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"issuer": "https://x.example"}, r"^commitment: required for https://x\.example"),
        ({"commitment": "aud"}, r"^issuer: required"),
        ({"issuer": " https://x.example", "commitment": "aud"}, "leading or trailing"),
        ({"issuer": "https://x.example", "commitment": "magic"}, "expected one of nonce, aud"),
        ({"issuer": "https://x.example", "commitment": "aud", "expiry": "1y"}, "^expiry:"),
        ({"issuer": "https://x.example", "commitment": "aud", "leeway": 601}, "^leeway:"),
        ({"issuer": "https://x.example", "commitment": "aud", "jwks": "f"}, "^jwks: unknown"),
        ({"issuer": issuers.GITHUB_ACTIONS_ISSUER, "require_gq": False}, "built-in settings"),
        ({"issuer": issuers.GITHUB_ACTIONS_ISSUER, "client_id": "c"}, "does not use a client"),
        (
            {"issuer": "https://x.example", "commitment": "aud", "algorithms": ["RS256"]},
            "require_gq allows only GQ256",
        ),
        ({"issuer": "https://x.example", "commitment": "nonce"}, "need a client_id"),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        issuer_config(settings)


def test_command_line_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--commitment: required for https://x\.example"):
        _from_flags("--issuer", "https://x.example", "--subject", "s")


@pytest.mark.parametrize(
    "config",
    [
        issuers.github_actions(),
        issuers.gitlab_ci(expiry=ExpiryPolicy.oidc(leeway=0)),
        issuers.google(client_id="c"),
        issuers.oidc_key_bound("https://id.example", "c"),
        issuers.IssuerConfig("https://x.example", CommitmentType.NONCE, client_id="c"),
    ],
)
def test_settings_round_trip(config: issuers.IssuerConfig) -> None:
    assert issuer_config(issuer_settings(config)) == config
