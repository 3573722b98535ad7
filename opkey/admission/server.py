"""The gate's HTTPS server: ``POST /validate``, ``/healthz``, ``/readyz``, ``/metrics``.

Built on aiohttp's server (``spec/admission.md`` says why): a C HTTP parser with bounded request
lines and headers (8190 bytes each), a bounded body (``max_request_bytes``, answered 413 beyond
it), TLS from the standard library's ``ssl`` with a context of ours, and one event loop whose
thread answers cached admissions without a thread switch. Verifications run in the
:class:`~opkey.admission.gate.Gate`'s worker threads.

``POST /validate`` takes an ``admission.k8s.io/v1`` AdmissionReview (``Content-Type:
application/json``) and answers 200 with the review's response: allowed, or denied with the
reason for each refused image. A body that is not a readable review is answered 400 with the
reason in plain text (when the request's ``uid`` was readable, a 200 denial naming the problem
instead, so that ``kubectl`` shows it); a larger body 413; a body not received within the
deadline 408. The API server's ``timeout`` query parameter (``?timeout=10s``) shortens the
deadline when it is less than the gate's own.

``GET /healthz`` answers 200 while the server runs; ``GET /readyz`` 200 once the first round of
key refreshes has ended (its outcome does not matter: the archive may hold the keys) and until
shutdown starts, 503 otherwise; ``GET /metrics`` is the Prometheus exposition
(:mod:`opkey.admission.metrics`).

Every ``watch_interval`` seconds (10) the certificate and key files are checked, and read again
when they changed: new connections get the new certificate, so cert-manager can rotate it
without a restart. A certificate that cannot be read keeps the old one in use and says why in
the log. The same tick calls ``reload`` (in a worker thread), with which
:class:`opkey.admission.service.ConfigWatcher` reloads the rules and policies.

Every request is logged as one JSON object (``event: admission``): the request's identity, the
decision, and per image its path, digest, where its outcome came from and why it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from opkey.admission.gate import Gate, Judgement
from opkey.admission.metrics import CONTENT_TYPE, AdmissionMetrics
from opkey.admission.refresh import KeyRefresher
from opkey.admission.review import MAX_REVIEW_BYTES
from opkey.errors import ConfigError
from opkey.remote_text import printable

__all__ = [
    "AdmissionServer",
    "JsonLogFormatter",
    "ServerSettings",
    "configure_logging",
    "file_state",
    "parse_api_timeout",
    "serving_context",
]

_log = logging.getLogger("opkey.admission")
_GO_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def parse_api_timeout(text: str | None) -> float | None:
    """The API server's ``timeout`` query parameter (a Go duration: ``10s``) in seconds."""
    if not text:
        return None
    match = _GO_DURATION.fullmatch(text)
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


async def _within(awaitable: Coroutine[Any, Any, bytes], seconds: float) -> bytes:
    """``await awaitable`` bounded by ``seconds`` (:class:`asyncio.TimeoutError` after).

    ``asyncio.timeout`` (Python 3.11) bounds the await in place; ``wait_for`` runs it as a task
    of its own, which costs a loop iteration or two on every request.
    """
    if sys.version_info < (3, 11):  # pragma: no cover - Python 3.10
        return await asyncio.wait_for(awaitable, timeout=seconds)
    async with asyncio.timeout(seconds):
        return await awaitable


def serving_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) with the certificate chain and key loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, cert, key)
    return context


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot load the TLS certificate {cert} with key {key}: {reason}"
        ) from None


@dataclass(frozen=True)
class ServerSettings:
    """Where and how the server listens."""

    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    max_request_bytes: int = MAX_REVIEW_BYTES
    watch_interval: float = 10.0
    shutdown_grace: float = 5.0
    #: Seconds a thread may hold the interpreter lock while others wait (Python's default is
    #: 5 ms). A verification in a worker thread then delays the event loop, which answers
    #: the cached admissions, by at most this much at a time.
    switch_interval: float = 0.001


def file_state(path: Path) -> tuple[int, int, int] | None:
    """What tells that a file changed: inode, size, modification time (``None`` if absent).

    ``os.stat`` follows links, so a Secret or ConfigMap volume's update (a new ``..data``
    directory swapped in under the same names) shows as a new inode."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


class AdmissionServer:
    """The HTTPS server around one :class:`Gate` (see the module doc)."""

    def __init__(
        self,
        gate: Gate,
        settings: ServerSettings,
        *,
        metrics: AdmissionMetrics | None = None,
        refresher: KeyRefresher | None = None,
        reload: Callable[[], object] | None = None,
    ) -> None:
        self.gate = gate
        self.settings = settings
        self.metrics = metrics
        self.refresher = refresher
        self.reload = reload
        self.context = serving_context(settings.tls_cert, settings.tls_key)
        self._cert_state = self._certificate_state()
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.port: int | None = None
        if metrics is not None:
            metrics.watch_cache(gate.cache)

    # -- the application -----------------------------------------------------------------------

    def application(self) -> web.Application:
        """The aiohttp application (routes only; TLS and limits are the runner's)."""
        app = web.Application(client_max_size=self.settings.max_request_bytes)
        app.router.add_post("/validate", self._validate)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    @property
    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200."""
        if self._stopping:
            return False
        return self.refresher is None or self.refresher.first_round.is_set()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound(text="metrics are off\n")
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _validate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        api_timeout = parse_api_timeout(request.query.get("timeout"))
        budget = self.gate.budget(api_timeout)
        if request.content_type != "application/json":
            return self._refuse(
                started,
                415,
                f"expected Content-Type application/json, found "
                f"{printable(request.content_type, limit=80)!r}",
            )
        try:
            body = await _within(request.read(), budget)
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(
                started, 413, f"request body larger than {self.settings.max_request_bytes} bytes"
            )
        except asyncio.TimeoutError:
            return self._refuse(started, 408, f"request body not received within {budget:g}s")
        judgement = await self.gate.judge(body, seconds=budget - (time.perf_counter() - started))
        if judgement.response is None:
            return self._refuse(
                started, 400, f"opkey cannot read this AdmissionReview: {judgement.error}"
            )
        self._record(judgement, started)
        return web.Response(body=judgement.response.to_json(), content_type="application/json")

    def _refuse(self, started: float, status: int, message: str) -> web.Response:
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.request("bad_request", seconds)
        _log.warning(
            "admission request refused: %s",
            message,
            extra={
                "fields": {"event": "admission", "status": status, "ms": round(seconds * 1000, 3)}
            },
        )
        return web.Response(status=status, text=printable(message, limit=3000) + "\n")

    def _record(self, judgement: Judgement, started: float) -> None:
        response = judgement.response
        assert response is not None
        seconds = time.perf_counter() - started
        if not response.allowed:
            decision = "denied"
        elif response.warnings:
            decision = "warned"
        else:
            decision = "allowed"
        if self.metrics is not None:
            self.metrics.request(decision, seconds)
        if not _log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, Any] = {
            "event": "admission",
            "uid": response.uid,
            "decision": decision,
            "ms": round(seconds * 1000, 3),
        }
        request = judgement.request
        if request is not None:
            fields.update(
                operation=request.operation.value,
                kind=str(request.kind),
                namespace=request.namespace,
                name=request.name,
                user=request.user_info.username,
                dry_run=request.dry_run,
            )
        fields["images"] = [
            {
                "path": j.outcome.image.path,
                "image": j.outcome.image.image,
                **({"digest": str(j.digest)} if j.digest else {}),
                "source": j.source.value,
                "allowed": j.outcome.allowed,
                **({"rule": j.outcome.rule} if j.outcome.rule else {}),
                **({"reason": j.outcome.reason} if not j.outcome.allowed else {}),
            }
            for j in judgement.images
        ]
        if judgement.error is not None:
            fields["error"] = str(judgement.error)
        _log.info("admission %s", decision, extra={"fields": fields})

    # -- certificates --------------------------------------------------------------------------

    def _certificate_state(self) -> tuple[object, object]:
        return (file_state(self.settings.tls_cert), file_state(self.settings.tls_key))

    def reload_certificate(self) -> bool:
        """Load the certificate files again if they changed; whether a new one is in use."""
        state = self._certificate_state()
        if state == self._cert_state:
            return False
        try:
            _load_chain(self.context, self.settings.tls_cert, self.settings.tls_key)
        except ConfigError as exc:
            _log.error(
                "%s; the previous certificate stays in use",
                exc,
                extra={"fields": {"event": "certificate"}},
            )
            return False
        self._cert_state = state
        _log.info(
            "TLS certificate reloaded from %s",
            self.settings.tls_cert,
            extra={"fields": {"event": "certificate"}},
        )
        return True

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.watch_interval)
            self.reload_certificate()
            if self.reload is not None:
                try:
                    await loop.run_in_executor(None, self.reload)
                except Exception:  # a reload must never stop the watch
                    _log.exception("reloading the configuration failed")

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; the key refresher (if any) starts too."""
        if self.refresher is not None:
            self.refresher.start()
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.settings.shutdown_grace,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.settings.host,
            self.settings.port,
            ssl_context=self.context,
        )
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.settings.port
        self._tasks.append(asyncio.create_task(self._watch()))
        _log.info(
            "serving admission reviews on https://%s:%s/validate",
            self.settings.host,
            self.port,
            extra={"fields": {"event": "listening", "host": self.settings.host, "port": self.port}},
        )

    async def stop(self) -> None:
        """Stop accepting, let requests under way finish (up to the grace), stop the workers."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.refresher is not None:
            self.refresher.stop()
        self.gate.close()

    async def serve(self, *, on_ready: Callable[[AdmissionServer], None] | None = None) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(number, stop.set)
        await self.start()
        # Everything made at start-up (modules, policies, verifiers) lives as long as the
        # process: out of the cycle collector's sight, full collections stay short.
        gc.collect()
        gc.freeze()
        sys.setswitchinterval(self.settings.switch_interval)
        if on_ready is not None:
            on_ready(self)
        try:
            await stop.wait()
        finally:
            _log.info("shutting down", extra={"fields": {"event": "shutdown"}})
            await self.stop()


# -- logs ----------------------------------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``message``, then the record's ``fields``
    (``extra={"fields": {...}}``: one mapping, so no name can collide with a record's own)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send the gate's logs to ``stream`` (standard error) as JSON lines at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("opkey.admission")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
