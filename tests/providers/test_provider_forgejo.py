"""Forgejo Actions: GitHub's token request on a per-instance issuer, against the dev provider."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from opkey import issuers
from opkey.errors import ProviderError
from opkey.issuers import CommitmentType
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.providers import ForgejoActionsProvider, GitHubActionsProvider, auto_provider
from opkey.sandbox.devidp import DevIdP
from opkey.verify import verify_pktoken

CODEBERG_URL = (
    "https://codeberg.org/api/actions/_apis/pipelines/workflows/42/idtoken?placeholder=true"
)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_forgejo_actions_end_to_end(dev_idp: DevIdP, dev_jwks: JwksClient, alg: str) -> None:
    key = generate_signing_key(alg)
    provider = ForgejoActionsProvider.from_env(dev_idp.env())  # OPKEY_DEV_ISSUER names it
    assert provider.issuer == dev_idp.issuer
    config = provider.issuer_config()
    assert config == issuers.forgejo_actions(issuer=dev_idp.issuer)
    assert config.commitment is CommitmentType.AUD
    assert config.require_gq
    pktoken = PKToken.from_json(provider.get_pktoken(key).to_json())
    verified = verify_pktoken(
        pktoken, config, dev_jwks.keys(dev_idp.issuer), now=datetime.now(timezone.utc)
    )
    assert verified.op_algorithm == "GQ256"
    assert pktoken.claims["aud"] == pktoken.cic_claims.commitment()
    assert verified.upk == key.public_jwk


def test_the_issuer_comes_from_the_request_url() -> None:
    assert issuers.forgejo_issuer_from_request_url(CODEBERG_URL) == issuers.CODEBERG_ACTIONS_ISSUER
    sub_path = "https://git.example.test/forge/api/actions/_apis/x/idtoken"
    assert issuers.forgejo_issuer_from_request_url(sub_path) == (
        "https://git.example.test/forge/api/actions"
    )
    github = "https://pipelines.actions.githubusercontent.com/abc/_apis/idtoken?api-version=2.0"
    assert issuers.forgejo_issuer_from_request_url(github) is None
    assert issuers.forgejo_issuer_from_request_url("file:///api/actions/x") is None
    provider = ForgejoActionsProvider(request_url=CODEBERG_URL, request_token="t")
    assert provider.issuer == issuers.CODEBERG_ACTIONS_ISSUER
    assert provider.issuer_config().issuer == issuers.CODEBERG_ACTIONS_ISSUER


def test_an_issuer_is_required_when_the_url_names_none() -> None:
    with pytest.raises(ProviderError, match="does not name an instance"):
        ForgejoActionsProvider(request_url="https://example.test/token", request_token="t")


def test_missing_variables_are_explained() -> None:
    with pytest.raises(ProviderError, match="id-token: write"):
        ForgejoActionsProvider.from_env({"FORGEJO_ACTIONS": "true"})


def test_a_token_from_another_issuer_is_refused(dev_idp: DevIdP) -> None:
    provider = ForgejoActionsProvider(
        request_url=dev_idp.github_request_url,
        request_token=dev_idp.request_token,
        issuer="https://codeberg.org/api/actions",
    )
    with pytest.raises(ProviderError, match=r"configured for 'https://codeberg\.org/api/actions'"):
        provider.get_pktoken(generate_signing_key())


def test_auto_detects_forgejo_before_github() -> None:
    """Forgejo runners set GITHUB_ACTIONS=true too; the request URL tells them apart."""
    env = {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": CODEBERG_URL,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t",
    }
    provider = auto_provider(env)
    assert isinstance(provider, ForgejoActionsProvider)
    assert provider.issuer == issuers.CODEBERG_ACTIONS_ISSUER
    github = dict(env, ACTIONS_ID_TOKEN_REQUEST_URL="https://pipelines.example/_apis?x=1")
    assert type(auto_provider(github)) is GitHubActionsProvider
