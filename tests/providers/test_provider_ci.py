"""GitHub Actions, GitLab CI and auto-detection, end to end against the dev provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from opkey import issuers
from opkey.errors import CommitmentError, NetworkError, ProviderError, SignatureError
from opkey.issuers import GITHUB_ACTIONS_ISSUER, CommitmentType, IssuerConfig
from opkey.jose import parse_compact
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.providers import (
    BrowserProvider,
    DeviceFlowProvider,
    GitHubActionsProvider,
    GitLabCIProvider,
    OidcClient,
    Provider,
    StaticProvider,
    auto_provider,
)
from opkey.providers.github import with_audience
from opkey.sandbox.devidp import DevIdP, DevIdPSettings, DevKey, GitLabWorkload, KeyRing
from opkey.verify import verify_pktoken


def now() -> datetime:
    return datetime.now(timezone.utc)


# -- GitHub Actions -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_github_actions_end_to_end(dev_idp: DevIdP, dev_jwks: JwksClient, alg: str) -> None:
    key = generate_signing_key(alg)
    provider = GitHubActionsProvider.from_env(dev_idp.env())
    assert provider.issuer == dev_idp.issuer
    pktoken = provider.get_pktoken(key)
    # Round-trip through the wire format, then verify with independently fetched keys.
    pktoken = PKToken.from_json(pktoken.to_json())
    config = issuers.github_actions(issuer=dev_idp.issuer)
    assert config == provider.issuer_config()
    assert config.commitment is CommitmentType.AUD
    assert config.require_gq
    assert config.algorithms == {"GQ256"}
    verified = verify_pktoken(pktoken, config, dev_jwks.keys(dev_idp.issuer), now=now())
    assert verified.op_algorithm == "GQ256"
    assert verified.subject == "repo:octo-org/octo-repo:ref:refs/heads/main"
    assert pktoken.claims["aud"] == pktoken.cic_claims.commitment()
    assert "cic" not in pktoken.op.header
    assert verified.upk == key.public_jwk
    assert verified.claims["repository_id"] == dev_idp.settings.github.repository_id


def test_github_pktoken_does_not_verify_as_something_else(
    dev_idp: DevIdP, dev_jwks: JwksClient
) -> None:
    pktoken = GitHubActionsProvider.from_env(dev_idp.env()).get_pktoken(generate_signing_key())
    keys = dev_jwks.keys(dev_idp.issuer)
    rs256_only = IssuerConfig(issuer=dev_idp.issuer, commitment=CommitmentType.AUD)
    with pytest.raises(SignatureError, match="GQ256"):
        verify_pktoken(pktoken, rs256_only, keys, now=now())
    as_nonce = IssuerConfig(
        issuer=dev_idp.issuer,
        commitment=CommitmentType.NONCE,
        algorithms=frozenset({"GQ256"}),
        client_id="x",
    )
    with pytest.raises(CommitmentError):
        verify_pktoken(pktoken, as_nonce, keys, now=now())


def test_github_missing_permission_is_explained() -> None:
    env = {"GITHUB_ACTIONS": "true"}
    with pytest.raises(ProviderError, match="permissions: id-token: write") as info:
        GitHubActionsProvider.from_env(env)
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in str(info.value)
    with pytest.raises(ProviderError, match="permissions: id-token: write"):
        auto_provider(env)


def test_github_rejected_request_token_is_explained(dev_idp: DevIdP) -> None:
    env = {**dev_idp.env(), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "stale"}
    provider = GitHubActionsProvider.from_env(env)
    with pytest.raises(ProviderError, match=r"HTTP 401.*permissions: id-token: write"):
        provider.get_pktoken(generate_signing_key())


def test_github_issuer_comes_from_configuration_not_the_token(dev_idp: DevIdP) -> None:
    env = {k: v for k, v in dev_idp.env().items() if k != "OPKEY_DEV_ISSUER"}
    provider = GitHubActionsProvider.from_env(env)
    assert provider.issuer == GITHUB_ACTIONS_ISSUER
    # The dev token names another issuer: refused before any key is fetched (no network
    # beyond loopback happens here).
    with pytest.raises(ProviderError, match=r"configured for 'https://token\.actions"):
        provider.get_pktoken(generate_signing_key())
    explicit = GitHubActionsProvider.from_env(env, issuer=dev_idp.issuer)
    assert explicit.get_pktoken(generate_signing_key()).issuer == dev_idp.issuer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://pipelines.example/idtoken?api-version=2.0",
            "https://pipelines.example/idtoken?api-version=2.0&audience=abc_-1",
        ),
        ("https://pipelines.example/idtoken", "https://pipelines.example/idtoken?audience=abc_-1"),
        (
            "https://p.example/t?audience=old&api-version=2.0",
            "https://p.example/t?api-version=2.0&audience=abc_-1",
        ),
    ],
)
def test_with_audience(url: str, expected: str) -> None:
    assert with_audience(url, "abc_-1") == expected


def test_with_audience_encodes() -> None:
    assert with_audience("https://x.example/?a=1", "a b&c") == (
        "https://x.example/?a=1&audience=a%20b%26c"
    )


def test_github_request_url_must_be_https_off_loopback() -> None:
    provider = GitHubActionsProvider(
        request_url="http://pipelines.example/idtoken?api-version=2.0",
        request_token="t",
        issuer=GITHUB_ACTIONS_ISSUER,
    )
    with pytest.raises(NetworkError, match="https is required"):
        provider.get_pktoken(generate_signing_key())


# -- GitLab CI ------------------------------------------------------------------------------


def gitlab_env(idp: DevIdP, token: str | None = None) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "CI_SERVER_URL": idp.issuer,
        "OPENPUBKEY_JWT": token if token is not None else idp.mint_gitlab_token(),
    }


def test_gitlab_ci_end_to_end(dev_idp: DevIdP, dev_jwks: JwksClient) -> None:
    key = generate_signing_key()
    provider = GitLabCIProvider.from_env(gitlab_env(dev_idp))
    assert provider.issuer == dev_idp.issuer
    pktoken = PKToken.from_compact(provider.get_pktoken(key).to_compact())
    config = issuers.gitlab_ci(issuer=dev_idp.issuer)
    assert config == provider.issuer_config()
    assert config.commitment is CommitmentType.GQ_BOUND
    verified = verify_pktoken(pktoken, config, dev_jwks.keys(dev_idp.issuer), now=now())
    assert verified.op_algorithm == "GQ256"
    assert pktoken.op.header["cic"] == pktoken.cic_claims.commitment()
    assert verified.claims["project_path"] == "my-group/my-project"
    assert verified.subject == "project_path:my-group/my-project:ref_type:branch:ref:main"


def test_gitlab_same_id_token_binds_each_key_separately(
    dev_idp: DevIdP, dev_jwks: JwksClient
) -> None:
    env = gitlab_env(dev_idp)
    first = GitLabCIProvider.from_env(env).get_pktoken(generate_signing_key())
    second = GitLabCIProvider.from_env(env).get_pktoken(generate_signing_key())
    assert first.payload_b64 == second.payload_b64
    assert first.op.header["cic"] != second.op.header["cic"]
    # Moving one key's GQ signature onto the other's CIC does not verify.
    forged = PKToken(
        payload_b64=first.payload_b64,
        claims=first.claims,
        op=first.op,
        cic=second.cic,
    )
    with pytest.raises((CommitmentError, SignatureError)):
        verify_pktoken(
            forged,
            issuers.gitlab_ci(issuer=dev_idp.issuer),
            dev_jwks.keys(dev_idp.issuer),
            now=now(),
        )


def test_gitlab_audience_prefix_is_required(make_dev_idp: Callable[..., DevIdP]) -> None:
    idp = make_dev_idp(DevIdPSettings(gitlab=GitLabWorkload(audience="https://vault.example")))
    provider = GitLabCIProvider.from_env(gitlab_env(idp))
    with pytest.raises(ProviderError, match="does not start with 'OPENPUBKEY-PKTOKEN:'"):
        provider.get_pktoken(generate_signing_key())


def test_gitlab_missing_variable_is_explained(dev_idp: DevIdP) -> None:
    with pytest.raises(ProviderError, match="id_tokens: OPENPUBKEY_JWT"):
        GitLabCIProvider.from_env({"GITLAB_CI": "true"})
    env = {**gitlab_env(dev_idp), "MY_TOKEN": dev_idp.mint_gitlab_token()}
    del env["OPENPUBKEY_JWT"]
    with pytest.raises(ProviderError, match="MY_TOKEN"):
        GitLabCIProvider.from_env({"GITLAB_CI": "true"}, variable="MY_TOKEN")
    provider = GitLabCIProvider.from_env(env, variable="MY_TOKEN")
    assert provider.get_pktoken(generate_signing_key()).issuer == dev_idp.issuer


def test_gitlab_garbage_token_is_a_provider_error(dev_idp: DevIdP) -> None:
    provider = GitLabCIProvider.from_env(gitlab_env(dev_idp, token="not-a-jwt"))
    with pytest.raises(ProviderError, match="not a usable JWT"):
        provider.get_pktoken(generate_signing_key())


def test_gitlab_token_signed_by_someone_else_is_refused(dev_idp: DevIdP) -> None:
    # The real claims and the real kid, signed with another key: the RS256 check that GQ
    # signing starts with fails against the provider's published key.
    other = DevKey.generate()
    impostor = DevKey(
        kid=dev_idp.active_kid, private_key=other.private_key, public_jwk=other.public_jwk
    )
    claims = json.loads(parse_compact(dev_idp.mint_gitlab_token()).payload())
    forged = KeyRing(impostor).sign(claims)
    provider = GitLabCIProvider.from_env(gitlab_env(dev_idp, token=forged))
    with pytest.raises(ProviderError, match="cannot be GQ-signed: RS256 signature does not verify"):
        provider.get_pktoken(generate_signing_key())


# -- auto -----------------------------------------------------------------------------------


def test_auto_prefers_github_then_gitlab(dev_idp: DevIdP) -> None:
    both = {**dev_idp.env(), **gitlab_env(dev_idp)}
    assert isinstance(auto_provider(both), GitHubActionsProvider)
    assert isinstance(auto_provider(gitlab_env(dev_idp)), GitLabCIProvider)
    pktoken = auto_provider(gitlab_env(dev_idp)).get_pktoken(generate_signing_key())
    assert pktoken.op.alg == "GQ256"


def test_auto_outside_ci_asks_for_a_provider() -> None:
    with pytest.raises(ProviderError, match="choose a provider explicitly"):
        auto_provider({"GITHUB_ACTIONS": "false", "HOME": "/root"})


def test_every_provider_implements_the_interface(dev_idp: DevIdP) -> None:
    client = OidcClient(issuer=dev_idp.issuer, client_id=dev_idp.client_id)
    providers: list[Provider] = [
        GitHubActionsProvider.from_env(dev_idp.env()),
        GitLabCIProvider.from_env(gitlab_env(dev_idp)),
        BrowserProvider(client),
        DeviceFlowProvider(client),
        StaticProvider.from_callback(
            dev_idp.mint_github_token, issuer=dev_idp.issuer, commitment=CommitmentType.AUD
        ),
    ]
    for provider in providers:
        assert isinstance(provider, Provider)
        assert provider.issuer == dev_idp.issuer
        assert provider.issuer_config().issuer == dev_idp.issuer
