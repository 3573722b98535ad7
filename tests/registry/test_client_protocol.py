"""The registry client against a stand-in registry (pytest-httpserver): what a real registry
will not do on demand (tampered content, oversize answers, 5xx/429, odd redirects).

Every test counts the requests the stand-in received, so "retried" and "not retried" are
measured, not assumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey.digest import Digest
from opkey.errors import NetworkError, RegistryError
from opkey.http import HttpResponse
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import MAX_MANIFEST_BYTES
from opkey.registry.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)
from opkey.registry.reference import ImageReference
from opkey.registry.retry import RetryPolicy, parse_retry_after
from opkey.sandbox.registry import free_port

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": str(Digest.of_bytes(b"{}"))},
        "layers": [],
    },
    separators=(",", ":"),
).encode()
MANIFEST_DIGEST = Digest.of_bytes(MANIFEST)


class Sleeps(list[float]):
    """Records the waits the client asks for instead of waiting, and keeps a matching clock."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    def clock(self) -> float:
        return sum(self)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(
    registry_client_factory: Callable[..., RegistryClient], sleeps: Sleeps
) -> RegistryClient:
    return registry_client_factory(
        sleep=sleeps,
        clock=sleeps.clock,
        retry=RetryPolicy(max_attempts=4, base_delay=0.01, deadline=30),
    )


@pytest.fixture
def repo(httpserver: HTTPServer) -> ImageReference:
    return ImageReference.parse(f"{httpserver.host}:{httpserver.port}/team/app:v1")


def manifest_response(body: bytes = MANIFEST, headers: Mapping[str, str] | None = None) -> Response:
    merged = {"Docker-Content-Digest": str(Digest.of_bytes(body)), "Content-Type": OCI_MANIFEST}
    merged.update(headers or {})
    return Response(body, 200, merged)


def count(httpserver: HTTPServer) -> int:
    return len(httpserver.log)


# ---------------------------------------------------------------------------------- digests


def test_tag_resolves_to_the_digest_of_the_bytes(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("Accept", ""))
        return manifest_response()

    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_handler(handler)
    resolved = client.resolve(repo)
    assert resolved.digest == MANIFEST_DIGEST
    assert resolved.tag is None
    accept = seen[0]
    for media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        assert media_type in accept


def test_digest_header_that_disagrees_with_the_bytes_is_rejected(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    lying = manifest_response(headers={"Docker-Content-Digest": "sha256:" + "0" * 64})
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_response(lying)
    with pytest.raises(RegistryError, match="Docker-Content-Digest says"):
        client.resolve(repo)


def test_manifest_fetched_by_digest_must_hash_to_it(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    other = MANIFEST.replace(b'"layers":[]', b'"layers":[ ]')
    wanted = repo.with_digest(MANIFEST_DIGEST)
    # A registry that serves tampered content and even a matching-looking header.
    httpserver.expect_request(f"/v2/team/app/manifests/{MANIFEST_DIGEST}").respond_with_response(
        manifest_response(other, {"Docker-Content-Digest": str(MANIFEST_DIGEST)})
    )
    with pytest.raises(RegistryError, match="not the sha256:"):
        client.get_manifest(wanted)


def test_unsupported_manifest_content_is_a_registry_error(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    body = b"<html>login</html>"
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_response(
        manifest_response(body, {"Content-Type": "text/html"})
    )
    with pytest.raises(RegistryError, match="unusable manifest"):
        client.get_manifest(repo)


def test_tampered_blob_is_rejected(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    digest = Digest.of_bytes(b"payload")
    httpserver.expect_request(f"/v2/team/app/blobs/{digest}").respond_with_data(b"PAYLOAD")
    with pytest.raises(RegistryError, match="digest is sha256:"):
        client.get_blob(repo, digest)


def test_blob_round_trip_through_upload_protocol(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    stored: dict[str, bytes] = {}

    def head(request: Request) -> Response:
        digest = request.path.rsplit("/", 1)[1]
        return Response(b"", 200 if digest in stored else 404)

    def put(request: Request) -> Response:
        digest = request.args["digest"]
        data = request.get_data()
        assert str(Digest.of_bytes(data)) == digest
        stored[digest] = data
        return Response(b"", 201, {"Docker-Content-Digest": digest})

    httpserver.expect_request("/v2/team/app/blobs/uploads/", method="POST").respond_with_data(
        b"", 202, {"Location": "/v2/team/app/blobs/uploads/u1?_state=abc"}
    )
    httpserver.expect_request("/v2/team/app/blobs/uploads/u1", method="PUT").respond_with_handler(
        put
    )
    httpserver.expect_request(
        f"/v2/team/app/blobs/{Digest.of_bytes(b'data')}", method="HEAD"
    ).respond_with_handler(head)
    assert client.push_blob(repo, b"data") == Digest.of_bytes(b"data")
    assert stored == {str(Digest.of_bytes(b"data")): b"data"}
    before = count(httpserver)
    client.push_blob(repo, b"data")  # already there: one HEAD, no upload
    assert count(httpserver) == before + 1


def test_upload_location_on_another_origin_is_refused(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    httpserver.expect_request(f"/v2/team/app/blobs/{Digest.of_bytes(b'x')}").respond_with_data(
        b"", 404
    )
    httpserver.expect_request("/v2/team/app/blobs/uploads/").respond_with_data(
        b"", 202, {"Location": "http://127.0.0.2:1/steal"}
    )
    with pytest.raises(RegistryError, match="another origin"):
        client.push_blob(repo, b"x")


# ---------------------------------------------------------------------------------- sizes


def test_oversize_manifest_is_refused_without_retrying(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference, sleeps: Sleeps
) -> None:
    huge = b" " * (MAX_MANIFEST_BYTES + 10)
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(huge)
    with pytest.raises(RegistryError, match="manifest limit"):
        client.get_manifest(repo)
    assert count(httpserver) == 1
    assert sleeps == []


def test_blob_beyond_the_callers_limit_is_refused(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    data = b"x" * 1000
    httpserver.expect_request(f"/v2/team/app/blobs/{Digest.of_bytes(data)}").respond_with_data(data)
    with pytest.raises(RegistryError, match="999-byte limit"):
        client.get_blob(repo, Digest.of_bytes(data), max_bytes=999)
    assert client.get_blob(repo, Digest.of_bytes(data), max_bytes=1000) == data


def test_manifest_put_is_bounded_too(client: RegistryClient, repo: ImageReference) -> None:
    with pytest.raises(RegistryError, match="manifest limit"):
        client.put_manifest(repo, b" " * (MAX_MANIFEST_BYTES + 1), OCI_MANIFEST)


# -------------------------------------------------------------------------------- retries


def sequence(*responses: Response) -> Callable[[Request], Response]:
    """A handler answering ``responses`` in turn, then repeating the last one."""
    queue = list(responses)

    def handler(request: Request) -> Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


def test_5xx_is_retried_with_backoff(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_handler(
        sequence(Response(b"", 503), Response(b"", 502), manifest_response())
    )
    assert client.resolve(repo).digest == MANIFEST_DIGEST
    assert count(httpserver) == 3
    assert len(sleeps) == 2
    assert all(0 <= s <= 0.02 for s in sleeps)  # full jitter below base * 2**(n-1)


def test_429_waits_as_long_as_retry_after_says(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_handler(
        sequence(Response(b"", 429, {"Retry-After": "3"}), manifest_response())
    )
    client.resolve(repo)
    assert sleeps == [3.0]
    assert count(httpserver) == 2


def test_retry_after_beyond_the_allowed_wait_fails_at_once(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        b"", 429, {"Retry-After": "3600"}
    )
    with pytest.raises(RegistryError, match="retry after 3600s"):
        client.resolve(repo)
    assert count(httpserver) == 1
    assert sleeps == []


def test_deadline_bounds_the_whole_operation(
    httpserver: HTTPServer,
    registry_client_factory: Callable[..., RegistryClient],
    repo: ImageReference,
    sleeps: Sleeps,
) -> None:
    client = registry_client_factory(
        sleep=sleeps, clock=sleeps.clock, retry=RetryPolicy(max_attempts=10, deadline=5.0)
    )
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        b"", 503, {"Retry-After": "4"}
    )
    with pytest.raises(RegistryError, match="deadline"):
        client.resolve(repo)
    assert sleeps == [4.0]  # the second 4 s wait would pass the 5 s deadline
    assert count(httpserver) == 2


def test_persistent_5xx_gives_up_after_max_attempts(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_json(
        {"errors": [{"code": "UNAVAILABLE", "message": "maintenance"}]}, status=503
    )
    with pytest.raises(RegistryError, match=r"UNAVAILABLE: maintenance.*after 4 attempts"):
        client.resolve(repo)
    assert count(httpserver) == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize("status", [400, 403, 405, 501])
def test_client_errors_are_not_retried(
    httpserver: HTTPServer,
    client: RegistryClient,
    repo: ImageReference,
    sleeps: Sleeps,
    status: int,
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_json(
        {"errors": [{"code": "DENIED", "message": "no"}]}, status=status
    )
    with pytest.raises(RegistryError, match=f"HTTP {status}"):
        client.resolve(repo)
    assert count(httpserver) == 1
    assert sleeps == []


def test_404_means_absent_not_retry(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_json(
        {"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404
    )
    assert client.find_manifest(repo) is None
    with pytest.raises(RegistryError, match="not found"):
        client.get_manifest(repo)
    assert count(httpserver) == 2
    assert sleeps == []


def test_put_manifest_is_retried_on_5xx(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1", method="PUT").respond_with_handler(
        sequence(
            Response(b"", 500),
            Response(b"", 201, {"Docker-Content-Digest": str(MANIFEST_DIGEST)}),
        )
    )
    assert client.put_manifest(repo, MANIFEST, OCI_MANIFEST) == MANIFEST_DIGEST
    assert count(httpserver) == 2


def test_connection_failures_are_retried_then_reported(
    client: RegistryClient, sleeps: Sleeps
) -> None:
    ref = ImageReference.parse(f"127.0.0.1:{free_port()}/nobody/home:v1")
    with pytest.raises(NetworkError, match="after 4 attempts"):
        client.resolve(ref)
    assert len(sleeps) == 3


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# ---------------------------------------------------------------------------- URL rules


class RecordingTransport:
    """A Transport that records URLs and answers 404."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = 10.0,
        max_bytes: int = 1 << 20,
    ) -> HttpResponse:
        self.urls.append(url)
        return HttpResponse(404, {}, b"", url)


@pytest.mark.parametrize(
    ("reference", "insecure", "url"),
    [
        ("registry.example.com/a/b:1", (), "https://registry.example.com/v2/a/b/manifests/1"),
        ("alpine", (), "https://registry-1.docker.io/v2/library/alpine/manifests/latest"),
        ("127.0.0.1:5000/a:1", (), "http://127.0.0.1:5000/v2/a/manifests/1"),
        ("localhost:5000/a:1", (), "http://localhost:5000/v2/a/manifests/1"),
        ("reg.lan:5000/a:1", ("reg.lan:5000",), "http://reg.lan:5000/v2/a/manifests/1"),
        ("reg.lan:5000/a:1", ("other.lan",), "https://reg.lan:5000/v2/a/manifests/1"),
    ],
)
def test_tls_unless_loopback_or_named_insecure(
    registry_client_factory: Callable[..., RegistryClient],
    reference: str,
    insecure: tuple[str, ...],
    url: str,
) -> None:
    transport = RecordingTransport()
    client = registry_client_factory(transport=transport, insecure_registries=insecure)
    assert client.find_manifest(ImageReference.parse(reference)) is None
    assert transport.urls == [url]


@pytest.fixture
def storage_server() -> Iterator[HTTPServer]:
    """A second server on another origin (127.0.0.1 vs the default localhost)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_blob_redirect_is_followed_without_credentials(
    httpserver: HTTPServer,
    storage_server: HTTPServer,
    registry_client_factory: Callable[..., RegistryClient],
    repo: ImageReference,
) -> None:
    from opkey.registry.auth import Credentials

    data = b"signature payload"
    digest = Digest.of_bytes(data)
    httpserver.expect_request(f"/v2/team/app/blobs/{digest}").respond_with_handler(
        lambda request: (
            Response(b"", 401, {"WWW-Authenticate": 'Basic realm="r"'})
            if "Authorization" not in request.headers
            else Response(b"", 307, {"Location": storage_server.url_for("/blob?sig=1")})
        )
    )
    seen: list[str | None] = []

    def storage(request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        return Response(data, 200)

    storage_server.expect_request("/blob").respond_with_handler(storage)
    client = registry_client_factory(credentials={repo.registry: Credentials("u", "p")})
    assert client.get_blob(repo, digest) == data
    assert seen == [None]


def _bearer_registry(
    httpserver: HTTPServer, tokens: list[dict[str, Any]], *, service: str = "test-registry"
) -> None:
    """Registry endpoints that want ``Bearer <token-for-scope>``; a /token realm issuing them."""
    realm = httpserver.url_for("/token")

    def token(request: Request) -> Response:
        scopes = request.args.getlist("scope")
        tokens.append(
            {
                "scopes": scopes,
                "service": request.args.get("service"),
                "authorization": request.headers.get("Authorization"),
            }
        )
        return Response(
            json.dumps({"token": "tok:" + " ".join(scopes), "expires_in": 300}),
            200,
            {"Content-Type": "application/json"},
        )

    def manifests(request: Request) -> Response:
        scope = "repository:team/app:" + ("pull" if request.method == "GET" else "pull,push")
        if request.headers.get("Authorization") != f"Bearer tok:{scope}":
            challenge = f'Bearer realm="{realm}",service="{service}",scope="{scope}"'
            return Response(b"", 401, {"WWW-Authenticate": challenge})
        if request.method == "PUT":
            return Response(b"", 201, {"Docker-Content-Digest": str(MANIFEST_DIGEST)})
        return manifest_response()

    httpserver.expect_request("/token").respond_with_handler(token)
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_handler(manifests)


def test_bearer_challenge_flow_and_token_cache(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    tokens: list[dict[str, Any]] = []
    _bearer_registry(httpserver, tokens)
    assert client.resolve(repo).digest == MANIFEST_DIGEST
    assert tokens == [
        {"scopes": ["repository:team/app:pull"], "service": "test-registry", "authorization": None}
    ]
    before = count(httpserver)
    client.resolve(repo)
    assert len(tokens) == 1  # cached per scope
    assert count(httpserver) == before + 1  # and sent up front: no second challenge
    client.put_manifest(repo, MANIFEST, OCI_MANIFEST)
    assert [t["scopes"] for t in tokens] == [
        ["repository:team/app:pull"],
        ["repository:team/app:pull,push"],
    ]


def test_bearer_token_request_carries_the_users_credentials(
    httpserver: HTTPServer,
    registry_client_factory: Callable[..., RegistryClient],
    repo: ImageReference,
) -> None:
    from opkey.registry.auth import Credentials

    tokens: list[dict[str, Any]] = []
    _bearer_registry(httpserver, tokens)
    client = registry_client_factory(credentials={repo.registry: Credentials("ci", "s3cret")})
    client.resolve(repo)
    assert tokens[0]["authorization"] == Credentials("ci", "s3cret").basic_header()


def test_plain_http_token_realm_elsewhere_is_refused(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    challenge = 'Bearer realm="http://auth.example.com/token",service="x"'
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        b"", 401, {"WWW-Authenticate": challenge}
    )
    with pytest.raises(NetworkError, match="plain http"):
        client.resolve(repo)


def test_basic_challenge_without_credentials_says_how_to_fix_it(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        b"", 401, {"WWW-Authenticate": 'Basic realm="registry"'}
    )
    with pytest.raises(RegistryError, match="docker login"):
        client.resolve(repo)


def test_credential_helper_is_reported_as_unsupported(
    httpserver: HTTPServer,
    registry_client_factory: Callable[..., RegistryClient],
    repo: ImageReference,
) -> None:
    from opkey.registry.auth import DockerCredentialStore

    store = DockerCredentialStore(default_helper="desktop")
    client = registry_client_factory(docker_config=store)
    httpserver.expect_request("/v2/team/app/manifests/v1").respond_with_data(
        b"", 401, {"WWW-Authenticate": 'Basic realm="registry"'}
    )
    with pytest.raises(RegistryError, match="docker-credential-desktop"):
        client.resolve(repo)


def test_tag_list_follows_link_pagination(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    def tags(request: Request) -> Response:
        if request.args.get("last") == "b":
            return Response(json.dumps({"name": "team/app", "tags": ["c"]}), 200)
        link = '</v2/team/app/tags/list?last=b&n=2>; rel="next"'
        return Response(json.dumps({"name": "team/app", "tags": ["a", "b"]}), 200, {"Link": link})

    httpserver.expect_request("/v2/team/app/tags/list").respond_with_handler(tags)
    assert client.list_tags(repo) == ["a", "b", "c"]


def test_tag_list_link_to_another_host_is_refused(
    httpserver: HTTPServer, client: RegistryClient, repo: ImageReference
) -> None:
    httpserver.expect_request("/v2/team/app/tags/list").respond_with_data(
        json.dumps({"tags": ["a"]}), 200, {"Link": '<http://127.0.0.2/x>; rel="next"'}
    )
    with pytest.raises(RegistryError, match="another host"):
        client.list_tags(repo)
