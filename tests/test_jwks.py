"""JwksClient against real HTTP servers: discovery rules, caching, rate limits and faults."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey.errors import ConfigError, FormatError, KeyNotFoundError, NetworkError
from opkey.http import HttpResponse, RequestsTransport
from opkey.jwks.client import JwksClient
from opkey.jwks.keyset import KeySet
from opkey.sandbox.devidp import DevIdP, DevKey

if TYPE_CHECKING:
    from tests.helpers import FakeClock

KEY_A = DevKey.generate()
KEY_B = DevKey.generate()


def issuer_of(httpserver: HTTPServer) -> str:
    return httpserver.url_for("/").rstrip("/")


def serve_provider(
    httpserver: HTTPServer,
    keys: Callable[[], list[DevKey]] | list[DevKey],
    *,
    issuer: str | None = None,
    jwks_delay: float = 0.0,
) -> str:
    """Serve discovery and a JWKS (``keys`` may change between requests); return the issuer."""
    actual = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer or actual, "jwks_uri": actual + "/jwks"}
    )

    def jwks(request: Request) -> Response:
        if jwks_delay:
            time.sleep(jwks_delay)
        current = keys() if callable(keys) else keys
        import json

        return Response(
            json.dumps({"keys": [k.jwk() for k in current]}), content_type="application/json"
        )

    httpserver.expect_request("/jwks").respond_with_handler(jwks)
    return actual


def count(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == path)


def test_keys_are_found_through_discovery(httpserver: HTTPServer) -> None:
    issuer = serve_provider(httpserver, [KEY_A])
    client = JwksClient([issuer])
    keyset = client.keys(issuer)
    assert [key.kid for key in keyset] == [KEY_A.kid]
    assert client.find_key(issuer, kid=KEY_A.kid).thumbprint() == KEY_A.public_jwk.thumbprint()
    assert client.metadata(issuer).jwks_uri == issuer + "/jwks"
    assert count(httpserver, "/.well-known/openid-configuration") == 1
    assert count(httpserver, "/jwks") == 1


def test_find_key_by_thumbprint(httpserver: HTTPServer) -> None:
    issuer = serve_provider(httpserver, [KEY_A, KEY_B])
    client = JwksClient([issuer])
    assert client.find_key(issuer, kid=None, jkt=KEY_B.public_jwk.thumbprint()).kid == KEY_B.kid


def test_cache_serves_until_ttl_then_refetches(
    httpserver: HTTPServer, fake_clock: FakeClock
) -> None:
    issuer = serve_provider(httpserver, [KEY_A])
    client = JwksClient([issuer], ttl=300, clock=fake_clock)
    first = client.keys(issuer)
    fake_clock.advance(299)
    assert client.keys(issuer) is first
    assert count(httpserver, "/jwks") == 1
    fake_clock.advance(2)
    client.keys(issuer)
    assert count(httpserver, "/jwks") == 2
    assert count(httpserver, "/.well-known/openid-configuration") == 2


def test_unknown_kid_after_rotation_refreshes_once_then_is_rate_limited(
    httpserver: HTTPServer, fake_clock: FakeClock
) -> None:
    published = [KEY_A]
    issuer = serve_provider(httpserver, lambda: list(published))
    client = JwksClient([issuer], ttl=3600, min_refresh_interval=30, clock=fake_clock)
    client.keys(issuer)
    published[:] = [KEY_B]  # the provider rotated and dropped the old key
    fake_clock.advance(31)
    # A token signed with the new key: one refresh finds it.
    assert client.find_key(issuer, kid=KEY_B.kid).kid == KEY_B.kid
    assert count(httpserver, "/jwks") == 2
    fake_clock.advance(31)
    # A key nobody publishes: one refresh, then a clean rejection...
    with pytest.raises(KeyNotFoundError, match="even after refetching"):
        client.find_key(issuer, kid="made-up")
    assert count(httpserver, "/jwks") == 3
    # ...and within the interval no refetch at all, however many unknown kids arrive.
    fake_clock.advance(5)
    for n in range(20):
        with pytest.raises(KeyNotFoundError, match="not refetching within 30s"):
            client.find_key(issuer, kid=f"made-up-{n}")
    assert count(httpserver, "/jwks") == 3
    # The old key is gone from the provider and from the cache.
    with pytest.raises(KeyNotFoundError):
        client.find_key(issuer, kid=KEY_A.kid)
    assert count(httpserver, "/jwks") == 3


def test_rotation_on_the_dev_provider_with_old_key_kept_and_dropped(
    make_dev_idp: Callable[..., DevIdP], fake_clock: FakeClock
) -> None:
    idp = make_dev_idp()
    client = JwksClient([idp.issuer], min_refresh_interval=10, clock=fake_clock)
    old = idp.active_kid
    client.find_key(idp.issuer, kid=old)
    new = idp.rotate_key(keep_old=True)
    fake_clock.advance(11)
    assert client.find_key(idp.issuer, kid=new).kid == new
    assert client.find_key(idp.issuer, kid=old).kid == old  # still published
    newest = idp.rotate_key(keep_old=False)
    fake_clock.advance(11)
    assert client.find_key(idp.issuer, kid=newest).kid == newest
    assert [key.kid for key in client.keys(idp.issuer)] == [newest]


def test_concurrent_misses_share_one_fetch(httpserver: HTTPServer, fake_clock: FakeClock) -> None:
    published = [KEY_A]
    issuer = serve_provider(httpserver, lambda: list(published), jwks_delay=0.2)
    client = JwksClient([issuer], min_refresh_interval=30, clock=fake_clock)
    client.keys(issuer)
    published[:] = [KEY_A, KEY_B]
    fake_clock.advance(31)
    found: list[str | None] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(8)

    def look_up() -> None:
        barrier.wait()
        try:
            found.append(client.find_key(issuer, kid=KEY_B.kid).kid)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert found == [KEY_B.kid] * 8
    assert count(httpserver, "/jwks") == 2


def test_issuer_not_in_allowlist_makes_no_request(httpserver: HTTPServer) -> None:
    issuer = serve_provider(httpserver, [KEY_A])
    client = JwksClient(["https://token.actions.githubusercontent.com"])
    with pytest.raises(ConfigError, match="not in the allowed issuers"):
        client.keys(issuer)
    with pytest.raises(ConfigError, match="not in the allowed issuers"):
        client.find_key(issuer, kid=KEY_A.kid)
    assert httpserver.log == []


def test_plain_http_issuer_off_loopback_is_refused() -> None:
    with pytest.raises(ConfigError, match="https is required"):
        JwksClient(["http://issuer.example.com"])


def test_plain_http_jwks_uri_off_loopback_is_refused(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": "http://keys.example.com/jwks"}
    )
    client = JwksClient([issuer])
    with pytest.raises(NetworkError, match="plain http; https is required"):
        client.keys(issuer)


@pytest.mark.parametrize(
    "variant",
    ["{issuer}/", "{issuer_upper}", "https://{hostport}"],
    ids=["trailing-slash", "case", "scheme"],
)
def test_discovery_issuer_must_match_exactly(httpserver: HTTPServer, variant: str) -> None:
    issuer = issuer_of(httpserver)
    named = variant.format(
        issuer=issuer,
        issuer_upper=issuer.replace("localhost", "LOCALHOST"),
        hostport=issuer.split("://", 1)[1],
    )
    serve_provider(httpserver, [KEY_A], issuer=named)
    client = JwksClient([issuer])
    with pytest.raises(ConfigError, match="must be equal exactly") as info:
        client.keys(issuer)
    assert info.value.expected == issuer
    assert info.value.found == named
    assert count(httpserver, "/jwks") == 0


def test_redirects_are_not_followed(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_data(
        "", status=302, headers={"Location": issuer + "/elsewhere"}
    )
    httpserver.expect_request("/elsewhere").respond_with_json({"issuer": issuer})
    client = JwksClient([issuer])
    with pytest.raises(NetworkError, match=r"HTTP 302 redirecting to .*not followed"):
        client.keys(issuer)
    assert count(httpserver, "/elsewhere") == 0


def test_redirecting_jwks_uri_is_refused(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks"}
    )
    httpserver.expect_request("/jwks").respond_with_data(
        "", status=301, headers={"Location": "https://attacker.example/jwks"}
    )
    with pytest.raises(NetworkError, match="redirects are not followed"):
        JwksClient([issuer]).keys(issuer)


def test_server_error_is_a_network_error(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_data(
        "upstream unavailable", status=503
    )
    with pytest.raises(NetworkError, match="HTTP 503, expected 200") as info:
        JwksClient([issuer]).keys(issuer)
    assert issuer in str(info.value)


def test_garbage_json_is_a_format_error(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks"}
    )
    httpserver.expect_request("/jwks").respond_with_data(
        '{"keys": [', content_type="application/json"
    )
    with pytest.raises(FormatError, match=r"invalid JSON") as info:
        JwksClient([issuer]).keys(issuer)
    assert "/jwks" in str(info.value)


def test_jwks_that_is_not_a_key_set_is_a_format_error(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks"}
    )
    httpserver.expect_request("/jwks").respond_with_json({"keys": {"kty": "RSA"}})
    with pytest.raises(FormatError, match="expected a 'keys' array"):
        JwksClient([issuer]).keys(issuer)


def test_oversized_response_is_refused(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks", "padding": "x" * 20_000}
    )
    with pytest.raises(NetworkError, match="exceeds the 4096-byte limit"):
        JwksClient([issuer], max_bytes=4096).keys(issuer)


def test_unreachable_provider_fails_fast() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with pytest.raises(NetworkError, match="connection refused"):
        JwksClient([issuer], timeout=2).keys(issuer)
    assert time.monotonic() - started < 2


def test_slow_provider_times_out(httpserver: HTTPServer) -> None:
    issuer = issuer_of(httpserver)

    finished = threading.Event()

    def slow(request: Request) -> Response:
        time.sleep(1.2)
        finished.set()
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/.well-known/openid-configuration").respond_with_handler(slow)
    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"timed out after 0\.3s"):
        JwksClient([issuer], timeout=0.3).keys(issuer)
    assert time.monotonic() - started < 0.3 + 2
    finished.wait(5)  # let the server finish before the next test reuses it


def test_failure_is_remembered_then_retried(httpserver: HTTPServer, fake_clock: FakeClock) -> None:
    issuer = issuer_of(httpserver)
    httpserver.expect_oneshot_request("/.well-known/openid-configuration").respond_with_data(
        "down", status=500
    )
    client = JwksClient([issuer], min_refresh_interval=30, clock=fake_clock)
    with pytest.raises(NetworkError, match="HTTP 500"):
        client.keys(issuer)
    fake_clock.advance(10)
    with pytest.raises(NetworkError, match="not retried within 30s"):
        client.keys(issuer)
    assert count(httpserver, "/.well-known/openid-configuration") == 1
    serve_provider(httpserver, [KEY_A])
    fake_clock.advance(21)
    assert len(client.keys(issuer)) == 1


def test_observer_sees_every_fetch(httpserver: HTTPServer, fake_clock: FakeClock) -> None:
    published = [KEY_A]
    issuer = serve_provider(httpserver, lambda: list(published))
    seen: list[tuple[str, KeySet, datetime]] = []
    client = JwksClient(
        [issuer],
        clock=fake_clock,
        min_refresh_interval=1,
        observer=lambda iss, keyset, at: seen.append((iss, keyset, at)),
    )
    client.keys(issuer)
    client.keys(issuer)  # cached: not a fetch
    published.append(KEY_B)
    fake_clock.advance(2)
    client.find_key(issuer, kid=KEY_B.kid)
    assert [(iss, len(keyset)) for iss, keyset, _ in seen] == [(issuer, 1), (issuer, 2)]
    for _, _, at in seen:
        assert at.utcoffset() is not None
        assert at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_invalid_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        JwksClient(["https://issuer.example"], ttl=0)
    with pytest.raises(ConfigError, match="query or fragment"):
        JwksClient(["https://issuer.example/?tenant=1"])
    with pytest.raises(TypeError):
        JwksClient("https://issuer.example")


class CountingTransport:
    """The real transport, counting the requests it makes."""

    def __init__(self) -> None:
        self.inner = RequestsTransport()
        self.urls: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        self.urls.append(url)
        return self.inner.request(method, url, **kwargs)


def test_transport_is_pluggable(dev_idp: DevIdP) -> None:
    transport = CountingTransport()
    client = JwksClient([dev_idp.issuer], transport=transport)
    client.find_key(dev_idp.issuer, kid=dev_idp.active_kid)
    client.find_key(dev_idp.issuer, kid=dev_idp.active_kid)
    assert transport.urls == [
        dev_idp.issuer + "/.well-known/openid-configuration",
        dev_idp.issuer + "/.well-known/jwks",
    ]
