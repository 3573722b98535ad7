"""The dev OpenID provider behaves like a strict real provider, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from opkey.jwks.keyset import KeySet
from opkey.sandbox.devidp import (
    DEVICE_GRANT_TYPE,
    DevClient,
    DevIdP,
    DevIdPSettings,
    GitHubWorkload,
    GitLabWorkload,
)

if TYPE_CHECKING:
    from tests.helpers import FakeClock

VERIFIER = "v" * 20 + "-._~" + "0123456789abcdefghijklmnopqrstuvwxyz"
REDIRECT = "http://127.0.0.1:50123/callback"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(idp: DevIdP, **overrides: str | None) -> requests.Response:
    params: dict[str, str | None] = {
        "client_id": idp.client_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid email",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    query = {k: v for k, v in params.items() if v is not None}
    return requests.get(idp.issuer + "/authorize", params=query, allow_redirects=False, timeout=5)


def redirect_params(response: requests.Response, redirect: str = REDIRECT) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(redirect + "?")
    parsed = parse_qs(urlsplit(location).query, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values())
    return {k: v[0] for k, v in parsed.items()}


def token(idp: DevIdP, **form: str) -> requests.Response:
    return requests.post(idp.issuer + "/token", data=form, timeout=5)


def exchange(idp: DevIdP, code: str, verifier: str = VERIFIER, **extra: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": idp.client_id,
        "code_verifier": verifier,
    }
    form.update(extra)
    return token(idp, **form)


def claims_of(idp: DevIdP, id_token: str, audience: str) -> dict[str, Any]:
    """Decode an ID token, verifying it with the key the provider publishes."""
    keys = KeySet.from_json(requests.get(idp.issuer + "/.well-known/jwks", timeout=5).content)
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = keys.by_kid(kid).key
    decoded: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=["RS256"],
        audience=audience,
        issuer=idp.issuer,
        options={"verify_iat": False, "verify_nbf": False, "verify_exp": False},
    )
    return decoded


def login(idp: DevIdP) -> dict[str, Any]:
    code = redirect_params(authorize(idp))["code"]
    response = exchange(idp, code)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


# -- discovery and keys ---------------------------------------------------------------------


def test_discovery_document(dev_idp: DevIdP) -> None:
    response = requests.get(dev_idp.issuer + "/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    doc = response.json()
    assert doc["issuer"] == dev_idp.issuer == f"http://127.0.0.1:{dev_idp.port}"
    for name in (
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "device_authorization_endpoint",
        "userinfo_endpoint",
    ):
        assert doc[name].startswith(dev_idp.issuer + "/")
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert DEVICE_GRANT_TYPE in doc["grant_types_supported"]


def test_jwks_members(dev_idp: DevIdP) -> None:
    doc = requests.get(dev_idp.issuer + "/.well-known/jwks", timeout=5).json()
    assert len(doc["keys"]) == 1
    (key,) = doc["keys"]
    assert set(key) == {"kty", "alg", "use", "kid", "n", "e"}
    assert (key["kty"], key["alg"], key["use"], key["kid"]) == (
        "RSA",
        "RS256",
        "sig",
        dev_idp.active_kid,
    )
    parsed = KeySet.from_dict(doc)
    assert parsed.by_kid(dev_idp.active_kid).key.key_size == 2048  # type: ignore[union-attr]


def test_rotation_keeps_or_drops_the_old_key(make_dev_idp: Callable[..., DevIdP]) -> None:
    idp = make_dev_idp()
    first = idp.active_kid
    second = idp.rotate_key(keep_old=True)
    kids = [
        k["kid"] for k in requests.get(idp.issuer + "/.well-known/jwks", timeout=5).json()["keys"]
    ]
    assert kids == [second, first]
    assert jwt.get_unverified_header(idp.mint_github_token())["kid"] == second
    third = idp.rotate_key(keep_old=False)
    kids = [
        k["kid"] for k in requests.get(idp.issuer + "/.well-known/jwks", timeout=5).json()["keys"]
    ]
    assert kids == [third]
    assert len({first, second, third}) == 3


def test_unknown_path_and_method(dev_idp: DevIdP) -> None:
    assert requests.get(dev_idp.issuer + "/nope", timeout=5).status_code == 404
    assert requests.post(dev_idp.issuer + "/authorize", data={}, timeout=5).status_code == 405


# -- authorization code + PKCE --------------------------------------------------------------


def test_code_flow_carries_nonce_and_state(dev_idp: DevIdP) -> None:
    params = redirect_params(authorize(dev_idp))
    assert params["state"] == "state-123"
    assert params["iss"] == dev_idp.issuer
    response = exchange(dev_idp, params["code"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    claims = claims_of(dev_idp, body["id_token"], dev_idp.client_id)
    assert claims["nonce"] == "nonce-456"
    assert claims["sub"] == dev_idp.settings.user.sub
    assert claims["email"] == dev_idp.settings.user.email
    assert claims["exp"] - claims["iat"] == dev_idp.settings.id_token_lifetime


def test_loopback_redirect_on_any_port_but_nothing_else(dev_idp: DevIdP) -> None:
    other_port = "http://127.0.0.1:61000/callback"
    assert redirect_params(authorize(dev_idp, redirect_uri=other_port), other_port)["code"]
    for bad in (
        "http://127.0.0.1:61000/other-path",
        "http://evil.example:61000/callback",
        "https://127.0.0.1:61000/callback",
        "http://127.0.0.1:61000/callback#frag",
    ):
        response = authorize(dev_idp, redirect_uri=bad)
        assert response.status_code == 400, bad
        assert "Location" not in response.headers
        assert "not registered" in response.text


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"client_id": None}, "client_id parameter is missing"),
        ({"client_id": "someone-else"}, "unknown client_id"),
        ({"redirect_uri": None}, "redirect_uri parameter is missing"),
    ],
)
def test_errors_before_the_redirect_uri_is_trusted_do_not_redirect(
    dev_idp: DevIdP, overrides: dict[str, str | None], problem: str
) -> None:
    response = authorize(dev_idp, **overrides)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert problem in response.text


@pytest.mark.parametrize(
    ("overrides", "error", "description"),
    [
        ({"response_type": "token"}, "unsupported_response_type", "only 'code'"),
        ({"response_type": None}, "invalid_request", "response_type is missing"),
        ({"scope": "email"}, "invalid_scope", "openid"),
        ({"code_challenge": None}, "invalid_request", "PKCE is required"),
        ({"code_challenge_method": None}, "invalid_request", "plain is not accepted"),
        ({"code_challenge_method": "plain"}, "invalid_request", "not supported; use S256"),
        ({"code_challenge": "short"}, "invalid_request", "not a base64url SHA-256"),
    ],
)
def test_errors_are_redirected_with_state(
    dev_idp: DevIdP, overrides: dict[str, str | None], error: str, description: str
) -> None:
    params = redirect_params(authorize(dev_idp, **overrides))
    assert params["error"] == error
    assert description in params["error_description"]
    assert params["state"] == "state-123"
    assert "code" not in params


def test_repeated_parameter_is_invalid_request(dev_idp: DevIdP) -> None:
    url = (
        f"{dev_idp.issuer}/authorize?client_id={dev_idp.client_id}&redirect_uri={REDIRECT}"
        f"&response_type=code&scope=openid&state=s&code_challenge={s256(VERIFIER)}"
        "&code_challenge_method=S256&nonce=a&nonce=b"
    )
    params = redirect_params(requests.get(url, allow_redirects=False, timeout=5))
    assert params["error"] == "invalid_request"
    assert "'nonce' is repeated" in params["error_description"]


def test_denied_authorization(make_dev_idp: Callable[..., DevIdP]) -> None:
    idp = make_dev_idp(DevIdPSettings(auto_approve=False))
    params = redirect_params(authorize(idp))
    assert params["error"] == "access_denied"
    assert params["state"] == "state-123"


def test_pkce_verifier_is_checked(dev_idp: DevIdP) -> None:
    code = redirect_params(authorize(dev_idp))["code"]
    wrong = exchange(dev_idp, code, verifier="w" * 43)
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "PKCE verification failed",
    }
    # The code is burnt by the failed attempt: guessing verifiers gets nowhere.
    assert exchange(dev_idp, code).json()["error"] == "invalid_grant"


def test_pkce_verifier_is_required(dev_idp: DevIdP) -> None:
    code = redirect_params(authorize(dev_idp))["code"]
    response = token(
        dev_idp,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=dev_idp.client_id,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "code_verifier is missing" in response.json()["error_description"]


def test_code_is_single_use_and_replay_revokes(dev_idp: DevIdP) -> None:
    code = redirect_params(authorize(dev_idp))["code"]
    first = exchange(dev_idp, code)
    assert first.status_code == 200
    again = exchange(dev_idp, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert "already used" in again.json()["error_description"]
    refreshed = token(
        dev_idp,
        grant_type="refresh_token",
        refresh_token=first.json()["refresh_token"],
        client_id=dev_idp.client_id,
    )
    assert refreshed.json()["error"] == "invalid_grant"


def test_code_expires(make_dev_idp: Callable[..., DevIdP], fake_clock: FakeClock) -> None:
    idp = make_dev_idp(DevIdPSettings(code_lifetime=60), clock=fake_clock)
    code = redirect_params(authorize(idp))["code"]
    fake_clock.advance(61)
    response = exchange(idp, code)
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "authorization code expired",
    }


def test_redirect_uri_must_match_the_authorization_request(dev_idp: DevIdP) -> None:
    code = redirect_params(authorize(dev_idp))["code"]
    response = exchange(dev_idp, code, redirect_uri="http://127.0.0.1:50124/callback")
    assert response.json()["error"] == "invalid_grant"


def test_token_endpoint_errors(make_dev_idp: Callable[..., DevIdP]) -> None:
    confidential = DevClient(client_id="confidential", client_secret="s3cret")
    idp = make_dev_idp(DevIdPSettings(clients=(DevClient(), confidential)))
    json_body = requests.post(
        idp.issuer + "/token", json={"grant_type": "authorization_code"}, timeout=5
    )
    assert json_body.json()["error"] == "invalid_request"
    unknown = token(idp, grant_type="password", client_id=idp.client_id)
    assert unknown.json()["error"] == "unsupported_grant_type"
    no_client = token(idp, grant_type="authorization_code", code="x")
    assert no_client.status_code == 401
    assert no_client.json()["error"] == "invalid_client"
    bad_secret = token(
        idp,
        grant_type="refresh_token",
        refresh_token="x",
        client_id="confidential",
        client_secret="no",
    )
    assert bad_secret.status_code == 401
    assert "WWW-Authenticate" in bad_secret.headers
    basic = requests.post(
        idp.issuer + "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=("confidential", "s3cret"),
        timeout=5,
    )
    assert basic.json()["error"] == "invalid_grant"  # authenticated; the token is unknown


# -- refresh and userinfo -------------------------------------------------------------------


def test_refresh_keeps_issuer_and_subject_and_rotates(
    make_dev_idp: Callable[..., DevIdP], fake_clock: FakeClock
) -> None:
    idp = make_dev_idp(clock=fake_clock)
    first = login(idp)
    original = claims_of(idp, first["id_token"], idp.client_id)
    fake_clock.advance(100)
    response = token(
        idp,
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=idp.client_id,
    )
    assert response.status_code == 200
    refreshed = claims_of(idp, response.json()["id_token"], idp.client_id)
    assert (refreshed["iss"], refreshed["sub"]) == (original["iss"], original["sub"])
    assert refreshed["iat"] == original["iat"] + 100
    assert refreshed["auth_time"] == original["auth_time"]
    assert "nonce" not in refreshed
    assert response.json()["refresh_token"] != first["refresh_token"]
    reused = token(
        idp,
        grant_type="refresh_token",
        refresh_token=first["refresh_token"],
        client_id=idp.client_id,
    )
    assert reused.json()["error"] == "invalid_grant"


def test_userinfo(dev_idp: DevIdP) -> None:
    tokens = login(dev_idp)
    ok = requests.get(
        dev_idp.issuer + "/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    assert ok.json()["sub"] == dev_idp.settings.user.sub
    denied = requests.get(
        dev_idp.issuer + "/userinfo", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert denied.status_code == 401


# -- device flow ----------------------------------------------------------------------------


def start_device(idp: DevIdP, nonce: str = "device-nonce") -> dict[str, Any]:
    response = requests.post(
        idp.issuer + "/device/code",
        data={"client_id": idp.client_id, "scope": "openid", "nonce": nonce},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def poll(idp: DevIdP, device_code: str) -> requests.Response:
    return token(
        idp, grant_type=DEVICE_GRANT_TYPE, device_code=device_code, client_id=idp.client_id
    )


def test_device_flow_states(make_dev_idp: Callable[..., DevIdP], fake_clock: FakeClock) -> None:
    idp = make_dev_idp(DevIdPSettings(device_interval=5), clock=fake_clock)
    device = start_device(idp)
    assert device["verification_uri"] == idp.issuer + "/device"
    assert device["verification_uri_complete"].endswith("user_code=" + device["user_code"])
    assert device["interval"] == 5
    assert poll(idp, device["device_code"]).json()["error"] == "authorization_pending"
    fake_clock.advance(2)
    slow = poll(idp, device["device_code"]).json()
    assert slow["error"] == "slow_down"
    assert "wait 10 seconds" in slow["error_description"]
    fake_clock.advance(6)  # 6 < 10: still too fast
    assert poll(idp, device["device_code"]).json()["error"] == "slow_down"
    fake_clock.advance(15)
    assert poll(idp, device["device_code"]).json()["error"] == "authorization_pending"
    page = requests.get(device["verification_uri_complete"], timeout=5)
    assert page.status_code == 200
    assert f"value='{device['user_code']}'" in page.text
    approved = requests.post(
        device["verification_uri"],
        data={"user_code": device["user_code"].lower(), "action": "approve"},
        timeout=5,
    )
    assert approved.status_code == 200
    assert "Device approved" in approved.text
    fake_clock.advance(30)
    done = poll(idp, device["device_code"])
    assert done.status_code == 200
    assert claims_of(idp, done.json()["id_token"], idp.client_id)["nonce"] == "device-nonce"
    assert poll(idp, device["device_code"]).json()["error"] == "invalid_grant"


def test_device_code_expires(make_dev_idp: Callable[..., DevIdP], fake_clock: FakeClock) -> None:
    idp = make_dev_idp(DevIdPSettings(device_code_lifetime=60), clock=fake_clock)
    device = start_device(idp)
    fake_clock.advance(61)
    assert poll(idp, device["device_code"]).json()["error"] == "expired_token"
    assert not idp.approve_device(device["user_code"])


def test_device_denied(dev_idp: DevIdP) -> None:
    device = start_device(dev_idp)
    denied = requests.post(
        dev_idp.issuer + "/device",
        data={"user_code": device["user_code"], "action": "deny"},
        timeout=5,
    )
    assert "Device denied" in denied.text
    assert poll(dev_idp, device["device_code"]).json()["error"] == "access_denied"


def test_device_page_rejects_unknown_codes(dev_idp: DevIdP) -> None:
    response = requests.post(
        dev_idp.issuer + "/device", data={"user_code": "BBBB-CCCC", "action": "approve"}, timeout=5
    )
    assert response.status_code == 400
    assert "no pending device login" in response.text


def test_device_authorization_needs_openid_scope(dev_idp: DevIdP) -> None:
    response = requests.post(
        dev_idp.issuer + "/device/code", data={"client_id": dev_idp.client_id}, timeout=5
    )
    assert response.json()["error"] == "invalid_scope"


# -- GitHub Actions-style endpoint ----------------------------------------------------------

GITHUB_STRING_CLAIMS = {
    "sub",
    "aud",
    "iss",
    "jti",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "ref",
    "ref_type",
    "sha",
    "workflow",
    "workflow_ref",
    "workflow_sha",
    "job_workflow_ref",
    "job_workflow_sha",
    "event_name",
    "runner_environment",
    "run_id",
    "run_attempt",
    "actor",
    "actor_id",
}


def github_request(
    idp: DevIdP, suffix: str = "&audience=sigstore", **headers: str
) -> requests.Response:
    return requests.get(idp.github_request_url + suffix, headers=headers, timeout=5)


def test_github_endpoint_requires_the_request_token(dev_idp: DevIdP) -> None:
    missing = github_request(dev_idp)
    assert missing.status_code == 401
    wrong = github_request(dev_idp, Authorization="Bearer not-the-token")
    assert wrong.status_code == 401
    basic = github_request(dev_idp, Authorization=f"Basic {dev_idp.request_token}")
    assert basic.status_code == 401


def test_github_endpoint_needs_the_query_it_was_given(dev_idp: DevIdP) -> None:
    auth = {"Authorization": f"Bearer {dev_idp.request_token}"}
    assert "?api-version=2.0" in dev_idp.github_request_url
    # A client that adds "?audience=" to a URL that already has a query breaks it.
    broken = github_request(dev_idp, "?audience=x", **auth)
    assert broken.status_code == 400
    assert "api-version" in broken.json()["message"]
    repeated = github_request(dev_idp, "&audience=a&audience=b", **auth)
    assert repeated.status_code == 400


def test_github_claim_set(dev_idp: DevIdP) -> None:
    response = github_request(dev_idp, Authorization=f"bearer {dev_idp.request_token}")
    assert response.status_code == 200
    assert set(response.json()) == {"value"}
    value = response.json()["value"]
    header = jwt.get_unverified_header(value)
    assert header == {"alg": "RS256", "kid": dev_idp.active_kid, "typ": "JWT"}
    claims = claims_of(dev_idp, value, "sigstore")
    workload = dev_idp.settings.github
    assert set(claims) >= GITHUB_STRING_CLAIMS
    assert "environment" not in claims
    for name, value in claims.items():
        if name in ("iat", "nbf", "exp"):
            assert type(value) is int
        else:
            assert isinstance(value, str), name
    assert claims["sub"] == f"repo:{workload.repository}:ref:{workload.ref}"
    assert claims["iss"] == dev_idp.issuer
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"] - 300
    assert claims["repository_id"] == workload.repository_id


def test_github_default_audience_and_environment(make_dev_idp: Callable[..., DevIdP]) -> None:
    workload = GitHubWorkload.for_repository(
        "acme/rockets", ref="refs/tags/v1.2.0", environment="production"
    )
    idp = make_dev_idp(DevIdPSettings(github=workload))
    response = github_request(idp, "", Authorization=f"Bearer {idp.request_token}")
    claims = claims_of(idp, response.json()["value"], "https://github.com/acme")
    assert claims["sub"] == "repo:acme/rockets:environment:production"
    assert claims["environment"] == "production"
    assert claims["ref_type"] == "tag"
    assert claims["workflow_ref"] == "acme/rockets/.github/workflows/release.yml@refs/tags/v1.2.0"
    assert replace(workload, environment=None, event_name="pull_request").subject == (
        "repo:acme/rockets:pull_request"
    )


# -- GitLab CI-style tokens -----------------------------------------------------------------


def test_gitlab_token(dev_idp: DevIdP) -> None:
    token_value = dev_idp.mint_gitlab_token()
    workload: GitLabWorkload = dev_idp.settings.gitlab
    claims = claims_of(dev_idp, token_value, workload.audience)
    assert claims["aud"].startswith("OPENPUBKEY-PKTOKEN:")
    assert claims["sub"] == "project_path:my-group/my-project:ref_type:branch:ref:main"
    assert claims["project_path"] == workload.project_path
    assert claims["namespace_path"] == "my-group"
    assert claims["pipeline_source"] == "push"
    assert claims["user_login"] == workload.user_login
    assert claims["nbf"] == claims["iat"] - 5
    over_http = requests.get(
        dev_idp.issuer + "/gitlab/token",
        headers={"Authorization": f"Bearer {dev_idp.request_token}"},
        timeout=5,
    )
    assert claims_of(dev_idp, over_http.json()["value"], workload.audience)["iss"] == dev_idp.issuer
    assert requests.get(dev_idp.issuer + "/gitlab/token", timeout=5).status_code == 401


def test_env_describes_the_running_provider(dev_idp: DevIdP) -> None:
    env = dev_idp.env()
    assert env["GITHUB_ACTIONS"] == "true"
    assert env["OPKEY_DEV_ISSUER"] == dev_idp.issuer
    assert env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] == dev_idp.request_token
    assert (
        json.loads(
            requests.get(
                env["OPKEY_DEV_ISSUER"] + "/.well-known/openid-configuration", timeout=5
            ).text
        )["issuer"]
        == dev_idp.issuer
    )
