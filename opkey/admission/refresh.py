"""Provider keys refreshed in the background, so that no admission waits for a JWKS fetch.

Each live :class:`~opkey.jwks.client.JwksClient` of the gate's policies keeps an issuer's keys
for its TTL (5 minutes) and, on an unknown key id, refetches on the request path. A
:class:`KeyRefresher` thread refetches every trusted issuer's discovery document and JWKS
(:meth:`~opkey.jwks.client.JwksClient.refresh`) every ``interval`` seconds, well inside that
TTL, so the keys in hand never expire while the provider answers; each fetch is recorded in the
JWKS archive when one is configured (the client's observer), which is how the archive stays
current.

When the provider does not answer, the keys fetched last stay in use until they expire, and the
refresher tries again every ``retry_interval`` seconds, more often than the client's
``min_refresh_interval``: the client then answers a lookup at once with the remembered failure
instead of fetching on the request path, and the key sources fall through to the archive, whose
keys keep verifying. The first round runs at start; ``first_round`` is set when it has ended
(whatever its outcome), which ``/readyz`` waits for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opkey.errors import OpkeyError

if TYPE_CHECKING:
    from opkey.admission.metrics import AdmissionMetrics
    from opkey.jwks.client import JwksClient

__all__ = ["DEFAULT_REFRESH_INTERVAL", "DEFAULT_RETRY_INTERVAL", "KeyRefresher"]

#: Seconds between refreshes while the provider answers (the clients keep keys for 300 s).
DEFAULT_REFRESH_INTERVAL = 60.0
#: Seconds between attempts after a failure (below the clients' 30 s refetch interval).
DEFAULT_RETRY_INTERVAL = 15.0

_log = logging.getLogger("opkey.admission")


class KeyRefresher:
    """A daemon thread refreshing every issuer of ``clients`` (see the module doc)."""

    def __init__(
        self,
        clients: Sequence[JwksClient],
        *,
        interval: float = DEFAULT_REFRESH_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        metrics: AdmissionMetrics | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not (interval > 0 and retry_interval > 0):
            raise ValueError("refresh intervals must be positive")
        self.clients = tuple(clients)
        self.interval = interval
        self.retry_interval = retry_interval
        self.metrics = metrics
        self._wall_clock = wall_clock
        self._stop = threading.Event()
        self.first_round = threading.Event()
        self.failures: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="opkey-jwks-refresh", daemon=True)

    def start(self) -> KeyRefresher:
        """Start refreshing (the first round at once)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the fetch under way, if any (each is bounded by the client's timeout)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def use(self, clients: Sequence[JwksClient]) -> None:
        """Refresh ``clients`` from now on (the policies were reloaded)."""
        self.clients = tuple(clients)

    def refresh_all(self, clients: Sequence[JwksClient] | None = None) -> bool:
        """One round over every issuer of ``clients`` (default: this refresher's); whether every
        fetch worked."""
        ok = True
        for client in self.clients if clients is None else clients:
            for issuer in client.allowed_issuers:
                if self._stop.is_set():
                    return ok
                try:
                    client.refresh(issuer)
                except OpkeyError as exc:
                    ok = False
                    if self.failures.get(issuer) != str(exc):
                        _log.warning(
                            "keys of %s could not be refreshed: %s",
                            issuer,
                            exc,
                            extra={
                                "fields": {"event": "jwks_refresh", "issuer": issuer, "ok": False}
                            },
                        )
                    self.failures[issuer] = str(exc)
                    if self.metrics is not None:
                        self.metrics.refreshed(issuer, ok=False)
                else:
                    if self.failures.pop(issuer, None) is not None:
                        _log.info(
                            "keys of %s refreshed again",
                            issuer,
                            extra={
                                "fields": {"event": "jwks_refresh", "issuer": issuer, "ok": True}
                            },
                        )
                    if self.metrics is not None:
                        self.metrics.refreshed(issuer, ok=True, at=self._wall_clock())
        return ok

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ok = self.refresh_all()
            finally:
                self.first_round.set()
            self._stop.wait(self.interval if ok else self.retry_interval)
