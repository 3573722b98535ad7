"""The gate's Prometheus metrics (``GET /metrics``), with the ``prometheus-client`` library.

Each :class:`AdmissionMetrics` has a registry of its own, so several gates in one process (the
tests) never share counters. The names, all prefixed ``opkey_admission_``:

==========================================  ======================================================
``requests_total{decision}``                admission requests: ``allowed``, ``warned`` (allowed
                                            with warnings), ``denied``, ``bad_request``
``request_seconds``                         histogram: time from the body read to the answer
``images_total{source,outcome}``            image outcomes by source (``cache``, ``verified``,
                                            ``shared``, ``error``, ``deadline``) and ``passed``/
                                            ``failed``
``verification_seconds``                    histogram: one image verification (registry and
                                            signature checks)
``cache_entries``                           verdicts in the cache
``cache_evictions_total``                   verdicts dropped to keep the cache within its bound
``jwks_refresh_total{issuer,outcome}``      background key refreshes: ``ok`` or ``failed``
``jwks_last_refresh_timestamp_seconds``     when each issuer's keys were last fetched
``config_reloads_total{outcome}``           rule and policy files reloaded: ``ok``, ``failed``
==========================================  ======================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from opkey.admission.cache import VerdictCache

__all__ = ["CONTENT_TYPE", "AdmissionMetrics"]

#: The media type of :meth:`AdmissionMetrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST
_PREFIX = "opkey_admission"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AdmissionMetrics:
    """The gate's counters and histograms (see the module doc)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = self._counter("requests", "Admission requests, by decision", "decision")
        self.request_seconds = self._histogram(
            "request_seconds", "Time to judge one admission request"
        )
        self.images = self._counter(
            "images", "Image outcomes, by where they came from", "source", "outcome"
        )
        self.verification_seconds = self._histogram(
            "verification_seconds", "Time to verify one image"
        )
        self.cache_entries = self._gauge("cache_entries", "Verdicts in the cache")
        self.cache_evictions = self._counter(
            "cache_evictions", "Verdicts dropped to keep the cache within its bound"
        )
        self.jwks_refresh = self._counter(
            "jwks_refresh", "Background refreshes of provider keys", "issuer", "outcome"
        )
        self.jwks_last_refresh = self._gauge(
            "jwks_last_refresh_timestamp_seconds",
            "When an issuer's keys were last fetched",
            "issuer",
        )
        self.reloads = self._counter(
            "config_reloads", "Reloads of the rule and policy files after they changed", "outcome"
        )
        self._cache: VerdictCache | None = None
        self._evictions_seen = 0

    # Every metric is named with the one prefix and lives in this gate's own registry.
    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(f"{_PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"{_PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str) -> Histogram:
        return Histogram(
            f"{_PREFIX}_{name}", documentation, buckets=_BUCKETS, registry=self.registry
        )

    def watch_cache(self, cache: VerdictCache) -> None:
        """Report ``cache``'s size and evictions at each scrape."""
        self._cache = cache

    def request(self, decision: str, seconds: float) -> None:
        """One admission request answered."""
        self.requests.labels(decision).inc()
        self.request_seconds.observe(seconds)

    def image(self, source: str, *, passed: bool) -> None:
        """One image's outcome (``source``: a :class:`~opkey.admission.gate.Source` value)."""
        self.images.labels(source, "passed" if passed else "failed").inc()

    def verification(self, seconds: float) -> None:
        """One image verified (or attempted)."""
        self.verification_seconds.observe(seconds)

    def refreshed(self, issuer: str, *, ok: bool, at: float | None = None) -> None:
        """One background key refresh of ``issuer`` (``at``: wall-clock seconds when it worked)."""
        self.jwks_refresh.labels(issuer, "ok" if ok else "failed").inc()
        if ok and at is not None:
            self.jwks_last_refresh.labels(issuer).set(at)

    def reloaded(self, *, ok: bool) -> None:
        """The rule and policy files changed and were reloaded (or could not be)."""
        self.reloads.labels("ok" if ok else "failed").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        if self._cache is not None:
            self.cache_entries.set(len(self._cache))
            evictions = self._cache.evictions
            if evictions > self._evictions_seen:
                self.cache_evictions.inc(evictions - self._evictions_seen)
                self._evictions_seen = evictions
        return generate_latest(self.registry)
