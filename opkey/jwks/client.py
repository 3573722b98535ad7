"""Fetching and caching identity providers' published keys (JWKS), safely.

A verifier needs the provider's current keys; fetching them is the one network operation on
the verification path, so it is where an attacker can push hardest. :class:`JwksClient`
therefore:

* fetches only issuers the caller allowed when building it. The ``iss`` of a token is never
  reason enough to connect anywhere (OpenPubkey issue #138);
* finds the keys through discovery, whose ``issuer`` must equal the configured issuer exactly,
  over https only (http only on loopback), without redirects, within a timeout and a size
  limit (:mod:`opkey.jwks.discovery`, :mod:`opkey.http`);
* caches keys per issuer for ``ttl`` seconds, so verifying many signatures costs one fetch;
* refreshes on an unknown ``kid``/``jkt`` (providers rotate keys), but only when the keys in
  hand are older than ``min_refresh_interval``. A flood of tokens naming made-up key ids then
  causes at most one fetch per interval, and concurrent misses wait for one shared fetch
  instead of each starting their own;
* remembers a failed fetch for ``min_refresh_interval`` and reports it again instead of
  retrying at once, so a provider outage does not turn into a pile of hanging requests.

The clock is a parameter (``clock``, monotonic seconds) so tests control expiry. Every
successful JWKS fetch is reported to ``observer(issuer, keyset, fetched_at)``: the JWKS archive
plugs in there to record every key ever published, which keeps old signatures verifiable after
the provider rotates.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from opkey._httpjson import get_json
from opkey.errors import ConfigError, KeyNotFoundError, OpkeyError
from opkey.http import RequestsTransport, Transport, check_url, is_loopback_host
from opkey.jwks.discovery import ProviderMetadata, fetch_metadata, validate_issuer
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK

__all__ = [
    "DEFAULT_JWKS_MAX_BYTES",
    "JwksClient",
    "JwksObserver",
]

#: Largest discovery or JWKS document accepted. Real ones are 1–20 KiB (Microsoft's, with
#: certificate chains, is the largest); the strict JSON parser caps documents at 256 KiB anyway.
DEFAULT_JWKS_MAX_BYTES = 256 * 1024

JwksObserver = Callable[[str, KeySet, datetime], None]


@dataclass
class _Entry:
    """Cache state of one issuer; every field is guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    keyset: KeySet | None = None
    metadata: ProviderMetadata | None = None
    expires: float = -math.inf
    last_attempt: float = -math.inf
    error: OpkeyError | None = None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _describe(kid: str | None, jkt: str | None) -> str:
    parts = []
    if kid is not None:
        parts.append(f"kid {kid!r}")
    if jkt is not None:
        parts.append(f"thumbprint {jkt!r}")
    return " and ".join(parts) or "no kid"


class JwksClient:
    """Thread-safe, rate-limited JWKS fetching for an allowlist of issuers (see module doc).

    ``allowed_issuers``: the only issuers whose keys may be fetched, compared exactly.
    ``transport``: the HTTP seam (default :class:`~opkey.http.RequestsTransport`).
    ``ttl``: seconds keys stay cached. ``min_refresh_interval``: seconds before keys may be
    refetched because of an unknown key id, and before a failed fetch is retried.
    ``timeout``: seconds per request. ``max_bytes``: largest document accepted.
    ``clock``: monotonic seconds (default :func:`time.monotonic`). ``wall_clock``: the aware
    UTC time reported to ``observer``. ``allow_private``: permit issuers on private networks.
    """

    def __init__(
        self,
        allowed_issuers: Iterable[str],
        *,
        transport: Transport | None = None,
        ttl: float = 300.0,
        min_refresh_interval: float = 30.0,
        timeout: float = 5.0,
        max_bytes: int = DEFAULT_JWKS_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        observer: JwksObserver | None = None,
        allow_private: bool = False,
    ) -> None:
        if isinstance(allowed_issuers, str):
            raise TypeError("allowed_issuers must be a collection of issuer URLs, not one string")
        issuers = tuple(dict.fromkeys(allowed_issuers))
        for issuer in issuers:
            validate_issuer(issuer, allow_private=allow_private)
        if ttl <= 0 or min_refresh_interval < 0 or timeout <= 0 or max_bytes <= 0:
            raise ConfigError(
                "ttl, timeout and max_bytes must be positive, min_refresh_interval not negative"
            )
        self.allowed_issuers: tuple[str, ...] = issuers
        self.ttl = float(ttl)
        self.min_refresh_interval = float(min_refresh_interval)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self._transport: Transport = transport if transport is not None else RequestsTransport()
        self._clock = clock
        self._wall_clock = wall_clock
        self._observer = observer
        self._allow_private = allow_private
        self._entries: dict[str, _Entry] = {issuer: _Entry() for issuer in issuers}

    # -- public API ---------------------------------------------------------------------------

    def keys(self, issuer: str) -> KeySet:
        """The issuer's keys: from the cache while fresh, otherwise fetched now."""
        entry = self._entry(issuer)
        with entry.lock:
            if entry.keyset is not None and self._clock() < entry.expires:
                return entry.keyset
            self._raise_recent_failure(issuer, entry)
            keyset = self._fetch(issuer, entry, rediscover=True)
        self._notify(issuer, keyset)
        return keyset

    def metadata(self, issuer: str) -> ProviderMetadata:
        """The issuer's validated discovery metadata (fetched with its keys, cached alike)."""
        entry = self._entry(issuer)
        self.keys(issuer)
        with entry.lock:
            assert entry.metadata is not None
            return entry.metadata

    def find_key(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """The issuer's key with this ``kid`` (and/or RFC 7638 thumbprint ``jkt``).

        On a miss the keys are refetched once, if they are older than
        ``min_refresh_interval``; if the key is still unknown, :class:`KeyNotFoundError`.
        """
        keyset = self.keys(issuer)
        try:
            return keyset.find(kid=kid, jkt=jkt)
        except KeyNotFoundError as exc:
            miss = exc  # why, e.g. "ambiguous": kept for the message if no refetch happens
        entry = self._entry(issuer)
        wanted = _describe(kid, jkt)
        fetched = False
        with entry.lock:
            current = entry.keyset
            if current is not None and current is not keyset:
                # Another thread refreshed while we looked: use its result, do not fetch again.
                keyset = current
            else:
                age = self._clock() - entry.last_attempt
                if age < self.min_refresh_interval:
                    raise KeyNotFoundError(
                        f"issuer {issuer}: no key with {wanted} in its JWKS "
                        f"({miss.message}), fetched {age:.0f}s ago; not refetching within "
                        f"{self.min_refresh_interval:g}s",
                        found=kid if kid is not None else jkt,
                    )
                keyset = self._fetch(issuer, entry, rediscover=False)
                fetched = True
        if fetched:
            self._notify(issuer, keyset)
        try:
            return keyset.find(kid=kid, jkt=jkt)
        except KeyNotFoundError as exc:
            raise KeyNotFoundError(
                f"issuer {issuer}: no key with {wanted} in its JWKS, even after refetching it "
                f"({exc})",
                found=kid if kid is not None else jkt,
            ) from None

    def refresh(self, issuer: str) -> KeySet:
        """Fetch the issuer's discovery document and keys now, however fresh the cache is.

        For a long-running verifier (the admission gate) that refreshes in the background so
        that no verification waits for a fetch. A failure raises and leaves the keys in hand as
        they were, usable until they expire; it is remembered as any failed fetch is.
        """
        entry = self._entry(issuer)
        with entry.lock:
            keyset = self._fetch(issuer, entry, rediscover=True)
        self._notify(issuer, keyset)
        return keyset

    def invalidate(self, issuer: str) -> None:
        """Forget the cached keys and failures of ``issuer``; the next lookup fetches."""
        entry = self._entry(issuer)
        with entry.lock:
            entry.keyset = None
            entry.metadata = None
            entry.expires = -math.inf
            entry.last_attempt = -math.inf
            entry.error = None

    # -- internals ----------------------------------------------------------------------------

    def _entry(self, issuer: str) -> _Entry:
        entry = self._entries.get(issuer)
        if entry is None:
            allowed = ", ".join(self.allowed_issuers) or "none"
            raise ConfigError(
                f"issuer {issuer!r} is not in the allowed issuers ({allowed}); "
                "opkey fetches keys only for issuers the caller trusts",
                expected=list(self.allowed_issuers),
                found=issuer,
            )
        return entry

    def _raise_recent_failure(self, issuer: str, entry: _Entry) -> None:
        if entry.error is None:
            return
        age = self._clock() - entry.last_attempt
        if age < self.min_refresh_interval:
            error = entry.error
            raise type(error)(
                f"{error.message} (failed {age:.0f}s ago; not retried within "
                f"{self.min_refresh_interval:g}s)",
                expected=error.expected,
                found=error.found,
            )

    def _fetch(self, issuer: str, entry: _Entry, *, rediscover: bool) -> KeySet:
        """Fetch (discovery and) JWKS for ``issuer``; caller holds ``entry.lock``."""
        entry.last_attempt = self._clock()
        try:
            metadata = entry.metadata
            if rediscover or metadata is None:
                metadata = fetch_metadata(
                    issuer,
                    transport=self._transport,
                    timeout=self.timeout,
                    max_bytes=self.max_bytes,
                    allow_private=self._allow_private,
                )
            what = f"JWKS of {issuer}"
            check_url(
                metadata.jwks_uri,
                what=what,
                allow_private=self._allow_private,
                allow_loopback=is_loopback_host(urlsplit(issuer).hostname or ""),
            )
            document = get_json(
                self._transport,
                metadata.jwks_uri,
                what=what,
                timeout=self.timeout,
                max_bytes=self.max_bytes,
            )
            keyset = KeySet.from_dict(document, what=f"{what} at {metadata.jwks_uri}")
        except OpkeyError as exc:
            entry.error = exc
            raise
        entry.error = None
        entry.metadata = metadata
        entry.keyset = keyset
        entry.expires = self._clock() + self.ttl
        return keyset

    def _notify(self, issuer: str, keyset: KeySet) -> None:
        if self._observer is not None:
            self._observer(issuer, keyset, self._wall_clock())
