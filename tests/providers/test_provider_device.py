"""Device login (RFC 8628): end to end against the dev provider, and polling etiquette."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey import issuers
from opkey.errors import ProviderError
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.providers import DeviceFlowProvider, DevicePrompt, OidcClient
from opkey.sandbox.devidp import DevIdP, DevIdPSettings
from opkey.verify import verify_pktoken

if TYPE_CHECKING:
    from tests.helpers import FakeClock


def approve_in_browser(prompt: DevicePrompt, action: str = "approve") -> None:
    """What the user does on their phone: open the page, submit the code."""
    page = requests.get(prompt.verification_uri, timeout=5)
    assert page.status_code == 200
    response = requests.post(
        prompt.verification_uri, data={"user_code": prompt.user_code, "action": action}, timeout=5
    )
    assert response.status_code == 200


def test_device_login_end_to_end(make_dev_idp: Callable[..., DevIdP], dev_jwks: JwksClient) -> None:
    idp = make_dev_idp(DevIdPSettings(device_interval=0))
    prompts: list[DevicePrompt] = []

    def on_prompt(prompt: DevicePrompt) -> None:
        prompts.append(prompt)
        # The user approves a little later; meanwhile opkey keeps polling.
        threading.Timer(0.3, approve_in_browser, args=(prompt,)).start()

    sleeps: list[float] = []

    def short_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(0.05)

    client = OidcClient(issuer=idp.issuer, client_id=idp.client_id)
    provider = DeviceFlowProvider(client, on_prompt=on_prompt, sleep=short_sleep)
    key = generate_signing_key()
    pktoken = provider.get_pktoken(key)
    verified = verify_pktoken(
        pktoken,
        issuers.oidc(idp.issuer, idp.client_id),
        JwksClient([idp.issuer]).keys(idp.issuer),
        now=datetime.now(timezone.utc),
    )
    assert verified.subject == idp.settings.user.sub
    assert pktoken.claims["nonce"] == pktoken.cic_claims.commitment()
    assert len(prompts) == 1
    assert prompts[0].verification_uri == idp.issuer + "/device"
    assert len(sleeps) > 1  # it was pending at least once before the approval


def test_device_login_prints_instructions(dev_idp: DevIdP, dev_jwks: JwksClient) -> None:
    class Terminal(io.StringIO):
        def write(self, text: str) -> int:
            if "enter the code " in text:
                code = text.split("enter the code ")[1].split()[0]
                threading.Thread(target=dev_idp.approve_device, args=(code,)).start()
            return super().write(text)

    terminal = Terminal()
    client = OidcClient(issuer=dev_idp.issuer, client_id=dev_idp.client_id)
    provider = DeviceFlowProvider(client, output=terminal)  # the shared provider polls every 1s
    pktoken = provider.get_pktoken(generate_signing_key())
    assert f"open {dev_idp.issuer}/device and enter the code" in terminal.getvalue()
    assert pktoken.issuer == dev_idp.issuer


def test_device_login_denied(dev_idp: DevIdP) -> None:
    client = OidcClient(issuer=dev_idp.issuer, client_id=dev_idp.client_id)
    provider = DeviceFlowProvider(
        client, on_prompt=lambda prompt: approve_in_browser(prompt, "deny")
    )
    with pytest.raises(ProviderError, match="the user denied the login"):
        provider.get_pktoken(generate_signing_key())


def serve_device_provider(
    httpserver: HTTPServer, answers: list[str], device: dict[str, object]
) -> tuple[str, list[dict[str, str]]]:
    """A provider whose token endpoint answers ``answers`` in turn; returns issuer and polls."""
    issuer = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {
            "issuer": issuer,
            "jwks_uri": issuer + "/jwks",
            "token_endpoint": issuer + "/token",
            "device_authorization_endpoint": issuer + "/device/code",
        }
    )
    httpserver.expect_request("/jwks").respond_with_json({"keys": []})
    httpserver.expect_request("/device/code", method="POST").respond_with_json(device)
    polls: list[dict[str, str]] = []

    def token(request: Request) -> Response:
        polls.append(dict(request.form))
        error = answers[min(len(polls), len(answers)) - 1]
        return Response(json.dumps({"error": error}), status=400, content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_handler(token)
    return issuer, polls


def test_polling_is_polite(httpserver: HTTPServer, fake_clock: FakeClock) -> None:
    issuer, polls = serve_device_provider(
        httpserver,
        ["authorization_pending", "slow_down", "authorization_pending", "access_denied"],
        # Google's spelling: verification_url
        {
            "device_code": "dc",
            "user_code": "ABCD",
            "verification_url": "https://x/d",
            "expires_in": 600,
        },
    )
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fake_clock.sleep(seconds)

    provider = DeviceFlowProvider(
        OidcClient(issuer=issuer, client_id="cid"),
        on_prompt=lambda prompt: None,
        sleep=sleep,
        clock=fake_clock,
    )
    with pytest.raises(ProviderError, match="denied"):
        provider.get_pktoken(generate_signing_key())
    # Default interval 5 s; slow_down adds 5 s for this and every later poll.
    assert sleeps == [5, 5, 10, 10]
    assert polls[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"
    assert polls[0]["device_code"] == "dc"
    assert polls[0]["client_id"] == "cid"
    device_request = next(r for r, _ in httpserver.log if r.path == "/device/code")
    assert device_request.form["nonce"]
    assert device_request.form["scope"] == "openid profile email"


def test_polling_stops_when_the_code_expires(httpserver: HTTPServer, fake_clock: FakeClock) -> None:
    issuer, polls = serve_device_provider(
        httpserver,
        ["authorization_pending"],
        {
            "device_code": "dc",
            "user_code": "ABCD",
            "verification_uri": "https://x/d",
            "expires_in": 12,
            "interval": 5,
        },
    )
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        fake_clock.sleep(seconds)

    provider = DeviceFlowProvider(
        OidcClient(issuer=issuer, client_id="cid"),
        on_prompt=lambda prompt: None,
        sleep=sleep,
        clock=fake_clock,
    )
    with pytest.raises(ProviderError, match="expired before the login was approved"):
        provider.get_pktoken(generate_signing_key())
    assert sleeps == [5, 5, 2]
    assert len(polls) == 3


def test_expired_token_answer(httpserver: HTTPServer, fake_clock: FakeClock) -> None:
    issuer, _ = serve_device_provider(
        httpserver,
        ["expired_token"],
        {
            "device_code": "dc",
            "user_code": "A",
            "verification_uri": "https://x/d",
            "expires_in": 60,
        },
    )
    provider = DeviceFlowProvider(
        OidcClient(issuer=issuer, client_id="cid"),
        on_prompt=lambda prompt: None,
        sleep=fake_clock.sleep,
        clock=fake_clock,
    )
    with pytest.raises(ProviderError, match="expired"):
        provider.get_pktoken(generate_signing_key())


def test_provider_without_device_endpoint(httpserver: HTTPServer) -> None:
    issuer = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks", "token_endpoint": issuer + "/token"}
    )
    httpserver.expect_request("/jwks").respond_with_json({"keys": []})
    provider = DeviceFlowProvider(OidcClient(issuer=issuer, client_id="cid"))
    with pytest.raises(ProviderError, match="publishes no device_authorization_endpoint"):
        provider.get_pktoken(generate_signing_key())
