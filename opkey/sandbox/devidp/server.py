"""The dev OpenID provider as a real HTTP server on loopback.

:class:`DevIdP` runs :class:`~opkey.sandbox.devidp.provider.DevProvider` behind the standard
library's ``ThreadingHTTPServer`` in a background thread, bound to ``127.0.0.1`` only (never to
other interfaces: it signs tokens for anyone who asks). It is real HTTP, not a mock, so every client
in opkey is exercised end to end in tests and in ``opkey demo``::

    with DevIdP() as idp:                 # free port
        idp.issuer                        # http://127.0.0.1:<port>
        idp.env()                         # GITHUB_ACTIONS, ACTIONS_ID_TOKEN_REQUEST_URL, ...
        idp.rotate_key(keep_old=False)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from opkey.background_server import BackgroundServer
from opkey.sandbox.devidp.keyring import KeyRing
from opkey.sandbox.devidp.provider import DevIdPSettings, DevProvider, Reply

__all__ = ["MAX_REQUEST_BODY", "DevIdP"]

#: Largest request body the dev provider reads (token requests are a few hundred bytes).
MAX_REQUEST_BODY = 64 * 1024
_HOST = "127.0.0.1"


def _error(status: int, description: str) -> Reply:
    return Reply.json(status, {"error": "invalid_request", "error_description": description})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, provider_factory: Callable[[str], DevProvider]) -> None:
        super().__init__((_HOST, port), _Handler)
        self.provider = provider_factory(f"http://{_HOST}:{self.server_address[1]}")
        self.verbose = False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "opkey-dev-idp"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        body = b""
        if method in ("POST", "PUT"):
            length = headers.get("content-length")
            if length is None or not length.isdigit():
                self._send(_error(411, "Content-Length required"))
                return
            if int(length) > MAX_REQUEST_BODY:
                self._send(_error(413, "request body too large"))
                return
            body = self.rfile.read(int(length))
        try:
            reply = self.server.provider.handle(method, parts.path, parts.query, headers, body)
        except Exception as exc:  # a bug in the dev provider must not kill the server
            reply = Reply.json(500, {"error": "server_error", "error_description": repr(exc)})
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"dev-idp: {self.address_string()} {format % args}\n")


class DevIdP(BackgroundServer[_Server]):
    """A running development OpenID provider (start/stop, or use as a context manager).

    ``port=0`` picks a free port. ``clock`` (seconds since the epoch) drives token times and
    code expiry, so tests can move time forward. ``issuer`` names the provider instead of its
    loopback URL (``iss``, the discovery document and every endpoint URL), for clients that
    only accept a well-known issuer: their requests to it must then be routed to the loopback
    address (:attr:`loopback_url`).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        settings: DevIdPSettings | None = None,
        clock: Callable[[], float] = time.time,
        verbose: bool = False,
        issuer: str | None = None,
    ) -> None:
        super().__init__()
        self._issuer = issuer
        self.settings = settings if settings is not None else DevIdPSettings()
        self.keyring = KeyRing()
        self._port = port
        self._clock = clock
        self._verbose = verbose

    # -- lifecycle ------------------------------------------------------------------------

    thread_name = "opkey-dev-idp"

    def _bind(self) -> _Server:
        """Bind ``127.0.0.1:<port>`` (:meth:`start` then serves it in a background thread)."""
        server = _Server(
            self._port,
            lambda issuer: DevProvider(
                self._issuer or issuer, self.settings, keyring=self.keyring, clock=self._clock
            ),
        )
        server.verbose = self._verbose
        return server

    @property
    def provider(self) -> DevProvider:
        """The protocol logic of the running server."""
        if self._server is None:
            raise RuntimeError("the dev IdP is not running; call start() first")
        return self._server.provider

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("the dev IdP is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def issuer(self) -> str:
        """``http://127.0.0.1:<port>`` (or the ``issuer`` given): the ``iss`` of every token."""
        return self.provider.issuer

    @property
    def loopback_url(self) -> str:
        """``http://127.0.0.1:<port>``: where the provider answers, whatever its name."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def client_id(self) -> str:
        """The first registered client's id (``opkey-dev`` by default)."""
        return self.settings.clients[0].client_id

    @property
    def github_request_url(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_URL`` for this provider (it already has a query)."""
        return self.provider.github_request_url

    @property
    def request_token(self) -> str:
        """``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` for this provider."""
        return self.provider.request_token

    def env(self) -> dict[str, str]:
        """Environment variables that make opkey's CI providers use this dev provider."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.github_request_url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
            "OPKEY_DEV_ISSUER": self.issuer,
            "OPKEY_DEV_CLIENT_ID": self.client_id,
            "OPKEY_DEV_GITLAB_TOKEN_URL": self.provider.gitlab_token_url,
        }

    # -- keys and tokens ------------------------------------------------------------------

    def rotate_key(self, *, keep_old: bool = True) -> str:
        """Switch to a new signing key; return its ``kid``. ``keep_old=False`` unpublishes
        the previous keys, as a provider does when it finally retires them."""
        return self.keyring.rotate(keep_old=keep_old).kid

    @property
    def active_kid(self) -> str:
        """``kid`` of the key new tokens are signed with."""
        return self.keyring.active.kid

    def mint_github_token(self, audience: str | None = None) -> str:
        """A GitHub Actions–style ID token, without going through HTTP."""
        return self.provider.mint_github_token(audience)

    def mint_gitlab_token(self, audience: str | None = None) -> str:
        """A GitLab CI–style ID token (for an ``OPENPUBKEY_JWT`` variable)."""
        return self.provider.mint_gitlab_token(audience)

    def mint_id_token(self, client_id: str | None = None, *, nonce: str | None = None) -> str:
        """An ID token for the development user, as the token endpoint would issue."""
        return self.provider.mint_id_token(client_id or self.client_id, nonce=nonce)

    def approve_device(self, user_code: str, *, approve: bool = True) -> bool:
        """Approve (or deny) a pending device login, as the verification page does."""
        return self.provider.approve_device(user_code, approve=approve)
