"""A local HTTP server served on a background thread, and its orderly stop.

The browser login's loopback redirect listener and the development IdP both answer HTTP on
loopback while the calling thread goes on (waits for the redirect, runs a test). Starting and
stopping such a server has an order that matters: :meth:`~socketserver.BaseServer.shutdown`
ends ``serve_forever`` (which must be polling, hence the short interval), only then is the
socket closed, and the thread is joined with a bound so a stuck handler cannot hang the
caller. :class:`BackgroundServer` keeps that order, and the start/stop/context-manager life
cycle around it, in one place, so both servers start and stop the same way.
"""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Generic, Self, TypeVar

__all__ = ["BackgroundServer"]

#: How often ``serve_forever`` looks for a shutdown request (seconds).
_POLL_INTERVAL = 0.1
#: How long a stop waits for the serving thread to end (seconds).
_JOIN_TIMEOUT = 5

ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)


class BackgroundServer(Generic[ServerT]):
    """Serves the server :meth:`_bind` makes on a daemon thread (start/stop, or ``with``).

    A subclass says what it serves by implementing :meth:`_bind`, which binds the socket (and
    raises the subclass's own error when it cannot); :attr:`_server` is the bound server while
    running. Stopping is idempotent.
    """

    #: The serving thread's name; the bound port is appended.
    thread_name = "opkey-server"

    def __init__(self) -> None:
        self._server: ServerT | None = None
        self._thread: threading.Thread | None = None

    def _bind(self) -> ServerT:
        """Bind and return the server to serve."""
        raise NotImplementedError

    def start(self) -> Self:
        """Bind the server and serve it on a background thread."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        server = self._bind()
        port = server.server_address[1] if isinstance(server.server_address, tuple) else ""
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"{self.thread_name}-{port}",
            daemon=True,
        )
        try:
            thread.start()
        except BaseException:
            server.server_close()  # never recorded as running: stop() would wait on shutdown()
            raise
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving, close the socket, and wait (boundedly) for the thread to end."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=_JOIN_TIMEOUT)

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
