"""Authentication: challenges, docker config.json, and both schemes against the real registry
(htpasswd basic auth; token auth with a token service the registry trusts)."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey.errors import ConfigError, RegistryError
from opkey.registry.auth import (
    Credentials,
    DockerCredentialStore,
    normalize_registry_host,
    parse_challenges,
)
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.sandbox.registry import LocalRegistry, TokenAuthConfig, seed_image

# bcrypt (cost 5) of "opkey-test-password", made once with libxcrypt; the registry only checks it.
HTPASSWD_USER = "ci"
HTPASSWD_PASSWORD = "opkey-test-password"
HTPASSWD_HASH = "$2b$05$e0c8xAWHK5lzgmVnOs2l4.qYLtLzjJLF96RA4IDBDOgvHT7kMLefK"


# ------------------------------------------------------------------------------ challenges


def test_parse_bearer_challenge_with_quoted_commas() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:samalba/my-app:pull,push",
    }


def test_parse_several_challenges_and_escapes() -> None:
    challenges = parse_challenges('Basic realm="a \\"b\\"", Bearer realm="x",error=invalid_token')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].params["realm"] == 'a "b"'
    assert challenges[1].params["error"] == "invalid_token"


def test_unterminated_challenge_is_an_error() -> None:
    with pytest.raises(RegistryError, match="unterminated"):
        parse_challenges('Bearer realm="x')


# --------------------------------------------------------------------------- docker config


def write_config(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return path


def test_docker_config_auth_entries(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"alice:pa:ss").decode()
    path = write_config(
        tmp_path,
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": encoded},
                "ghcr.io": {"username": "bob", "password": "tok"},
                "http://reg.lan:5000/v2/": {"auth": base64.b64encode(b"c:d").decode()},
            }
        },
    )
    store = DockerCredentialStore.load(path)
    assert store.lookup("docker.io") == Credentials("alice", "pa:ss")
    assert store.lookup("registry-1.docker.io") == Credentials("alice", "pa:ss")
    assert store.lookup("ghcr.io") == Credentials("bob", "tok")
    assert store.lookup("reg.lan:5000") == Credentials("c", "d")
    assert store.lookup("quay.io") is None
    assert "tok" not in repr(store.lookup("ghcr.io"))  # secrets stay out of logs


def test_docker_config_location_follows_docker(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert DockerCredentialStore.default_path(env) == tmp_path / "config.json"
    assert DockerCredentialStore.default_path({}) == Path.home() / ".docker" / "config.json"
    assert DockerCredentialStore.load(env=env).auths == {}  # missing file: no credentials


def test_helpers_are_read_and_identity_tokens_recorded_as_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Helpers are run (tests/security/test_sec_registry_credentials.py runs real ones); one
    that is not installed is named only once a lookup needed it."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker-credential-* programs at all
    path = write_config(
        tmp_path,
        {
            "auths": {"quay.io": {"identitytoken": "x"}, "ghcr.io": {"auth": "YTpi"}},
            "credHelpers": {"123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"},
            "credsStore": "desktop",
        },
    )
    store = DockerCredentialStore.load(path)
    assert "identitytoken" in (store.unsupported_source("quay.io") or "")
    ecr = "123.dkr.ecr.us-east-1.amazonaws.com"
    assert store.helper_for(ecr) == "ecr-login"
    assert store.helper_for("other.io") == "desktop"
    assert store.unsupported_source(ecr) is None  # not looked up yet
    assert store.lookup(ecr) is None
    assert "docker-credential-ecr-login, which is not installed" in (
        store.unsupported_source(ecr) or ""
    )
    assert store.lookup("ghcr.io") == Credentials("a", "b")  # the helper has none: auths
    assert store.unsupported_source("ghcr.io") is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"auths": []}, "'auths' must be an object"),
        ({"auths": {"x": {"auth": "!!!"}}}, "not base64"),
        ({"auths": {"x": {"auth": base64.b64encode(b"nocolon").decode()}}}, "user:password"),
        ({"credHelpers": "x"}, "'credHelpers'"),
    ],
)
def test_malformed_docker_config(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DockerCredentialStore.load(write_config(tmp_path, document))


def test_unparseable_docker_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        DockerCredentialStore.load(path)


def test_host_normalization() -> None:
    assert normalize_registry_host("https://index.docker.io/v1/") == "docker.io"
    assert normalize_registry_host("GHCR.io") == "ghcr.io"
    assert normalize_registry_host("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"


# ----------------------------------------------------------------- real registry: htpasswd


@pytest.fixture
def htpasswd_registry(
    registry_factory: Callable[..., LocalRegistry], tmp_path: Path
) -> LocalRegistry:
    path = tmp_path / "htpasswd"
    path.write_text(f"{HTPASSWD_USER}:{HTPASSWD_HASH}\n")
    return registry_factory(htpasswd=path)


@pytest.mark.registry
def test_basic_auth_against_the_real_registry(
    htpasswd_registry: LocalRegistry,
    registry_client_factory: Callable[..., RegistryClient],
    tmp_path: Path,
) -> None:
    ref = ImageReference.parse(f"{htpasswd_registry.host}/private/app:v1")
    anonymous = registry_client_factory()
    with pytest.raises(RegistryError, match="requires credentials"):
        anonymous.find_manifest(ref)

    # Credentials from a docker config.json, as `docker login` writes them.
    auth = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
    config = write_config(tmp_path, {"auths": {htpasswd_registry.host: {"auth": auth}}})
    client = registry_client_factory(docker_config=DockerCredentialStore.load(config))
    pushed = seed_image(client, ref)
    assert client.resolve(ref) == pushed

    wrong = registry_client_factory(
        credentials={htpasswd_registry.host: Credentials(HTPASSWD_USER, "wrong")}
    )
    with pytest.raises(RegistryError, match="refused the credentials"):
        wrong.find_manifest(ref)


# --------------------------------------------------------------------- real registry: token


class TokenService:
    """A token service the registry trusts: ES256 JWTs with an x5c chain to the bundle."""

    def __init__(self, server: HTTPServer, directory: Path) -> None:
        self.issuer, self.service = "opkey-test-issuer", "opkey-test-registry"
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opkey test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = directory / "token-root.pem"
        self.bundle.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, Any]] = []
        self.realm = server.url_for("/token")
        server.expect_request("/token").respond_with_handler(self.handle)

    @property
    def config(self) -> TokenAuthConfig:
        return TokenAuthConfig(self.realm, self.service, self.issuer, self.bundle)

    def handle(self, request: Request) -> Response:
        scopes = request.args.getlist("scope")
        expected = Credentials(HTPASSWD_USER, HTPASSWD_PASSWORD).basic_header()
        authenticated = request.headers.get("Authorization") == expected
        self.requests.append({"scopes": scopes, "authenticated": authenticated})
        access = []
        if authenticated:
            for scope in scopes:
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
        claims = {
            "iss": self.issuer,
            "sub": HTPASSWD_USER if authenticated else "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        token = jwt.encode(
            claims,
            self.key,
            algorithm="ES256",
            headers={"x5c": [base64.b64encode(der).decode()]},
        )
        body = json.dumps({"token": token, "expires_in": 300, "issued_at": "now"})
        return Response(body, 200, {"Content-Type": "application/json"})


@pytest.mark.registry
def test_token_auth_against_the_real_registry(
    registry_factory: Callable[..., LocalRegistry],
    registry_client_factory: Callable[..., RegistryClient],
    httpserver: HTTPServer,
    tmp_path: Path,
) -> None:
    service = TokenService(httpserver, tmp_path)
    registry = registry_factory(token=service.config)
    ref = ImageReference.parse(f"{registry.host}/private/app:v1")

    anonymous = registry_client_factory()
    with pytest.raises(RegistryError, match="requires credentials"):
        anonymous.find_manifest(ref)

    client = registry_client_factory(
        credentials={registry.host: Credentials(HTPASSWD_USER, HTPASSWD_PASSWORD)}
    )
    pushed = seed_image(client, ref)
    issued = len(service.requests)
    assert client.resolve(ref) == pushed
    assert client.list_tags(ref) == ["v1"]
    # pull and push scopes each asked for once: later requests reuse the cached tokens
    scopes = [tuple(r["scopes"]) for r in service.requests if r["authenticated"]]
    assert ("repository:private/app:pull,push",) in scopes
    assert len(service.requests) - issued <= 1
