"""The loopback redirect listener of the browser login (RFC 8252 §7.3).

After the user signs in, the provider redirects the browser to
``http://127.0.0.1:<port>/<path>?code=…&state=…``; this small HTTP server, bound to loopback
only, receives that one request. A redirect whose ``state`` is not the one this login sent is
answered with an error page and otherwise ignored: it did not come from our authorization
request (login CSRF), and ending the login on it would let any local page cancel it.
"""

from __future__ import annotations

import hmac
import html
import socket
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from opkey.background_server import BackgroundServer
from opkey.errors import ConfigError, ProviderError
from opkey.http import is_loopback_host

__all__ = ["LoopbackListener"]

_DONE_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>opkey</title></head>"
    "<body><h1>{title}</h1><p>{message}</p></body></html>"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    listener: LoopbackListener


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "opkey"
    sys_version = ""

    def do_GET(self) -> None:
        status, title, message = self.server.listener._receive(self.path)
        body = _DONE_PAGE.format(title=html.escape(title), message=html.escape(message))
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _bind(redirect_uri: str) -> tuple[_Server, str]:
    parts = urlsplit(redirect_uri)
    host = parts.hostname or ""
    if parts.scheme != "http" or not is_loopback_host(host):
        raise ConfigError(
            f"redirect URI {redirect_uri!r} must be an http URI on a loopback host",
            expected="http://127.0.0.1:<port>/<path>",
            found=redirect_uri,
        )
    port = parts.port or 0
    server: _Server
    if ":" in host:
        server = _Server6((host, port), _Handler)
        netloc_host = f"[{host}]"
    else:
        bind_host = "127.0.0.1" if host.lower() in ("localhost", "localhost.") else host
        server = _Server((bind_host, port), _Handler)
        netloc_host = host
    bound_port = server.server_address[1]
    path = parts.path or "/"
    return server, f"http://{netloc_host}:{bound_port}{path}"


class LoopbackListener(BackgroundServer[_Server]):
    """Listens for the one authorization redirect of a login (use as a context manager).

    ``candidates`` are redirect URIs tried in order until one can be bound (a port in use is
    skipped); :attr:`redirect_uri` is the one bound, with the actual port.
    """

    thread_name = "opkey-login-redirect"

    def __init__(self, candidates: Sequence[str], *, expected_state: str) -> None:
        if not candidates:
            raise ConfigError("at least one loopback redirect URI is required")
        super().__init__()
        self._candidates = tuple(candidates)
        self._state = expected_state
        self._path = "/"
        self._result: dict[str, str] | None = None
        self._arrived = threading.Event()
        self._lock = threading.Lock()
        self.rejected = 0
        self.redirect_uri = ""

    def _bind(self) -> _Server:
        errors = []
        for candidate in self._candidates:
            try:
                server, uri = _bind(candidate)
            except OSError as exc:
                errors.append(f"{candidate}: {exc.strerror or exc}")
                continue
            server.listener = self
            self.redirect_uri = uri
            self._path = urlsplit(uri).path
            return server
        raise ProviderError(
            "cannot listen for the login redirect on any of "
            f"{', '.join(self._candidates)} ({'; '.join(errors)})"
        )

    def _receive(self, raw_path: str) -> tuple[int, str, str]:
        parts = urlsplit(raw_path)
        if parts.path != self._path:
            return 404, "Not found", "This is opkey's login listener."
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        params: dict[str, str] = {}
        for name, value in pairs:
            if name in params:
                return 400, "Login failed", f"parameter {name!r} is repeated"
            params[name] = value
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode("utf-8"), self._state.encode("utf-8")):
            with self._lock:
                self.rejected += 1
            return 400, "Login failed", "this redirect does not belong to the pending login"
        with self._lock:
            if self._result is not None:
                return 400, "Login already complete", "You can close this window."
            self._result = params
        self._arrived.set()
        if "error" in params:
            return 400, "Login failed", f"the provider answered: {params['error']}"
        return 200, "Login complete", "You can close this window and return to the terminal."

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters; :class:`ProviderError` after ``timeout`` seconds."""
        if not self._arrived.wait(timeout):
            rejected = f" ({self.rejected} redirects with a wrong state were refused)"
            raise ProviderError(
                f"no login redirect arrived at {self.redirect_uri} within {timeout:g}s"
                + (rejected if self.rejected else "")
            )
        with self._lock:
            assert self._result is not None
            return dict(self._result)
