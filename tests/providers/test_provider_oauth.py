"""The logins' OAuth client (authlib's, on opkey's transport) keeps opkey's transport rules.

Hostile token and device endpoints are real HTTP servers on loopback (pytest-httpserver);
well-behaved flows run against the dev provider, through a transport that records what is sent.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Response

from opkey.errors import NetworkError, ProviderError
from opkey.http import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, HttpResponse, RequestsTransport
from opkey.keys import generate_signing_key
from opkey.providers import BrowserProvider, DeviceFlowProvider, OidcClient
from opkey.providers.base import TOKEN_RESPONSE_MAX_BYTES
from opkey.sandbox.devidp import DevClient, DevIdP, DevIdPSettings


@dataclass
class RecordingTransport:
    """opkey's default transport, remembering every request."""

    inner: RequestsTransport = field(default_factory=RequestsTransport)
    sent: list[tuple[str, str, dict[str, str], bytes | Mapping[str, str] | None]] = field(
        default_factory=list
    )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpResponse:
        self.sent.append((method, url, dict(headers or {}), data))
        return self.inner.request(
            method, url, headers=headers, data=data, timeout=timeout, max_bytes=max_bytes
        )


def deliver_code(url: str) -> bool:
    """A browser whose provider approved at once: send a code to the redirect URI."""
    query = dict(parse_qsl(urlsplit(url).query))
    target = query["redirect_uri"] + "?" + urlencode({"code": "c0de", "state": query["state"]})
    requests.get(target, timeout=5)
    return True


def hostile_provider(httpserver: HTTPServer, token: Callable[[], Response]) -> str:
    issuer = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {
            "issuer": issuer,
            "jwks_uri": issuer + "/jwks",
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "device_authorization_endpoint": issuer + "/device/code",
        }
    )
    httpserver.expect_request("/jwks").respond_with_json({"keys": []})
    httpserver.expect_request("/token", method="POST").respond_with_handler(lambda _: token())
    return issuer


def browser_login(issuer: str) -> None:
    provider = BrowserProvider(
        OidcClient(issuer=issuer, client_id="cid"), opener=deliver_code, timeout=10
    )
    provider.get_pktoken(generate_signing_key())


def test_token_endpoint_redirect_is_not_followed(httpserver: HTTPServer) -> None:
    issuer = hostile_provider(
        httpserver, lambda: Response(status=307, headers={"Location": "/elsewhere"})
    )
    httpserver.expect_request("/elsewhere").respond_with_json({"id_token": "x"})
    with pytest.raises(NetworkError, match="redirects are not followed"):
        browser_login(issuer)
    assert not [r for r, _ in httpserver.log if r.path == "/elsewhere"]


def test_oversized_token_response_is_cut_off(httpserver: HTTPServer) -> None:
    huge = json.dumps({"id_token": "x" * (TOKEN_RESPONSE_MAX_BYTES + 1)})
    issuer = hostile_provider(
        httpserver, lambda: Response(huge, status=200, content_type="application/json")
    )
    with pytest.raises(NetworkError, match="exceeds"):
        browser_login(issuer)


def test_token_response_is_parsed_strictly(httpserver: HTTPServer) -> None:
    # Duplicate members: a lenient parser would take the last id_token.
    body = '{"id_token": "a.b.c", "id_token": "d.e.f", "token_type": "Bearer"}'
    issuer = hostile_provider(
        httpserver, lambda: Response(body, status=200, content_type="application/json")
    )
    with pytest.raises(ProviderError, match="not a JSON object"):
        browser_login(issuer)


def test_unusable_token_members_are_a_provider_error(httpserver: HTTPServer) -> None:
    body = json.dumps({"id_token": "a.b.c", "expires_in": "soon", "token_type": "Bearer"})
    issuer = hostile_provider(
        httpserver, lambda: Response(body, status=200, content_type="application/json")
    )
    with pytest.raises(ProviderError, match="response is not usable"):
        browser_login(issuer)


def test_oauth_error_from_the_token_endpoint_is_reported(httpserver: HTTPServer) -> None:
    body = json.dumps({"error": "invalid_grant", "error_description": "code reused"})
    issuer = hostile_provider(
        httpserver, lambda: Response(body, status=400, content_type="application/json")
    )
    with pytest.raises(
        ProviderError, match="token endpoint refused the code: invalid_grant: code reused"
    ) as info:
        browser_login(issuer)
    assert info.value.found == "invalid_grant"


def test_server_error_is_a_network_error(httpserver: HTTPServer) -> None:
    issuer = hostile_provider(httpserver, lambda: Response("down", status=503))
    with pytest.raises(NetworkError, match="HTTP 503"):
        browser_login(issuer)


def test_device_authorization_refusal_without_json(httpserver: HTTPServer) -> None:
    issuer = hostile_provider(httpserver, lambda: Response(status=500))
    httpserver.expect_request("/device/code", method="POST").respond_with_data(
        "<html>nope</html>", status=403
    )
    provider = DeviceFlowProvider(OidcClient(issuer=issuer, client_id="cid"))
    with pytest.raises(ProviderError, match=r"refused the request \(HTTP 403\): <html>nope"):
        provider.get_pktoken(generate_signing_key())


def test_confidential_client_posts_its_secret_through_opkeys_transport(
    make_dev_idp: Callable[..., DevIdP],
) -> None:
    client = DevClient(client_id="confidential", client_secret="s3cret")
    idp = make_dev_idp(DevIdPSettings(clients=(client,)))
    transport = RecordingTransport()

    def browser(url: str) -> bool:
        requests.get(url, timeout=5)  # follows the provider's redirect to the listener
        return True

    provider = BrowserProvider(
        OidcClient(issuer=idp.issuer, client_id="confidential", client_secret="s3cret"),
        transport=transport,
        opener=browser,
        timeout=10,
        output=io.StringIO(),
    )
    pktoken = provider.get_pktoken(generate_signing_key())
    assert pktoken.claims["aud"] == "confidential"
    (token_request,) = [s for s in transport.sent if s[1] == idp.issuer + "/token"]
    method, _, headers, data = token_request
    assert method == "POST"
    assert isinstance(data, bytes)
    form = parse_qs(data.decode())
    assert form["grant_type"] == ["authorization_code"]
    assert form["client_id"] == ["confidential"]
    assert form["client_secret"] == ["s3cret"]  # client_secret_post
    assert len(form["code_verifier"][0]) >= 43
    assert "Authorization" not in headers
    assert not any(k.lower() == "user-agent" for k in headers)  # the transport's own is used
    wrong = BrowserProvider(
        OidcClient(issuer=idp.issuer, client_id="confidential", client_secret="wrong"),
        opener=browser,
        timeout=10,
        output=io.StringIO(),
    )
    with pytest.raises(ProviderError, match="invalid_client"):
        wrong.get_pktoken(generate_signing_key())
