"""Registry credentials and the ways to the registry: credential helpers (real programs on
PATH), credentials on standard input or in the environment, GITHUB_TOKEN in GitHub Actions, a
CONNECT proxy and a private CA, none of which may weaken where opkey connects.

Real servers: the distribution registry (htpasswd basic auth; TLS with a generated
certificate, reached through a small CONNECT proxy on loopback), and pytest-httpserver as a
registry elsewhere (``ghcr.io`` routed to it).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from opkey.cli import build_parser, main
from opkey.cli.registry_options import RegistryOptions
from opkey.errors import ConfigError, NetworkError, RegistryError
from opkey.http import ProxySettings, RequestsTransport
from opkey.registry import Credentials, DockerCredentialStore, ImageReference, RegistryClient
from opkey.registry.auth import (
    HELPER_MAX_OUTPUT,
    ambient_credentials,
    credentials_from_env,
    run_credential_helper,
)
from opkey.sandbox.registry import LocalRegistry, TokenAuthConfig, seed_image
from tests.helpers import RoutingTransport
from tests.registry.test_auth import HTPASSWD_HASH, HTPASSWD_PASSWORD, HTPASSWD_USER
from tests.security.sec_registry import (
    FAST_RETRY,
    ConnectProxy,
    TlsFiles,
    elapsed,
    helper_calls,
    tls_files,
    write_helper,
)

REGISTRY_NAME = "registry.opkey.test"


@pytest.fixture
def htpasswd_registry(
    registry_factory: Callable[..., LocalRegistry], tmp_path: Path
) -> LocalRegistry:
    path = tmp_path / "htpasswd"
    path.write_text(f"{HTPASSWD_USER}:{HTPASSWD_HASH}\n")
    return registry_factory(htpasswd=path)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH, for docker-credential-* programs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}:/usr/bin:/bin")
    return directory


def answering_helper(directory: Path, name: str, server: str, secret: str) -> None:
    write_helper(
        directory,
        name,
        f"if server == {server!r}:\n"
        f"    print(json.dumps({{'ServerURL': server, 'Username': {HTPASSWD_USER!r}, "
        f"'Secret': {secret!r}}}))\n"
        "else:\n"
        "    print('credentials not found in native keychain'); sys.exit(1)",
    )


def config(tmp_path: Path, document: dict[str, object]) -> DockerCredentialStore:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return DockerCredentialStore.load(path)


def client_with(store: DockerCredentialStore, **options: object) -> RegistryClient:
    return RegistryClient(docker_config=store, retry=FAST_RETRY, env={}, **options)  # type: ignore[arg-type]


# -- credential helpers --------------------------------------------------------------------------


@pytest.mark.registry
def test_the_credential_store_helper_logs_in_to_the_real_registry(
    htpasswd_registry: LocalRegistry, bin_dir: Path, tmp_path: Path
) -> None:
    answering_helper(bin_dir, "opkeytest", htpasswd_registry.host, HTPASSWD_PASSWORD)
    client = client_with(config(tmp_path, {"credsStore": "opkeytest"}))
    ref = ImageReference.parse(f"{htpasswd_registry.host}/private/app:v1")
    pushed = seed_image(client, ref)
    assert client.resolve(ref) == pushed
    # asked once, as docker asks: "get" with the registry host on standard input
    assert helper_calls(bin_dir, "opkeytest") == [
        {"args": ["get"], "server": htpasswd_registry.host}
    ]


@pytest.mark.registry
def test_a_per_registry_helper_wins_over_the_credential_store(
    htpasswd_registry: LocalRegistry, bin_dir: Path, tmp_path: Path
) -> None:
    answering_helper(bin_dir, "good", htpasswd_registry.host, HTPASSWD_PASSWORD)
    write_helper(bin_dir, "wrong", "print(json.dumps({'Username': 'x', 'Secret': 'nope'}))")
    store = config(
        tmp_path, {"credsStore": "wrong", "credHelpers": {htpasswd_registry.host: "good"}}
    )
    ref = ImageReference.parse(f"{htpasswd_registry.host}/private/app:v1")
    seed_image(client_with(store), ref)
    assert helper_calls(bin_dir, "wrong") == []


@pytest.mark.registry
def test_a_helper_without_credentials_falls_back_to_auths(
    htpasswd_registry: LocalRegistry, bin_dir: Path, tmp_path: Path
) -> None:
    answering_helper(bin_dir, "empty", "some.other.registry", "x")
    auth = base64.b64encode(f"{HTPASSWD_USER}:{HTPASSWD_PASSWORD}".encode()).decode()
    store = config(
        tmp_path, {"credsStore": "empty", "auths": {htpasswd_registry.host: {"auth": auth}}}
    )
    seed_image(client_with(store), ImageReference.parse(f"{htpasswd_registry.host}/p/app:v1"))
    assert len(helper_calls(bin_dir, "empty")) == 1


def test_a_hanging_helper_is_killed_at_its_timeout(bin_dir: Path) -> None:
    write_helper(bin_dir, "hangs", "time.sleep(60)")
    with elapsed() as took, pytest.raises(ConfigError, match=r"no answer within 1s"):
        run_credential_helper("hangs", "ghcr.io", timeout=1.0)
    assert took() < 3.0


def test_a_helper_flooding_its_output_is_stopped_at_the_bound(bin_dir: Path) -> None:
    write_helper(bin_dir, "floods", "sys.stdout.write('x' * 50_000_000)")
    with (
        elapsed() as took,
        pytest.raises(ConfigError, match=rf"answered more than {HELPER_MAX_OUTPUT} bytes"),
    ):
        run_credential_helper("floods", "ghcr.io")
    assert HELPER_MAX_OUTPUT == 64 * 1024
    assert took() < 5.0


def test_a_failing_helper_says_why_without_escape_sequences(bin_dir: Path) -> None:
    write_helper(bin_dir, "fails", "sys.stderr.write('\\x1b[31mkeychain locked'); sys.exit(3)")
    with pytest.raises(ConfigError, match=r"failed \(exit status 3\): \\x1b\[31mkeychain locked"):
        run_credential_helper("fails", "ghcr.io")


def test_an_identity_token_from_a_helper_is_refused_clearly(bin_dir: Path) -> None:
    write_helper(bin_dir, "oauth", "print(json.dumps({'Username': '<token>', 'Secret': 'r'}))")
    with pytest.raises(ConfigError, match="OAuth identity token"):
        run_credential_helper("oauth", "ghcr.io")


@pytest.mark.parametrize("name", ["../../bin/sh", "/bin/sh", "a b", "", ".hidden", "x;id"])
def test_helper_names_that_are_not_plain_names_are_refused(tmp_path: Path, name: str) -> None:
    document: dict[str, object] = {"credsStore": name} if name else {"credHelpers": {"h": "a/b"}}
    with pytest.raises(ConfigError, match="is not a plain name"):
        config(tmp_path, document)


# -- explicit credentials ----------------------------------------------------------------------


def verify_args(image: str, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["verify", image, "--github-repository", "o/r", *extra])


@pytest.mark.registry
def test_username_and_password_from_standard_input(htpasswd_registry: LocalRegistry) -> None:
    image = f"{htpasswd_registry.host}/private/app:v1"
    args = verify_args(image, "--registry-username", HTPASSWD_USER, "--registry-password-stdin")
    options = RegistryOptions.from_args(args, stdin=io.BytesIO(HTPASSWD_PASSWORD.encode() + b"\n"))
    assert HTPASSWD_PASSWORD not in repr(options)
    pushed = seed_image(options.client(image), ImageReference.parse(image))
    assert options.client(image).resolve(ImageReference.parse(image)) == pushed
    wrong = RegistryOptions.from_args(args, stdin=io.BytesIO(b"wrong\n"))
    with pytest.raises(RegistryError, match="refused the credentials"):
        wrong.client(image).resolve(ImageReference.parse(image))


@pytest.mark.registry
def test_the_cli_reads_the_password_from_standard_input(
    htpasswd_registry: LocalRegistry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Past authentication, the image has no signature: a rejection (1), not a refusal (2)."""
    image = f"{htpasswd_registry.host}/private/app:v1"
    args = verify_args(image, "--registry-username", HTPASSWD_USER, "--registry-password-stdin")
    seed_image(
        RegistryOptions.from_args(args, stdin=io.BytesIO(HTPASSWD_PASSWORD.encode())).client(image),
        ImageReference.parse(image),
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(HTPASSWD_PASSWORD.encode())))
    code = main(
        ["verify", image, "--github-repository", "o/r", "--registry-username", HTPASSWD_USER,
         "--registry-password-stdin"]
    )  # fmt: skip
    assert code == 1
    assert "has no signatures" in capsys.readouterr().err


@pytest.mark.registry
def test_username_and_password_from_the_environment(htpasswd_registry: LocalRegistry) -> None:
    image = f"{htpasswd_registry.host}/private/app:v1"
    env = {"OPKEY_REGISTRY_USERNAME": HTPASSWD_USER, "OPKEY_REGISTRY_PASSWORD": HTPASSWD_PASSWORD}
    options = RegistryOptions.from_args(verify_args(image), env=env)
    seed_image(options.client(image), ImageReference.parse(image))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--registry-username", "ci"], "needs --registry-password-stdin"),
        (["--registry-password-stdin"], "needs --registry-username"),
        (["--registry-ca-file", "/nonexistent/ca.pem"], "does not exist"),
    ],
)
def test_incomplete_registry_options_are_refused(extra: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RegistryOptions.from_args(verify_args("ghcr.io/o/r:v1", *extra), stdin=io.BytesIO(b"pw"))


def test_half_of_the_environment_pair_is_refused() -> None:
    with pytest.raises(ConfigError, match="set OPKEY_REGISTRY_PASSWORD too"):
        credentials_from_env({"OPKEY_REGISTRY_USERNAME": "ci"})


# -- GITHUB_TOKEN in GitHub Actions ------------------------------------------------------------


def _bearer_registry(server: HTTPServer, realm: str, seen: list[str | None]) -> None:
    def manifest(request: Request) -> Response:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return Response(b"", 404)
        return Response(b"", 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'})

    def token(request: Request) -> Response:
        seen.append(request.headers.get("Authorization"))
        return Response(json.dumps({"token": "t"}), 200)

    server.expect_request("/v2/org/app/manifests/v1").respond_with_handler(manifest)
    server.expect_request("/token").respond_with_handler(token)


ACTIONS = {"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": "ghs_secret", "GITHUB_ACTOR": "octocat"}


def test_github_token_logs_in_to_ghcr_inside_actions(httpserver: HTTPServer) -> None:
    seen: list[str | None] = []
    _bearer_registry(httpserver, "https://ghcr.io/token", seen)
    base = httpserver.url_for("/").rstrip("/")
    client = RegistryClient(
        transport=RoutingTransport({"https://ghcr.io": base}),
        docker_config=DockerCredentialStore(),
        env=ACTIONS,
    )
    assert client.find_manifest(ImageReference.parse("ghcr.io/org/app:v1")) is None
    assert seen == [Credentials("octocat", "ghs_secret").basic_header()]


def test_github_token_goes_to_ghcr_only(httpserver: HTTPServer) -> None:
    seen: list[str | None] = []
    _bearer_registry(httpserver, "https://quay.io/token", seen)
    base = httpserver.url_for("/").rstrip("/")
    client = RegistryClient(
        transport=RoutingTransport({"https://quay.io": base}),
        docker_config=DockerCredentialStore(),
        env=ACTIONS,
    )
    assert client.find_manifest(ImageReference.parse("quay.io/org/app:v1")) is None
    assert seen == [None]


def test_github_token_outside_actions_is_not_used() -> None:
    assert ambient_credentials({**ACTIONS, "GITHUB_ACTIONS": "false"}) == {}
    assert ambient_credentials({"GITHUB_ACTIONS": "true", "GITHUB_TOKEN": "x"}) == {}
    assert ambient_credentials(ACTIONS) == {"ghcr.io": Credentials("octocat", "ghs_secret")}


# -- a proxy and a private CA ------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    directory = tmp_path / "tls"
    directory.mkdir()
    return tls_files(directory, [REGISTRY_NAME])


@pytest.fixture
def tls_registry(registry_factory: Callable[..., LocalRegistry], tls: TlsFiles) -> LocalRegistry:
    return registry_factory(tls=(tls.certificate, tls.key))


@pytest.fixture
def proxy(tls_registry: LocalRegistry) -> Iterator[ConnectProxy]:
    with ConnectProxy(tls_registry.port) as running:
        yield running


def proxied_client(proxy: ConnectProxy, verify: bool | str | None) -> RegistryClient:
    transport = RequestsTransport(verify_tls=verify, proxies=ProxySettings(https=proxy.url))
    return RegistryClient(transport=transport, docker_config=DockerCredentialStore(), env={})


IMAGE = f"{REGISTRY_NAME}/team/app:v1"


@pytest.mark.registry
def test_a_tls_registry_through_a_connect_proxy_with_a_private_ca(
    proxy: ConnectProxy, tls: TlsFiles
) -> None:
    """The proxy resolves the name (the client could not); TLS is end to end, checked
    against the CA given for the registry."""
    client = proxied_client(proxy, str(tls.ca))
    pushed = seed_image(client, ImageReference.parse(IMAGE))
    assert client.resolve(ImageReference.parse(IMAGE)) == pushed
    assert set(proxy.targets) == {f"CONNECT {REGISTRY_NAME}:443"}


@pytest.mark.registry
def test_the_registry_ca_file_option_and_the_environment(
    proxy: ConnectProxy, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    args = verify_args(IMAGE, "--registry-ca-file", str(tls.ca))
    seed_image(RegistryOptions.from_args(args).client(IMAGE), ImageReference.parse(IMAGE))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca))
    client = RegistryOptions.from_args(verify_args(IMAGE)).client(IMAGE)
    assert client.find_manifest(ImageReference.parse(IMAGE)) is not None
    assert proxy.targets


@pytest.mark.registry
def test_without_the_ca_the_registry_is_refused(proxy: ConnectProxy) -> None:
    with pytest.raises(NetworkError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        proxied_client(proxy, True).resolve(ImageReference.parse(IMAGE))


@pytest.mark.registry
def test_no_proxy_sends_the_request_directly(
    proxy: ConnectProxy, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = RequestsTransport(
        verify_tls=str(tls.ca), proxies=ProxySettings(https=proxy.url, no_proxy=(".opkey.test",))
    )
    client = RegistryClient(transport=transport, docker_config=DockerCredentialStore(), env={})
    with pytest.raises(NetworkError):
        client.resolve(ImageReference.parse(IMAGE))  # direct: the name does not resolve here
    assert proxy.targets == []


@pytest.mark.registry
@pytest.mark.parametrize(
    ("realm", "message"),
    [("http://127.0.0.1:9/token", "loopback"), ("https://10.0.0.5/token", "internal address")],
)
def test_a_proxy_does_not_weaken_where_opkey_connects(
    registry_factory: Callable[..., LocalRegistry], tls: TlsFiles, realm: str, message: str
) -> None:
    """A registry reached through the proxy names a realm on loopback or a private network
    (which the proxy could reach): refused, the URL rules apply to the target."""
    registry = registry_factory(
        tls=(tls.certificate, tls.key),
        token=TokenAuthConfig(realm, "svc", "issuer", tls.ca),
    )
    with ConnectProxy(registry.port) as running:
        with pytest.raises(NetworkError, match=message):
            proxied_client(running, str(tls.ca)).resolve(ImageReference.parse(IMAGE))
        assert set(running.targets) == {f"CONNECT {REGISTRY_NAME}:443"}


def test_proxy_settings_follow_the_usual_rules() -> None:
    settings = ProxySettings(
        https="proxy.corp:3128",
        http="http://proxy.corp:3128",
        no_proxy=(".internal.example", "exact.example", "10.0.0.0/8", "port.example:8443", ""),
    )
    assert settings.https == "http://proxy.corp:3128"
    proxied = "http://proxy.corp:3128"
    assert settings.proxy_for("https://ghcr.io/v2/") == proxied
    assert settings.proxy_for("https://a.internal.example/v2/") is None
    assert settings.proxy_for("https://internal.example/v2/") is None
    assert settings.proxy_for("https://exact.example/v2/") is None
    assert settings.proxy_for("https://sub.exact.example/v2/") is None
    assert settings.proxy_for("https://notexact.example/v2/") == proxied
    assert settings.proxy_for("https://10.1.2.3/v2/") is None
    assert settings.proxy_for("https://port.example:8443/v2/") is None
    assert settings.proxy_for("https://port.example/v2/") == proxied
    for loopback in ("http://127.0.0.1:5000/v2/", "https://localhost/v2/", "http://[::1]/"):
        assert settings.proxy_for(loopback) is None
    assert ProxySettings(https="http://p:1", no_proxy=("*",)).proxy_for("https://x.io/") is None
    env = {"HTTPS_PROXY": "http://p:1", "no_proxy": "x.io"}
    assert ProxySettings.from_env(env).proxy_for("https://x.io/") is None
    with pytest.raises(ConfigError, match="only http:// and https:// proxies"):
        ProxySettings(https="socks5://p:1080")
