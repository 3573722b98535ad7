"""Browser login (code + PKCE + loopback redirect) end to end against the dev provider."""

from __future__ import annotations

import io
import socket
import stat
import sys
import threading
import time
import urllib.error
import urllib.request
import webbrowser
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from opkey import issuers
from opkey.errors import ConfigError, ProviderError
from opkey.issuers import CommitmentType
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.providers import LOGIN_CLIENTS, BrowserProvider, OidcClient
from opkey.providers.loopback import LoopbackListener
from opkey.sandbox.devidp import DevIdP, DevIdPSettings
from opkey.verify import verify_pktoken

BROWSER_SCRIPT = """\
#!{python}
# A stand-in browser: load the URL and follow redirects, as a browser would.
import sys
import urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
with opener.open(sys.argv[1], timeout=10) as response:
    response.read()
"""


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def follow(url: str) -> bool:
    """An in-process browser: GET the URL, following redirects."""
    with _opener().open(url, timeout=10) as response:
        response.read()
    return True


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def rewrite_redirect(url: str, **changes: str) -> bool:
    """Load the authorization URL, then deliver its redirect with some parameters changed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(url, timeout=10)
    location = redirect.value.headers["Location"]
    redirect.value.close()
    parts = urlsplit(location)
    params = dict(parse_qsl(parts.query))
    params.update(changes)
    target = urlunsplit(parts._replace(query=urlencode(params)))
    try:
        with _opener().open(target, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as refused:  # the listener answers 400 to what it refuses
        refused.close()
    return True


def dev_client(idp: DevIdP, **changes: object) -> OidcClient:
    return OidcClient(issuer=idp.issuer, client_id=idp.client_id, **changes)  # type: ignore[arg-type]


def verify(pktoken: PKToken, idp: DevIdP, jwks: JwksClient) -> None:
    config = issuers.oidc(idp.issuer, idp.client_id)
    assert config.commitment is CommitmentType.NONCE
    verified = verify_pktoken(
        pktoken, config, jwks.keys(idp.issuer), now=datetime.now(timezone.utc)
    )
    assert verified.subject == idp.settings.user.sub
    assert pktoken.claims["nonce"] == pktoken.cic_claims.commitment()
    assert verified.op_algorithm == "RS256"


def test_browser_login_through_the_browser_env_variable(
    dev_idp: DevIdP, dev_jwks: JwksClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "fake-browser"
    script.write_text(BROWSER_SCRIPT.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", str(script))
    # webbrowser reads $BROWSER once per process; make it read ours.
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    key = generate_signing_key()
    provider = BrowserProvider(dev_client(dev_idp), timeout=20, output=io.StringIO())
    assert provider.issuer_config() == issuers.oidc(dev_idp.issuer, dev_idp.client_id)
    pktoken = provider.get_pktoken(key)
    verify(PKToken.from_json(pktoken.to_json()), dev_idp, dev_jwks)
    assert pktoken.cic_claims.upk == key.public_jwk


def test_browser_login_with_localhost_redirect_and_extra_claims(
    dev_idp: DevIdP, dev_jwks: JwksClient
) -> None:
    client = dev_client(dev_idp, redirect_uris=("http://localhost:0/callback",))
    provider = BrowserProvider(client, opener=follow, timeout=10)
    pktoken = provider.get_pktoken(generate_signing_key("EdDSA"), extra_claims={"att": "abc"})
    verify(pktoken, dev_idp, dev_jwks)
    assert pktoken.cic_claims.extra == {"att": "abc"}


def test_no_browser_prints_the_url(dev_idp: DevIdP, dev_jwks: JwksClient) -> None:
    class Terminal(io.StringIO):
        """Someone reading the terminal and opening the printed URL."""

        def write(self, text: str) -> int:
            for word in text.split():
                if word.startswith("http://"):
                    threading.Thread(target=follow, args=(word,), daemon=True).start()
            return super().write(text)

    terminal = Terminal()
    provider = BrowserProvider(
        dev_client(dev_idp),
        no_browser=True,
        opener=lambda url: pytest.fail("opened"),
        timeout=10,
        output=terminal,
    )
    verify(provider.get_pktoken(generate_signing_key()), dev_idp, dev_jwks)
    assert "Open this URL in a browser" in terminal.getvalue()
    assert "code_challenge_method=S256" in terminal.getvalue()


def test_redirect_with_another_state_is_refused(dev_idp: DevIdP) -> None:
    provider = BrowserProvider(
        dev_client(dev_idp),
        opener=lambda url: rewrite_redirect(url, state="attacker"),
        timeout=1.5,
        output=io.StringIO(),
    )
    started = time.monotonic()
    with pytest.raises(ProviderError, match="1 redirects with a wrong state were refused"):
        provider.get_pktoken(generate_signing_key())
    assert time.monotonic() - started < 1.5 + 2


def test_redirect_naming_another_issuer_is_refused(dev_idp: DevIdP) -> None:
    provider = BrowserProvider(
        dev_client(dev_idp),
        opener=lambda url: rewrite_redirect(url, iss="https://accounts.google.com"),
        timeout=10,
    )
    with pytest.raises(
        ProviderError, match=r"redirect names issuer 'https://accounts\.google\.com'"
    ):
        provider.get_pktoken(generate_signing_key())


def test_refused_login_is_reported(make_dev_idp: Callable[..., DevIdP]) -> None:
    idp = make_dev_idp(DevIdPSettings(auto_approve=False))
    provider = BrowserProvider(dev_client(idp), opener=follow, timeout=10, output=io.StringIO())
    with pytest.raises(ProviderError, match="refused the login: access_denied") as info:
        provider.get_pktoken(generate_signing_key())
    assert info.value.found == "access_denied"


def test_waiting_for_the_redirect_times_out(dev_idp: DevIdP) -> None:
    provider = BrowserProvider(dev_client(dev_idp), opener=lambda url: True, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=r"no login redirect arrived .* within 0\.5s"):
        provider.get_pktoken(generate_signing_key())
    assert time.monotonic() - started < 0.5 + 2


def test_unregistered_client_gets_no_code(dev_idp: DevIdP) -> None:
    client = OidcClient(issuer=dev_idp.issuer, client_id="not-registered")
    pages: list[int] = []

    def open_and_record(url: str) -> bool:
        try:
            follow(url)
        except urllib.error.HTTPError as error:
            pages.append(error.code)
            error.close()
        return True

    provider = BrowserProvider(client, opener=open_and_record, timeout=0.5)
    with pytest.raises(ProviderError, match="no login redirect arrived"):
        provider.get_pktoken(generate_signing_key())
    assert pages == [400]


def test_issuer_must_be_https_off_loopback() -> None:
    with pytest.raises(ConfigError, match="https is required"):
        BrowserProvider(OidcClient(issuer="http://login.example", client_id="x"))


def test_login_clients_are_openpubkeys_clients() -> None:
    assert LOGIN_CLIENTS["google"].issuer == "https://accounts.google.com"
    assert LOGIN_CLIENTS["google"].client_id.startswith("206584157355-")
    assert LOGIN_CLIENTS["microsoft"].issuer == (
        "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
    )
    assert LOGIN_CLIENTS["microsoft"].client_id == "096ce0a3-5e72-4da8-9c86-12924b294a01"
    assert LOGIN_CLIENTS["gitlab"].issuer == "https://gitlab.com"
    assert "offline_access" in LOGIN_CLIENTS["microsoft"].scopes
    for client in LOGIN_CLIENTS.values():
        assert client.redirect_uris[0] == "http://localhost:3000/login-callback"
        config = issuers.oidc(client.issuer, client.client_id)
        assert config.client_id == client.client_id


def test_client_configuration_is_checked() -> None:
    with pytest.raises(ConfigError, match="must include 'openid'"):
        OidcClient(issuer="https://x.example", client_id="c", scopes=("email",))
    with pytest.raises(ConfigError, match="may not set"):
        OidcClient(issuer="https://x.example", client_id="c", extra_auth_params={"nonce": "x"})


def test_listener_skips_a_busy_port_and_refuses_other_hosts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        candidates = [f"http://127.0.0.1:{port}/cb", "http://127.0.0.1:0/cb"]
        with LoopbackListener(candidates, expected_state="s") as listener:
            bound = urlsplit(listener.redirect_uri)
            assert bound.port not in (None, port)
            assert bound.path == "/cb"
            with pytest.raises(urllib.error.HTTPError) as wrong_path:
                _opener().open(f"http://127.0.0.1:{bound.port}/other", timeout=5)
            assert wrong_path.value.code == 404
            wrong_path.value.close()
            follow(listener.redirect_uri + "?state=s&code=c")
            assert listener.wait(1) == {"state": "s", "code": "c"}
        with pytest.raises(ProviderError, match="cannot listen"):
            LoopbackListener([f"http://127.0.0.1:{port}/cb"], expected_state="s").__enter__()
    with pytest.raises(ConfigError, match="loopback"):
        LoopbackListener(["http://example.com:0/cb"], expected_state="s").__enter__()
