"""Attacks from a registry: steering opkey (SSRF, credential and token forwarding), holding it
(trickled answers, Retry-After), exhausting it (layers, tag pages) and lying on its terminal.

The hostile registries are real HTTP servers on loopback: pytest-httpserver, played as a
remote registry through :func:`~tests.security.sec_registry.routed_client`, and raw sockets of
the test's own (:class:`~tests.security.sec_registry.SlowServer`). Every bound is asserted with
its value: requests counted at the server, seconds measured, bytes traced.
"""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey.cli import main
from opkey.digest import Digest
from opkey.errors import (
    DeadlineError,
    NetworkError,
    ProviderError,
    RegistryError,
    SignatureError,
)
from opkey.http import Deadline, RequestsTransport
from opkey.images import verify_image
from opkey.jwks.client import JwksClient
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import PinnedKeys
from opkey.policy.claims import UnsafeNoPolicy
from opkey.policy.signoff import Requirement
from opkey.providers.base import check_token_response
from opkey.registry import Credentials, ImageReference
from opkey.registry.client import MAX_TAG_BYTES, MAX_TAG_PAGES
from opkey.registry.retry import parse_retry_after
from opkey.registry.signatures import (
    MAX_SIGNATURE_BYTES,
    MAX_SIGNATURE_LAYERS,
    signature_layers,
    signature_tag,
)
from opkey.remote_text import printable
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.helpers import MiniOP
from tests.security.sec_registry import (
    PUBLIC,
    PUBLIC2,
    SlowServer,
    StaticServer,
    elapsed,
    hits,
    oci_manifest,
    routed_client,
)

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
IMAGE = oci_manifest([])
IMAGE_DIGEST = Digest.of_bytes(IMAGE)
SIG_TAG = signature_tag(IMAGE_DIGEST)
CREDENTIALS = Credentials("ci", "s3cret")
#: What a terminal would draw: erase the line, then a green "Verified" line of the attacker's.
FAKE_VERIFIED = "\x1b[2K\r\x1b[32mVerified: release-bot\x1b[0m\nopkey: \u202eok"


def remote(name: str = "team/app:v1", host: str = PUBLIC) -> ImageReference:
    return ImageReference.parse(f"{host}/{name}")


def challenge(server: HTTPServer, realm: str, path: str = "/v2/team/app/manifests/v1") -> None:
    """The registry answers ``path`` with 401 and a bearer challenge naming ``realm``, and
    with the manifest once a bearer token comes back."""

    def handler(request: Request) -> Response:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return Response(
                IMAGE, 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
            )
        return Response(b"", 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})

    server.expect_request(path).respond_with_handler(handler)


def token_service(server: HTTPServer, path: str, seen: list[str | None], status: int = 200) -> None:
    def handler(request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        if status != 200:
            return Response(json.dumps({"errors": [{"code": "DENIED"}]}), status)
        return Response(json.dumps({"token": "local-service-token"}), 200)

    server.expect_request(path).respond_with_handler(handler)


def verifier() -> Verifier:
    op = MiniOP()
    return Verifier(Trust([TrustedIssuer(op.config(), [PinnedKeys({op.issuer: KeySet(())})])]))


# -- A. a registry cannot steer opkey ------------------------------------------------------------


@pytest.mark.parametrize(
    ("realm", "message"),
    [
        ("http://127.0.0.1:{port}/token", "loopback"),
        ("http://localhost:{port}/token", "loopback"),
        ("https://[::1]:{port}/token", "loopback"),
        ("https://127.0.0.2:{port}/token", "loopback"),
        ("https://10.0.0.5/token", "internal address"),
        ("https://169.254.169.254/latest/meta-data/", "internal address"),
        ("https://[fd00:ec2::254]/token", "internal address"),
        ("https://100.100.100.200/token", "internal address"),
    ],
)
def test_a_remote_registry_cannot_name_a_loopback_or_internal_token_realm(
    httpserver: HTTPServer, realm: str, message: str
) -> None:
    """The realm is fetched with the registry's credentials and its token is then sent to the
    registry: a loopback realm would let a remote registry query (and read the answers of)
    services on the verifier's own host."""
    url = realm.format(port=httpserver.port)
    challenge(httpserver, url)
    seen: list[str | None] = []
    token_service(httpserver, "/token", seen)
    client = routed_client(httpserver, credentials={PUBLIC: CREDENTIALS})
    with pytest.raises(NetworkError, match=message):
        client.resolve(remote())
    assert seen == []  # the loopback service was never asked, so no token could be forwarded


def test_a_loopback_registry_may_use_a_loopback_realm(httpserver: HTTPServer) -> None:
    """Local development: a registry on loopback with its token service on loopback."""
    challenge(httpserver, httpserver.url_for("/token"))
    seen: list[str | None] = []
    token_service(httpserver, "/token", seen)
    host = f"127.0.0.1:{httpserver.port}"
    client = routed_client(httpserver, credentials={host: CREDENTIALS})
    assert client.resolve(remote(host=host)).digest == IMAGE_DIGEST
    assert seen == [CREDENTIALS.basic_header()]


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://127.0.0.1:{port}/admin", "loopback"),
        ("https://localhost:{port}/admin", "loopback"),
        ("https://169.254.169.254/latest/meta-data/iam/", "internal address"),
        ("https://192.168.1.1/", "internal address"),
        ("http://storage.example.com/blob", "plain http"),
    ],
)
def test_a_remote_registry_cannot_redirect_a_blob_to_loopback_or_internal_addresses(
    httpserver: HTTPServer, location: str, message: str
) -> None:
    digest = Digest.of_bytes(b"payload")
    target = location.format(port=httpserver.port)
    httpserver.expect_request(f"/v2/team/app/blobs/{digest}").respond_with_response(
        Response(b"", 307, {"Location": target})
    )
    httpserver.expect_request("/admin").respond_with_data(b"payload")
    client = routed_client(httpserver)
    with pytest.raises(NetworkError, match=message):
        client.get_blob(remote(), digest)
    assert hits(httpserver, "/admin") == 0


def test_registry_credentials_are_not_sent_to_a_token_service_on_another_origin(
    httpserver: HTTPServer,
) -> None:
    """Docker sends them to whatever realm the registry names; opkey only to the registry's
    own origin (or a host the user names): here PUBLIC2 gets an anonymous request."""
    challenge(httpserver, f"https://{PUBLIC2}/token")
    seen: list[str | None] = []
    token_service(httpserver, "/token", seen)
    client = routed_client(httpserver, credentials={PUBLIC: CREDENTIALS})
    assert client.resolve(remote()).digest == IMAGE_DIGEST  # anonymous token, public image
    assert seen == [None]


def test_a_withheld_credential_is_explained_when_the_token_service_refuses(
    httpserver: HTTPServer,
) -> None:
    challenge(httpserver, f"https://{PUBLIC2}/token")
    seen: list[str | None] = []
    token_service(httpserver, "/token", seen, status=401)
    client = routed_client(httpserver, credentials={PUBLIC: CREDENTIALS})
    with pytest.raises(RegistryError, match=rf"--registry-token-host {re.escape(PUBLIC2)}"):
        client.resolve(remote())
    assert seen == [None]


def test_a_token_host_the_user_names_receives_the_credentials(httpserver: HTTPServer) -> None:
    challenge(httpserver, f"https://{PUBLIC2}/token")
    seen: list[str | None] = []
    token_service(httpserver, "/token", seen)
    client = routed_client(
        httpserver, credentials={PUBLIC: CREDENTIALS}, token_hosts={PUBLIC: [PUBLIC2]}
    )
    client.resolve(remote())
    assert seen == [CREDENTIALS.basic_header()]


def test_the_same_origin_realm_receives_the_credentials(httpserver: HTTPServer) -> None:
    challenge(httpserver, f"https://{PUBLIC}/token")
    seen: list[str | None] = []
    token_service(httpserver, "/token", seen)
    client = routed_client(httpserver, credentials={PUBLIC: CREDENTIALS})
    client.resolve(remote())
    assert seen == [CREDENTIALS.basic_header()]


def test_a_token_from_one_registry_is_never_sent_to_another(httpserver: HTTPServer) -> None:
    """Tokens are kept per registry host: PUBLIC's token is not offered to PUBLIC2."""
    challenge(httpserver, f"https://{PUBLIC}/token")
    token_service(httpserver, "/token", [])
    offered: list[str | None] = []

    def other(request: Request) -> Response:
        offered.append(request.headers.get("Authorization"))
        return Response(b"", 404)

    httpserver.expect_request("/v2/other/app/manifests/v1").respond_with_handler(other)
    client = routed_client(httpserver)
    client.resolve(remote())
    assert client.find_manifest(remote("other/app:v1", host=PUBLIC2)) is None
    assert offered == [None]


# -- B. time is bounded -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_trickled_answer_ends_at_the_whole_request_timeout(where: str) -> None:
    """One byte every 0.1 s never trips a per-read timeout; the request still ends at 1 s."""
    if where == "headers":
        server = SlowServer(interval=0.1)
    else:
        server = SlowServer(
            head=b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
            answer=b"x" * 100_000,
            interval=0.1,
        )
    with server, elapsed() as took, pytest.raises(NetworkError, match=r"timed out after 1s"):
        RequestsTransport().request("GET", f"http://{server.host}/", timeout=1.0)
    assert 0.9 < took() < 2.5


def test_trickled_discovery_is_bounded_by_the_jwks_timeout() -> None:
    with SlowServer(interval=0.1) as server, elapsed() as took:
        issuer = f"http://{server.host}"
        with pytest.raises(NetworkError, match=r"timed out after 1s"):
            JwksClient([issuer], timeout=1.0).keys(issuer)
    assert took() < 2.5


def test_a_trickling_registry_is_bounded_by_the_operation_deadline() -> None:
    """Six attempts of 10 s each would take a minute; the operation's 2 s deadline ends it."""
    with SlowServer(interval=0.1) as server, elapsed() as took:
        client = routed_client(
            HTTPServer(), transport=RequestsTransport(), deadline=Deadline.after(2.0)
        )
        with pytest.raises(DeadlineError, match=r"the operation's 2s deadline passed"):
            client.resolve(remote(host=server.host))
    assert 1.9 < took() < 3.5


def test_retry_after_never_waits_beyond_the_deadline(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        b"", 429, {"Retry-After": "30"}
    )
    client = routed_client(httpserver, deadline=Deadline.after(5.0))
    with elapsed() as took, pytest.raises(DeadlineError, match=r"retry after 30s, but only"):
        client.resolve(remote())
    assert took() < 1.0
    assert hits(httpserver, "/v2/team/app/manifests/v1") == 1


def _signature_registry(
    server: HTTPServer, payloads: list[bytes], blob: Callable[[Request, bytes], Response] | None
) -> list[str]:
    """The image, its .sig with one layer per payload, and the blobs; returns the blob paths."""
    layers = [
        {"mediaType": SIMPLESIGNING, "size": len(p), "digest": str(Digest.of_bytes(p))}
        for p in payloads
    ]
    sig = oci_manifest(layers)
    manifest_type = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    server.expect_request("/v2/team/app/manifests/v1").respond_with_data(IMAGE, 200, manifest_type)
    server.expect_request(f"/v2/team/app/manifests/{SIG_TAG}").respond_with_data(
        sig, 200, manifest_type
    )
    by_digest = {str(Digest.of_bytes(p)): p for p in payloads}

    def serve_blob(request: Request) -> Response:
        payload = by_digest[request.path.rsplit("/", 1)[1]]
        return blob(request, payload) if blob else Response(payload, 200)

    server.expect_request(
        re.compile(r"/v2/team/app/blobs/sha256:[0-9a-f]{64}")
    ).respond_with_handler(serve_blob)
    return [f"/v2/team/app/blobs/{d}" for d in by_digest]


def test_one_deadline_bounds_every_blob_of_a_verification(httpserver: HTTPServer) -> None:
    """Each blob first answers 503 with Retry-After: 1 and then succeeds: with a budget per
    blob, twenty layers took twenty seconds or more; one 3 s deadline ends the verification."""
    asked: set[str] = set()

    def slow_once(request: Request, payload: bytes) -> Response:
        if request.path not in asked:
            asked.add(request.path)
            return Response(b"", 503, {"Retry-After": "1"})
        return Response(payload, 200)

    payloads = [f"payload {i}".encode() for i in range(20)]
    _signature_registry(httpserver, payloads, slow_once)
    client = routed_client(httpserver)
    with elapsed() as took, pytest.raises(DeadlineError, match="deadline"):
        verify_image(
            client,
            remote(),
            verifier(),
            Requirement.of(UnsafeNoPolicy()),
            deadline=Deadline.after(3.0),
        )
    assert took() < 4.0
    assert len(asked) <= 4


def test_cli_timeout_bounds_a_verification(capsys: pytest.CaptureFixture[str]) -> None:
    with SlowServer(interval=0.1) as server, elapsed() as took:
        code = main(
            ["verify", f"{server.host}/team/app:v1", "--github-repository", "o/r", "--timeout", "2"]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert "the operation's 2s deadline passed" in err
    assert "--timeout" in err
    assert took() < 3.5


# -- C. memory is bounded -----------------------------------------------------------------------


def _static_signatures(payloads: list[bytes]) -> tuple[dict[str, Any], list[str]]:
    layers = [
        {"mediaType": SIMPLESIGNING, "size": len(p), "digest": str(Digest.of_bytes(p))}
        for p in payloads
    ]
    manifest_type = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    routes: dict[str, Any] = {
        "/v2/team/app/manifests/v1": (200, manifest_type, IMAGE),
        f"/v2/team/app/manifests/{SIG_TAG}": (200, manifest_type, oci_manifest(layers)),
    }
    blobs = [f"/v2/team/app/blobs/{Digest.of_bytes(p)}" for p in payloads]
    routes.update({path: (200, {}, p) for path, p in zip(blobs, payloads, strict=True)})
    return routes, blobs


def test_only_the_first_256_signature_layers_are_considered() -> None:
    payloads = [f"payload {i}".encode() for i in range(300)]
    routes, blobs = _static_signatures(payloads)
    with StaticServer(routes) as server:
        client = routed_client(HTTPServer(), transport=RequestsTransport())
        with pytest.raises(SignatureError, match=r"44 more signature layers were not considered"):
            verify_image(
                client, remote(host=server.host), verifier(), Requirement.of(UnsafeNoPolicy())
            )
    assert MAX_SIGNATURE_LAYERS == 256
    assert [server.counts.get(path, 0) for path in blobs] == [1] * 256 + [0] * 44


def test_signature_layers_are_verified_one_at_a_time() -> None:
    """60 distinct payloads of 200 KB (12 MB): the peak of memory traced while verifying
    stays far below what keeping them would take."""
    payloads = [bytes([i]) * 200_000 for i in range(60)]
    routes, blobs = _static_signatures(payloads)
    with StaticServer(routes) as server:
        client = routed_client(HTTPServer(), transport=RequestsTransport())
        client.resolve(remote(host=server.host))  # connection, imports and caches warm
        tracemalloc.start()
        try:
            with pytest.raises(
                SignatureError,
                match=r"has no opkey signatures: its 60 signatures carry no PK token",
            ):
                verify_image(
                    client, remote(host=server.host), verifier(), Requirement.of(UnsafeNoPolicy())
                )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert [server.counts.get(path, 0) for path in blobs] == [1] * 60
    assert peak < 3 * 1024 * 1024


def test_signature_payloads_are_bounded_in_total(httpserver: HTTPServer) -> None:
    payloads = [bytes([i]) * (1024 * 1024) for i in range(20)]
    paths = _signature_registry(httpserver, payloads, None)
    layers = signature_layers(routed_client(httpserver), remote().with_digest(IMAGE_DIGEST))
    with pytest.raises(RegistryError, match=rf"more than {MAX_SIGNATURE_BYTES} bytes in all"):
        for _ in layers:
            pass
    assert sum(1 for p in paths if hits(httpserver, p)) == 16


def _tag_pages(server: HTTPServer, page: Callable[[int], list[str]], link: bool = True) -> None:
    def handler(request: Request) -> Response:
        number = int(request.args.get("last", "0"))
        headers = {"Link": f'</v2/team/app/tags/list?last={number + 1}>; rel="next"'}
        return Response(json.dumps({"tags": page(number)}), 200, headers if link else {})

    server.expect_request("/v2/team/app/tags/list").respond_with_handler(handler)


def test_endless_empty_tag_pages_stop_at_the_page_bound(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is 1,000 pages; the test lowers it to 50 to stay fast, and checks both."""
    assert MAX_TAG_PAGES == 1000
    monkeypatch.setattr("opkey.registry.client.MAX_TAG_PAGES", 50)
    _tag_pages(httpserver, lambda n: [])
    with pytest.raises(RegistryError, match=r"more than 50 pages"):
        routed_client(httpserver).list_tags(remote())
    assert hits(httpserver, "/v2/team/app/tags/list") == 50


def test_a_tag_page_linking_to_itself_stops_at_once(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        link = '</v2/team/app/tags/list?n=1000>; rel="next"'
        return Response(json.dumps({"tags": ["a"]}), 200, {"Link": link})

    httpserver.expect_request("/v2/team/app/tags/list").respond_with_handler(handler)
    with pytest.raises(RegistryError, match="names a page already read"):
        routed_client(httpserver).list_tags(remote())
    assert hits(httpserver, "/v2/team/app/tags/list") == 1


def test_huge_tag_names_are_refused(httpserver: HTTPServer) -> None:
    _tag_pages(httpserver, lambda n: ["v1", "x" * 100_000])
    with pytest.raises(RegistryError, match="is not a valid tag"):
        routed_client(httpserver).list_tags(remote())


def test_tag_pages_are_bounded_in_total_bytes(httpserver: HTTPServer) -> None:
    """Pages padded with 3.5 MiB of JSON whitespace, each within the 4 MiB page limit and
    with one tag each: the pages, not the tags, are what costs."""

    def handler(request: Request) -> Response:
        number = int(request.args.get("last", "0"))
        body = '{"tags":["t' + str(number) + '"]' + " " * 3_500_000 + "}"
        link = f'</v2/team/app/tags/list?last={number + 1}>; rel="next"'
        return Response(body, 200, {"Link": link})

    httpserver.expect_request("/v2/team/app/tags/list").respond_with_handler(handler)
    with pytest.raises(RegistryError, match=rf"more than {MAX_TAG_BYTES} bytes in all its pages"):
        routed_client(httpserver).list_tags(remote())
    assert hits(httpserver, "/v2/team/app/tags/list") == 5


# -- D. what is printed cannot lie --------------------------------------------------------------


def _clean(text: str) -> None:
    assert not any(not c.isprintable() for c in text), repr(text)


def test_registry_error_text_is_made_printable(httpserver: HTTPServer) -> None:
    body = json.dumps({"errors": [{"code": "DENIED\x1b[0m", "message": FAKE_VERIFIED}]})
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(body, 403)
    with pytest.raises(RegistryError) as caught:
        routed_client(httpserver).resolve(remote())
    _clean(caught.value.message)
    assert "\\x1b[32mVerified: release-bot\\x1b[0m\\x0aopkey: \\u202eok" in caught.value.message


def test_the_cli_never_prints_a_registrys_escape_sequences(
    httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps({"errors": [{"code": "UNKNOWN", "message": FAKE_VERIFIED}]})
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(body, 400)
    host = f"127.0.0.1:{httpserver.port}"
    code = main(["verify", f"{host}/team/app:v1", "--github-repository", "o/r"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    _clean(captured.err.rstrip("\n"))
    assert "Verified" not in captured.err.split("\\x1b[32m")[0]


def test_token_service_error_text_is_made_printable(httpserver: HTTPServer) -> None:
    challenge(httpserver, f"https://{PUBLIC}/token")

    def token(request: Request) -> Response:
        return Response(json.dumps({"errors": [{"code": "X", "message": FAKE_VERIFIED}]}), 500)

    httpserver.expect_request("/token").respond_with_handler(token)
    with pytest.raises(RegistryError) as caught:
        routed_client(httpserver).resolve(remote())
    _clean(caught.value.message)
    assert "\\x1b[32mVerified" in caught.value.message


def test_provider_error_text_is_made_printable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json(
        {"error": "invalid_grant\x1b]0;owned\x07", "error_description": FAKE_VERIFIED}, status=400
    )
    response = RequestsTransport().request("POST", httpserver.url_for("/token"), data=b"")
    with pytest.raises(ProviderError) as caught:
        check_token_response(response, what="token request")
    _clean(caught.value.message)
    assert "invalid_grant\\x1b]0;owned\\x07" in caught.value.message


def test_discovery_error_text_is_made_printable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/.well-known/openid-configuration").respond_with_data(
        FAKE_VERIFIED, 500
    )
    issuer = httpserver.url_for("/").rstrip("/")
    with pytest.raises(NetworkError) as caught:
        JwksClient([issuer]).keys(issuer)
    _clean(caught.value.message)
    assert "\\x1b[32mVerified" in caught.value.message


def test_a_signature_manifests_media_types_are_made_printable(httpserver: HTTPServer) -> None:
    payload = b"payload"
    layer = {
        "mediaType": "text/\x1b[32mVerified",
        "size": 7,
        "digest": str(Digest.of_bytes(payload)),
    }
    manifest_type = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        IMAGE, 200, manifest_type
    )
    httpserver.expect_request(f"/v2/team/app/manifests/{SIG_TAG}").respond_with_data(
        oci_manifest([layer]), 200, manifest_type
    )
    with pytest.raises(RegistryError, match="does not hold a cosign signature manifest") as caught:
        verify_image(
            routed_client(httpserver), remote(), verifier(), Requirement.of(UnsafeNoPolicy())
        )
    _clean(caught.value.message)


def test_printable_escapes_every_class_of_invisible_text() -> None:
    for char in "\x00\x07\x08\t\n\r\x1b\x7f\x85\x9b\u200b\u200e\u2028\u2029\u202e\u2066\ufeff":
        assert printable(f"a{char}b").startswith("a\\"), repr(char)
    assert printable("ordinary text: é, 漢字, emoji 🙂") == "ordinary text: é, 漢字, emoji 🙂"
    assert printable("x" * 300) == "x" * 200 + "…"
    assert printable(b"\xff\x1b") == "\ufffd\\x1b"


# -- F. found by the registry fuzz targets (fuzz/RESULTS.md), pinned --------------------------


@pytest.mark.parametrize(
    "realm", ["https://[]registry.example/auth", "https://[::1/token", "https://[x]/token"]
)
def test_a_realm_with_a_broken_bracketed_host_is_a_network_error(
    httpserver: HTTPServer, realm: str
) -> None:
    """``registry-challenge``: urlsplit raised ValueError for such realms, a traceback."""
    challenge(httpserver, realm)
    with pytest.raises(NetworkError, match="invalid URL"):
        routed_client(httpserver).resolve(remote())


def test_a_redirect_to_a_broken_bracketed_host_is_a_network_error() -> None:
    """requests parses a redirect's Location even when it does not follow it, and urllib
    raised ValueError out of RequestsTransport: for blobs, discovery and JWKS alike."""
    digest = Digest.of_bytes(b"payload")
    broken = {"Location": "https://[]cdn.example/blob"}
    routes = {
        f"/v2/team/app/blobs/{digest}": (302, broken, b""),
        "/.well-known/openid-configuration": (302, broken, b""),
    }
    with StaticServer(routes) as server:
        client = routed_client(HTTPServer(), transport=RequestsTransport())
        with pytest.raises(NetworkError, match="unreadable answer"):
            client.get_blob(remote(host=server.host), digest)
        issuer = f"http://{server.host}"
        with pytest.raises(NetworkError, match="unreadable answer"):
            JwksClient([issuer]).keys(issuer)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("9\u00b20", None),  # "²" is a digit to str.isdigit, int() refuses it
        ("\u0663", None),  # Arabic-Indic 3: a digit, not an HTTP delay-seconds
        ("9" * 5000, 365 * 86_400.0),  # beyond int()'s 4300-digit limit
        ("99999999999999999999", 365 * 86_400.0),
        ("Wed, 21 Oct 99999999999999999999 07:28:00 GMT", None),  # OverflowError in datetime
        ("120", 120.0),
    ],
)
def test_retry_after_values_found_by_fuzzing(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_an_empty_token_is_not_a_token(httpserver: HTTPServer) -> None:
    """``registry-token``: ``{"token": ""}`` was accepted and sent as ``Bearer ``."""
    challenge(httpserver, f"https://{PUBLIC}/token")
    httpserver.expect_request("/token").respond_with_json({"token": "", "access_token": ""})
    with pytest.raises(RegistryError, match="no usable token"):
        routed_client(httpserver).resolve(remote())
