"""An HTTP proxy in front of a real registry that injects failures on request.

``FaultProxy(upstream_port, decide)`` forwards every request to ``127.0.0.1:upstream_port``
unchanged (including the ``Host`` header, so the registry's ``Location`` answers point back at
the proxy) unless ``decide(method, path, n)`` returns a status, which is then answered instead
(``n`` counts requests). Injected answers carry a distribution-style error body.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FaultProxy"]

Decide = Callable[[str, str, int], "int | None"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultProxy:
    """A threaded forwarding proxy on 127.0.0.1 with failure injection."""

    def __init__(self, upstream_port: int, decide: Decide) -> None:
        self.upstream_port = upstream_port
        self.decide = decide
        self.requests = 0
        self.injected: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests += 1
                    number = proxy.requests
                status = proxy.decide(self.command, self.path, number)
                if status is not None:
                    with proxy._lock:
                        proxy.injected.append((self.command, self.path, status))
                    error = {"errors": [{"code": "UNAVAILABLE", "message": "injected fault"}]}
                    self._reply(status, {"Content-Type": "application/json"}, json.dumps(error))
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    kept = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                    }
                    self._reply(
                        response.status, kept, data, declared=response.getheader("Content-Length")
                    )
                except OSError:
                    self._reply(502, {"Content-Type": "text/plain"}, "upstream unreachable")
                finally:
                    upstream.close()

            def _reply(
                self,
                status: int,
                headers: dict[str, str],
                body: bytes | str,
                declared: str | None = None,
            ) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                length = declared if self.command == "HEAD" and declared else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` of the proxy."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
