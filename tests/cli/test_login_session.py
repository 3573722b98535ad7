"""Saved login sessions end with their ID token, and one's own OAuth client can be configured."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from opkey.cic import ClientInstanceClaims
from opkey.cli import build_parser, main
from opkey.cli.providers import build_provider
from opkey.cli.session import load_session, save_session
from opkey.errors import ConfigError
from opkey.expiry import DEFAULT_LEEWAY
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.providers import BrowserProvider, DeviceFlowProvider
from opkey.sandbox.devidp import DevIdP, DevIdPSettings
from opkey.signer import Signer

DIGEST = "sha256:" + "cd" * 32


def _session(idp: DevIdP, path: Path) -> int:
    """A saved session for the dev user; returns its ID token's ``exp``."""
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = idp.mint_id_token(nonce=cic.commitment())
    signer = Signer(PKToken.create(id_token, cic, key), key)
    save_session(path, signer)
    exp: int = signer.pktoken.claims["exp"]
    return exp


def test_a_session_is_refused_once_its_id_token_expired(
    make_dev_idp: Callable[..., DevIdP], tmp_path: Path
) -> None:
    idp = make_dev_idp(DevIdPSettings(id_token_lifetime=600))
    path = tmp_path / "session.json"
    exp = _session(idp, path)
    at = datetime.fromtimestamp(exp, timezone.utc)
    assert load_session(path, now=at).pktoken.claims["exp"] == exp
    # the usual clock-skew leeway, and not a second more
    assert (
        load_session(path, now=at + timedelta(seconds=DEFAULT_LEEWAY)).pktoken.claims["exp"] == exp
    )
    with pytest.raises(ConfigError, match=r"expired at .* log in again: opkey login --save"):
        load_session(path, now=at + timedelta(seconds=DEFAULT_LEEWAY + 1))


def test_sign_with_an_expired_session_says_to_log_in_again(
    make_dev_idp: Callable[..., DevIdP], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A provider whose clock is two hours behind: its one-hour ID tokens are already expired.
    idp = make_dev_idp(clock=lambda: time.time() - 7200)
    path = tmp_path / "session.json"
    _session(idp, path)
    code = main(["sign", "--session", str(path), "--digest", DIGEST, "--bundle", "-"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"session {path} expired at" in err
    assert f"log in again: opkey login --save {path}" in err
    assert "Traceback" not in err


def test_sign_with_a_valid_session_still_works(
    dev_idp: DevIdP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "session.json"
    _session(dev_idp, path)
    assert main(["sign", "--session", str(path), "--digest", DIGEST, "--bundle", "-"]) == 0
    assert '"pktoken"' in capsys.readouterr().out


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["login", *argv])


def test_own_client_at_a_builtin_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPKEY_CLIENT_ID", raising=False)
    monkeypatch.setenv("OPKEY_CLIENT_SECRET", "shh")
    provider = build_provider(_args("--issuer", "google", "--client-id", "mine.example"))
    assert isinstance(provider, BrowserProvider)
    assert provider.client.issuer == "https://accounts.google.com"
    assert provider.client.client_id == "mine.example"
    assert provider.client.client_secret == "shh"
    assert provider.client.redirect_uris == ("http://127.0.0.1:0/login-callback",)
    assert provider.issuer_config().client_id == "mine.example"
    monkeypatch.delenv("OPKEY_CLIENT_SECRET")
    builtin = build_provider(_args("--issuer", "google"))
    assert isinstance(builtin, BrowserProvider)
    assert builtin.client.client_id.startswith("206584157355-")  # OpenPubkey's


def test_client_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPKEY_CLIENT_ID", "env-client")
    monkeypatch.delenv("OPKEY_CLIENT_SECRET", raising=False)
    provider = build_provider(
        _args("--provider", "device", "--issuer", "https://login.example.com")
    )
    assert isinstance(provider, DeviceFlowProvider)
    assert provider.client.client_id == "env-client"
    assert provider.client.client_secret is None
    flag = build_provider(_args("--issuer", "microsoft", "--client-id", "flag-client"))
    assert isinstance(flag, BrowserProvider)
    assert flag.client.client_id == "flag-client"
    monkeypatch.delenv("OPKEY_CLIENT_ID")
    with pytest.raises(ConfigError, match="OPKEY_CLIENT_ID"):
        build_provider(_args("--issuer", "https://login.example.com"))
