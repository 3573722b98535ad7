"""Attacks on discovery and JWKS fetching: SSRF, cache poisoning, refresh storms (catalog §10).

The hostile servers are real HTTP servers (pytest-httpserver) on loopback. To play a provider
that is *not* on loopback, :class:`RoutedTransport` sends requests for one public address to
the test server, unchanged otherwise: opkey's URL checks see the public address, the bytes come
from the hostile server.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey.errors import ConfigError, FormatError, KeyNotFoundError, NetworkError, SignatureError
from opkey.http import check_url, is_loopback_host
from opkey.jose import b64url_encode
from opkey.jwks.client import JwksClient
from opkey.jwks.sources import LiveKeys
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.helpers import NOW, FakeClock, MiniOP, RoutingTransport, rsa_key
from tests.security.sec_common import forge, parse, rsa_signer

#: A public address (example.com's) that RoutedTransport maps to the local test server.
PUBLIC = "93.184.215.14"


def RoutedTransport(server: HTTPServer) -> RoutingTransport:
    """Sends ``https://PUBLIC/...`` to the test server; everything else as it is."""
    return RoutingTransport({f"https://{PUBLIC}": server.url_for("/").rstrip("/")})


def base(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def count(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


def serve(
    server: HTTPServer,
    prefix: str,
    keys: Callable[[], list[dict[str, Any]]],
    *,
    issuer: str | None = None,
    jwks_uri: str | None = None,
) -> str:
    """Serve discovery and a JWKS under ``prefix``; return the issuer URL."""
    actual = base(server) + prefix
    server.expect_request(f"{prefix}/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer or actual, "jwks_uri": jwks_uri or actual + "/jwks"}
    )

    def jwks(_: Request) -> Response:
        return Response(json.dumps({"keys": keys()}), content_type="application/json")

    server.expect_request(f"{prefix}/jwks").respond_with_handler(jwks)
    return actual


def provider(issuer: str, kid: str = "k1") -> MiniOP:
    return MiniOP(issuer=issuer, kid=kid, private_key=rsa_key(fresh=True))


def live_verifier(client: JwksClient, *ops: MiniOP) -> Verifier:
    return Verifier(
        Trust([TrustedIssuer(op.config(), [LiveKeys(client)]) for op in ops]), clock=lambda: NOW
    )


# -- redirects -----------------------------------------------------------------------------------


def test_discovery_redirect_is_not_followed(httpserver: HTTPServer) -> None:
    issuer = base(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/internal")})
    )
    httpserver.expect_request("/internal").respond_with_json({"issuer": issuer})
    with pytest.raises(NetworkError, match=r"HTTP 302 redirecting to .*redirects are not followed"):
        JwksClient([issuer]).keys(issuer)
    assert count(httpserver, "/internal") == 0


def test_jwks_redirect_to_the_metadata_service_is_not_followed(httpserver: HTTPServer) -> None:
    issuer = base(httpserver)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks"}
    )
    httpserver.expect_request("/jwks").respond_with_response(
        Response(status=307, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    )
    with pytest.raises(NetworkError, match=r"HTTP 307 redirecting to 'http://169\.254\.169\.254"):
        JwksClient([issuer]).keys(issuer)


# -- where a JWKS may be fetched from -----------------------------------------------------------


@pytest.mark.parametrize(
    "jwks_uri",
    ["http://keys.example.com/jwks", "http://10.0.0.5/jwks", "http://[fd00::1]/jwks",
     "http://0.0.0.0/jwks", "http://[::ffff:127.0.0.1]/jwks", "http://127.1/jwks"],
)  # fmt: skip
def test_plain_http_jwks_uri_is_refused(httpserver: HTTPServer, jwks_uri: str) -> None:
    issuer = serve(httpserver, "", list, jwks_uri=jwks_uri)
    with pytest.raises(NetworkError, match="uses plain http; https is required"):
        JwksClient([issuer]).keys(issuer)


INTERNAL = [
    "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "[fd00:ec2::254]", "[fd00::1]",
    "[fe80::1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "0.0.0.0", "[::]",
    "100.100.100.200", "100.64.0.1", "198.18.0.1", "192.0.0.192", "240.0.0.1", "224.0.0.1",
]  # fmt: skip


@pytest.mark.parametrize("host", INTERNAL)
def test_jwks_uri_on_an_internal_address_is_refused(httpserver: HTTPServer, host: str) -> None:
    """Cloud metadata services (AWS/GCP 169.254.169.254, Alibaba 100.100.100.200, EC2 IPv6
    fd00:ec2::254), private, CGNAT, unspecified and multicast addresses are never contacted."""
    issuer = serve(httpserver, "", list, jwks_uri=f"https://{host}/jwks")
    with pytest.raises(NetworkError, match="resolves to internal address"):
        JwksClient([issuer]).keys(issuer)
    assert count(httpserver, "/jwks") == 0


@pytest.mark.parametrize(
    "jwks_uri",
    ["https://user:pw@keys.example.com/jwks", "https://:@keys.example.com/jwks",
     "ftp://keys.example.com/jwks", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO",
     "https:///jwks", "https://[::1/jwks", "https://keys.example.com:99999/jwks"],
)  # fmt: skip
def test_malformed_or_non_http_jwks_uri_is_refused(httpserver: HTTPServer, jwks_uri: str) -> None:
    issuer = serve(httpserver, "", list, jwks_uri=jwks_uri)
    with pytest.raises(NetworkError):
        JwksClient([issuer]).keys(issuer)


@pytest.mark.parametrize(
    "host", ["a..b", "x" * 64 + ".example", "-.example", "xn--a.example", ".example"]
)
def test_jwks_uri_host_that_is_not_a_valid_name_is_a_network_error(
    httpserver: HTTPServer, host: str
) -> None:
    """Such names made the resolver's IDNA encoding raise UnicodeError, which escaped."""
    issuer = serve(httpserver, "", list, jwks_uri=f"https://{host}/jwks")
    with pytest.raises(NetworkError, match="cannot resolve"):
        JwksClient([issuer]).keys(issuer)


def test_loopback_literals_and_their_look_alikes() -> None:
    """``[::1]`` and 127/8 are loopback (local development); IPv4-mapped, 0.0.0.0 and names
    that merely start like it are not."""
    for host in ("localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"):
        assert is_loopback_host(host), host
    for host in ("::ffff:127.0.0.1", "0.0.0.0", "localhost.evil.example", "127.0.0.1.nip.io"):
        assert not is_loopback_host(host), host
    check_url("http://[::1]:8080/jwks")
    with pytest.raises(NetworkError, match="plain http"):
        check_url("http://localhost.evil.example/jwks")


@pytest.mark.parametrize(
    "jwks_uri",
    ["http://127.0.0.1:{port}/jwks", "https://localhost:{port}/jwks", "http://[::1]:{port}/jwks",
     "https://127.0.0.2:{port}/jwks"],
)  # fmt: skip
def test_a_remote_issuer_cannot_point_its_jwks_at_loopback(
    httpserver: HTTPServer, jwks_uri: str
) -> None:
    """Loopback is allowed for *local* providers. A provider elsewhere naming a loopback JWKS
    URL would make the verifier query services on its own host (SSRF)."""
    issuer = f"https://{PUBLIC}"
    uri = jwks_uri.format(port=httpserver.port)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": uri}
    )
    httpserver.expect_request("/jwks").respond_with_json({"keys": []})
    client = JwksClient([issuer], transport=RoutedTransport(httpserver))
    with pytest.raises(NetworkError, match="loopback"):
        client.keys(issuer)
    assert count(httpserver, "/jwks") == 0


def test_a_remote_issuer_with_a_public_jwks_uri_works(httpserver: HTTPServer) -> None:
    """Control for the routed provider: the same setup with a public JWKS URL is fetched."""
    issuer = f"https://{PUBLIC}"
    op = provider(issuer)
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_json(
        {"issuer": issuer, "jwks_uri": issuer + "/jwks"}
    )
    httpserver.expect_request("/jwks").respond_with_json({"keys": [op.public_jwk.to_dict()]})
    client = JwksClient([issuer], transport=RoutedTransport(httpserver))
    assert client.find_key(issuer, kid=op.kid) == op.public_jwk


@pytest.mark.parametrize(
    "variant",
    ["{issuer}/", "{issuer}//", "https://{host}", "{upper}", "{issuer}/.", "{issuer}?x=1",
     "{issuer}#", " {issuer}", "{issuer}.evil.example"],
)  # fmt: skip
def test_discovery_naming_another_issuer_is_refused(httpserver: HTTPServer, variant: str) -> None:
    """OIDC Discovery §4.3: one provider's discovery document cannot speak for another."""
    issuer = base(httpserver)
    named = variant.format(
        issuer=issuer, host=issuer.split("://")[1], upper=issuer.replace("localhost", "LOCALHOST")
    )
    serve(httpserver, "", list, issuer=named)
    with pytest.raises(ConfigError, match="they must be equal exactly"):
        JwksClient([issuer]).keys(issuer)
    assert count(httpserver, "/jwks") == 0


def test_the_tokens_issuer_is_never_fetched(httpserver: HTTPServer) -> None:
    """A token naming an untrusted issuer (here: a live hostile server) causes no request."""
    trusted = provider("https://token.actions.githubusercontent.com")
    hostile_issuer = serve(httpserver, "", lambda: [trusted.public_jwk.to_dict()])
    client = JwksClient([trusted.issuer])
    verifier = live_verifier(client, trusted)
    hostile = provider(hostile_issuer)
    forged = forge(hostile, {"alg": "RS256", "kid": hostile.kid}, rsa_signer(hostile.private_key))
    with pytest.raises(KeyNotFoundError, match="is not trusted by this verifier"):
        verifier.identify(parse(forged.document))
    assert httpserver.log == []


def test_a_trusted_issuer_outside_the_client_allowlist_is_not_fetched(
    httpserver: HTTPServer,
) -> None:
    issuer = serve(httpserver, "", list)
    op = provider(issuer)
    verifier = live_verifier(JwksClient(["https://accounts.google.com"]), op)
    pkt, _ = op.pktoken()
    with pytest.raises(ConfigError, match="not in the allowed issuers"):
        verifier.identify(pkt)
    assert httpserver.log == []


# -- JWKS cache poisoning -----------------------------------------------------------------------


def test_one_issuers_jwks_never_satisfies_another(httpserver: HTTPServer) -> None:
    """Issuers A and B on one server: B's token signed with A's key, under A's kid."""
    a = provider(base(httpserver) + "/a", kid="shared-kid")
    b = provider(base(httpserver) + "/b", kid="b-key")
    serve(httpserver, "/a", lambda: [a.public_jwk.to_dict()])
    serve(httpserver, "/b", lambda: [b.public_jwk.to_dict()])
    client = JwksClient([a.issuer, b.issuer])
    verifier = live_verifier(client, a, b)
    verifier.identify(a.pktoken()[0])  # A's keys are cached now
    forged = forge(
        a, {"alg": "RS256", "kid": "shared-kid", "typ": "JWT"}, rsa_signer(a.private_key),
        iss=b.issuer,
    )  # fmt: skip
    with pytest.raises(KeyNotFoundError, match="no key with kid 'shared-kid'"):
        verifier.identify(parse(forged.document))
    assert count(httpserver, "/b/jwks") == 1


def test_a_second_response_cannot_replace_cached_keys_before_ttl(
    httpserver: HTTPServer, fake_clock: FakeClock
) -> None:
    """After the first fetch the server switches to an attacker key under the same kid."""
    genuine = provider(base(httpserver))
    attacker = MiniOP(issuer=genuine.issuer, kid=genuine.kid, private_key=rsa_key(fresh=True))
    published = [genuine.public_jwk.to_dict()]
    serve(httpserver, "", lambda: list(published))
    client = JwksClient([genuine.issuer], ttl=300, min_refresh_interval=30, clock=fake_clock)
    verifier = live_verifier(client, genuine)
    verifier.identify(genuine.pktoken()[0])
    published[:] = [attacker.public_jwk.to_dict()]
    fake_clock.advance(60)  # past the refresh interval, within the TTL
    forged, _ = attacker.pktoken()
    with pytest.raises(SignatureError, match="RS256 signature does not verify"):
        verifier.identify(forged)
    assert count(httpserver, "/jwks") == 1  # a known kid never triggers a refetch
    stranger = forge(
        attacker, {"alg": "RS256", "kid": "new", "typ": "JWT"}, rsa_signer(attacker.private_key)
    )
    fake_clock.advance(1)
    verifier.identify(genuine.pktoken()[0])  # still the genuine key
    with pytest.raises(KeyNotFoundError):
        verifier.identify(parse(stranger.document))
    # An unknown kid may refresh once per interval; the refreshed set is then the provider's.
    assert count(httpserver, "/jwks") == 2


def test_jwks_with_private_key_material_is_refused(httpserver: HTTPServer) -> None:
    op = provider(base(httpserver))
    private = op.private_key.private_numbers()
    leaked = {**op.public_jwk.to_dict(), "d": _b64int(private.d), "p": _b64int(private.p)}
    serve(httpserver, "", lambda: [leaked])
    with pytest.raises(FormatError, match="contains private key members \\['d', 'p'\\]"):
        JwksClient([op.issuer]).keys(op.issuer)


def _b64int(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def test_jwks_with_too_many_keys_is_refused(httpserver: HTTPServer) -> None:
    op = provider(base(httpserver))
    serve(httpserver, "", lambda: [{**op.public_jwk.to_dict(), "kid": str(i)} for i in range(101)])
    with pytest.raises(FormatError, match="101 keys is more than the 100 allowed"):
        JwksClient([op.issuer]).keys(op.issuer)


# -- refresh storms --------------------------------------------------------------------------------


def test_unknown_kid_storm_fetches_at_most_once_per_interval(
    httpserver: HTTPServer, fake_clock: FakeClock
) -> None:
    op = provider(base(httpserver))
    serve(httpserver, "", lambda: [op.public_jwk.to_dict()])
    client = JwksClient([op.issuer], ttl=3600, min_refresh_interval=30, clock=fake_clock)
    client.keys(op.issuer)
    fake_clock.advance(31)
    for _ in range(500):
        with pytest.raises(KeyNotFoundError):
            client.find_key(op.issuer, kid=secrets.token_hex(8))
    assert count(httpserver, "/jwks") == 2  # the first fetch and one refresh
    for _ in range(10):  # ten more intervals of attack: at most one refresh each
        fake_clock.advance(30)
        for _ in range(50):
            with pytest.raises(KeyNotFoundError):
                client.find_key(op.issuer, kid=None, jkt=secrets.token_urlsafe(32))
    assert count(httpserver, "/jwks") <= 12
    assert count(httpserver, "/.well-known/openid-configuration") == 1


def test_storm_of_forged_tokens_through_the_verifier(
    httpserver: HTTPServer, fake_clock: FakeClock
) -> None:
    """Key lookup precedes signature checks, so forging costs nothing: the rate limit holds,
    from many threads at once."""
    op = provider(base(httpserver))
    serve(httpserver, "", lambda: [op.public_jwk.to_dict()])
    client = JwksClient([op.issuer], min_refresh_interval=30, clock=fake_clock)
    verifier = live_verifier(client, op)
    verifier.identify(op.pktoken()[0])
    fake_clock.advance(31)
    header = {"alg": "RS256", "kid": "x"}
    forged = [
        parse(forge(op, {**header, "kid": secrets.token_hex(6)}, lambda _: bytes(256)).document)
        for _ in range(40)
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def attack() -> None:
        barrier.wait()
        for pkt in forged:
            try:
                verifier.identify(pkt)
            except KeyNotFoundError:
                continue
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=attack) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert count(httpserver, "/jwks") == 2
