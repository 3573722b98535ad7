"""A local HTTP server served on a background thread, and its orderly stop.

The browser login's loopback redirect listener and the development IdP both answer HTTP on
loopback while the calling thread goes on (waits for the redirect, runs a test). Starting and
stopping such a server has an order that matters: :meth:`~socketserver.BaseServer.shutdown`
ends ``serve_forever`` (which must be polling, hence the short interval), only then is the
socket closed, and the thread is joined with a bound so a stuck handler cannot hang the
caller. Keeping that here makes both servers stop the same way.
"""

from __future__ import annotations

import socketserver
import threading

__all__ = ["serve_in_background", "stop_serving"]

#: How often ``serve_forever`` looks for a shutdown request (seconds).
_POLL_INTERVAL = 0.1
#: How long a stop waits for the serving thread to end (seconds).
_JOIN_TIMEOUT = 5


def serve_in_background(server: socketserver.BaseServer, *, name: str) -> threading.Thread:
    """Start serving ``server`` on a daemon thread called ``name``; returns that thread."""
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _POLL_INTERVAL},
        name=name,
        daemon=True,
    )
    thread.start()
    return thread


def stop_serving(server: socketserver.BaseServer, thread: threading.Thread | None) -> None:
    """Stop ``server`` (started by :func:`serve_in_background` on ``thread``) and close it."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=_JOIN_TIMEOUT)
