"""The one HTTP seam of opkey: a small :class:`Transport` interface and its requests-based default.

Everything that talks to the network (discovery, JWKS, identity providers, registries) goes
through a :class:`Transport`, so tests and integrators can replace it and the pure core never
builds HTTP clients. The default :class:`RequestsTransport`:

* follows no redirects (a 3xx is a :class:`~opkey.errors.NetworkError`);
* always sets a timeout, which bounds the *whole* request (connect, headers and body), and
  stops reading a body beyond ``max_bytes``;
* goes through the proxy the environment names (``HTTPS_PROXY``, ``NO_PROXY``) and trusts the
  CA bundle it names (``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``), and takes nothing else from
  it;
* maps every transport failure to :class:`~opkey.errors.NetworkError`.

A :class:`Deadline` is the time budget of a whole operation; :class:`DeadlineTransport` makes
every request of that operation draw on it.

:func:`check_url` enforces where opkey may connect: ``https`` only, plain ``http`` only to
loopback (local development) or to hosts the caller names, and never to private, link-local or
otherwise internal addresses unless the caller allows them (SSRF). ``requests`` is imported
lazily: paths that do no network I/O do not pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from opkey.errors import ConfigError, DeadlineError, NetworkError, ResponseTooLargeError
from opkey.remote_text import printable

if TYPE_CHECKING:
    import requests
    import requests.adapters

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "Deadline",
    "DeadlineTransport",
    "HttpResponse",
    "ProxySettings",
    "RequestsTransport",
    "Transport",
    "check_ca_bundle",
    "check_url",
    "is_loopback_host",
]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response (body already read, within the size limit)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


class Transport(Protocol):
    """Performs one HTTP request; raises :class:`NetworkError` on any transport failure.

    A body larger than ``max_bytes`` raises :class:`ResponseTooLargeError`.
    """

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpResponse:
        """Send the request and return the whole response, without following redirects."""
        ...


@dataclass(frozen=True, slots=True)
class Deadline:
    """The moment by which one whole operation (a sign, a verify) must be finished.

    Started once (:meth:`after`) and handed to everything the operation does on the network,
    so that retries, ``Retry-After`` waits, token requests, blob downloads and JWKS fetches all
    draw on one budget instead of each bringing its own. ``clock`` is monotonic seconds.
    """

    expires: float
    budget: float
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now."""
        if not seconds > 0:
            raise ConfigError(f"a deadline must be a positive number of seconds, not {seconds!r}")
        return cls(clock() + float(seconds), float(seconds), clock)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.expires - self.clock()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.remaining() <= 0

    def error(self, what: str) -> DeadlineError:
        """The error saying that ``what`` could not be done in time."""
        return DeadlineError(
            f"{what}: the operation's {self.budget:g}s deadline passed",
            expected=self.budget,
        )

    def timeout(self, requested: float, what: str) -> float:
        """``requested`` seconds, or what is left when less; :class:`DeadlineError` if none."""
        left = self.remaining()
        if left <= 0:
            raise self.error(what)
        return min(requested, left)

    def earlier(self, other: Deadline | None) -> Deadline:
        """Whichever of the two deadlines comes first."""
        if other is None or self.remaining() <= other.remaining():
            return self
        return other

    def bound(self, transport: Transport) -> DeadlineTransport:
        """``transport`` with every request's timeout cut to what is left of this deadline."""
        return DeadlineTransport(transport, self)


@dataclass(frozen=True, slots=True)
class DeadlineTransport:
    """A :class:`Transport` whose requests all share one :class:`Deadline`.

    Each request's timeout becomes the smaller of its own and the time left; a request once the
    deadline has passed is not sent, and a failure after it has passed is a
    :class:`~opkey.errors.DeadlineError` (so that retrying callers stop).
    """

    inner: Transport
    deadline: Deadline

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpResponse:
        """See :class:`Transport`."""
        what = f"{method} {url}"
        bounded = self.deadline.timeout(timeout, what)
        try:
            return self.inner.request(
                method, url, headers=headers, data=data, timeout=bounded, max_bytes=max_bytes
            )
        except ResponseTooLargeError:
            raise
        except NetworkError as exc:
            if self.deadline.expired() and not isinstance(exc, DeadlineError):
                raise self.deadline.error(what) from None
            raise


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


#: IETF protocol assignments (RFC 6890): not routable, yet only part of it is "private" before
#: Python 3.11.9/3.12.4, and 192.0.0.192 served Oracle Cloud's instance metadata.
_IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # ``is_private`` misses the shared address space 100.64.0.0/10 (Alibaba Cloud's metadata
    # service is 100.100.100.200); ``is_global`` covers it and other non-routable ranges.
    return (
        not address.is_global
        or address in _IETF_PROTOCOL_ASSIGNMENTS
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_url(
    url: str,
    *,
    what: str = "URL",
    insecure_hosts: Collection[str] = (),
    allow_private: bool = False,
    resolve: bool = True,
    allow_loopback: bool = True,
) -> None:
    """Raise :class:`NetworkError` unless opkey may connect to ``url``.

    ``https`` is required, except to loopback or to ``insecure_hosts``. Hosts resolving to
    internal addresses are refused unless ``allow_private``. Loopback is allowed (it is where
    local development providers and registries run) unless ``allow_loopback`` is false: a URL
    chosen by a remote party, such as the ``jwks_uri`` of a provider that is not itself on
    loopback, must not reach services on the verifier's own host.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # validates the port
    except ValueError as exc:
        raise NetworkError(f"{what}: invalid URL {url!r} ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise NetworkError(f"{what}: {url!r} is not an http(s) URL", found=url)
    if parts.username is not None or parts.password is not None:
        raise NetworkError(f"{what}: URLs with credentials are not allowed")
    loopback = is_loopback_host(host)
    if loopback and not (allow_loopback or allow_private):
        raise NetworkError(
            f"{what}: {url!r} is on loopback, which only a provider on loopback may use",
            found=host,
        )
    if parts.scheme == "http" and not loopback and host not in insecure_hosts:
        raise NetworkError(
            f"{what}: {url!r} uses plain http; https is required (http only for loopback)",
            expected="https",
            found=parts.scheme,
        )
    if loopback or allow_private or not resolve:
        return
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid IDNA host name
            raise NetworkError(f"{what}: cannot resolve {host!r} ({exc})") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _internal(address) and not (address.is_loopback and allow_loopback):
            raise NetworkError(
                f"{what}: {host!r} resolves to internal address {address}; refusing to connect",
                found=str(address),
            )


def _ca_bundle_from_env(env: Mapping[str, str]) -> str | None:
    """``REQUESTS_CA_BUNDLE``, else ``SSL_CERT_FILE``: the CA bundle the user named, if any."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = env.get(name)
        if value:
            return value
    return None


def check_ca_bundle(path: str, *, what: str = "CA bundle") -> str:
    """``path`` if it names a readable file or directory of certificates, else ConfigError."""
    if not os.path.exists(path):
        raise ConfigError(f"{what} {path!r} does not exist", found=path)
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{what} {path!r} is not readable", found=path)
    return path


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Which proxy a request goes through: ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY``.

    The rules are Go's ``net/http`` ones (what docker, containerd and cosign follow): the proxy
    is chosen by the target's scheme; ``NO_PROXY`` lists host names (matching the name and its
    subdomains, with or without a leading dot), ``host:port`` pairs, IP addresses or CIDR
    ranges, or ``*`` for everything; loopback targets never go through a proxy. A proxy URL
    without a scheme means ``http://``. The proxy is the user's choice and is not checked
    against the SSRF rules; the *target* still is, by :func:`check_url`, before the request.
    """

    https: str | None = None
    http: str | None = None
    no_proxy: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("https", "http"):
            value = getattr(self, name)
            if value:
                object.__setattr__(self, name, _proxy_url(value))
        object.__setattr__(
            self, "no_proxy", tuple(e.strip().lower() for e in self.no_proxy if e.strip())
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProxySettings:
        """The settings of ``env`` (default ``os.environ``); upper case wins over lower case."""
        environ = os.environ if env is None else env

        def get(name: str) -> str | None:
            return environ.get(name.upper()) or environ.get(name.lower()) or None

        no_proxy = get("no_proxy") or ""
        return cls(
            https=get("https_proxy"), http=get("http_proxy"), no_proxy=tuple(no_proxy.split(","))
        )

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for a request to ``url``, or ``None`` to connect directly."""
        parts = urlsplit(url)
        proxy = (
            self.https if parts.scheme == "https" else self.http if parts.scheme == "http" else None
        )
        host = (parts.hostname or "").lower()
        if proxy is None or not host or is_loopback_host(host):
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return None if self._bypassed(host, port) else proxy

    def _bypassed(self, host: str, port: int) -> bool:
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
                host
            )
        except ValueError:
            address = None
        for entry in self.no_proxy:
            if entry == "*":
                return True
            name, entry_port = entry, None
            if entry.startswith("[") and "]" in entry:  # [v6]:port or [v6]
                name, _, rest = entry[1:].partition("]")
                entry_port = rest[1:] if rest.startswith(":") else None
            elif entry.count(":") == 1:
                name, entry_port = entry.split(":")
            if entry_port is not None and entry_port != str(port):
                continue
            if address is not None:
                try:
                    if address in ipaddress.ip_network(name, strict=False):
                        return True
                except ValueError:
                    pass
                continue
            domain = name[2:] if name.startswith("*.") else name.lstrip(".")
            if domain and (host == domain or host.endswith("." + domain)):
                return True
        return False


def _proxy_url(value: str) -> str:
    url = value.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"proxy {value!r}: only http:// and https:// proxies are supported",
            expected="http(s)://HOST:PORT",
            found=value,
        )
    return url


class _Watchdog:
    """Ends a request when its whole-request deadline passes, wherever the request is.

    ``requests`` (urllib3) applies its timeouts to each socket operation, so a server that
    sends one byte at a time keeps a request open indefinitely. The watchdog is armed for the
    whole request (connect, TLS handshake, proxy tunnel, headers, body); when it fires it
    shuts down the socket of every connection the request used, which makes the blocked read
    fail at once. Connections register themselves (see :func:`_watched_adapter`) through a
    thread-local, because urllib3 picks the pooled connection deep inside the call. One
    shared thread (:class:`_Reaper`) fires every watchdog: arming costs a heap push, not a
    thread.
    """

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._connections: list[object] = []
        self.fired = False
        self.stopped = False
        self._when = time.monotonic() + max(0.0, seconds)

    def __enter__(self) -> _Watchdog:
        _ACTIVE.watchdog = self
        _REAPER.schedule(self._when, self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.stopped = True
            self._connections.clear()
        _ACTIVE.watchdog = None

    def watch(self, connection: object) -> None:
        with self._lock:
            if self.fired:
                _shut(connection)
            elif not self.stopped:
                self._connections.append(connection)

    def fire(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.fired = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


class _Reaper:
    """The one daemon thread that fires :class:`_Watchdog` s when their time comes."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._thread: threading.Thread | None = None
        self._count = 0

    def schedule(self, when: float, watchdog: _Watchdog) -> None:
        with self._condition:
            self._count += 1
            heapq.heappush(self._heap, (when, self._count, watchdog))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="opkey-http-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watchdog:
                self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][2].stopped:
                    heapq.heappop(self._heap)  # finished in time: nothing to do
                if not self._heap:
                    self._condition.wait()
                    continue
                when, _, watchdog = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._condition.wait(delay)
                    continue
                heapq.heappop(self._heap)
            watchdog.fire()


_REAPER = _Reaper()
_ACTIVE = threading.local()


def _shut(connection: object) -> None:
    """Shut down a connection's socket from another thread (the reader then sees EOF)."""
    sock = getattr(connection, "sock", None)
    raw = getattr(sock, "socket", sock)  # urllib3's SSLTransport (TLS in TLS) wraps a socket
    if isinstance(raw, socket.socket):
        with contextlib.suppress(OSError):
            # The base method: ssl.SSLSocket.shutdown would also tear down its SSL object,
            # under the feet of the thread that is reading.
            socket.socket.shutdown(raw, socket.SHUT_RDWR)


def _register_with_watchdog(connection: object) -> None:
    watchdog: _Watchdog | None = getattr(_ACTIVE, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(connection)


@functools.cache
def _watched_adapter() -> type[requests.adapters.HTTPAdapter]:
    """An ``HTTPAdapter`` whose connections register with the active :class:`_Watchdog`."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class WatchedHTTPConnection(HTTPConnection):
        def connect(self) -> None:
            _register_with_watchdog(self)
            super().connect()

        def request(self, *args: Any, **kwargs: Any) -> None:
            _register_with_watchdog(self)
            super().request(*args, **kwargs)

    class WatchedHTTPSConnection(WatchedHTTPConnection, HTTPSConnection):
        """The same registration for TLS: ``super()`` in the methods above reaches
        ``HTTPSConnection`` first (the MRO puts it before ``HTTPConnection``), so the TLS
        connect is the one that runs."""

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    pools = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager

    return WatchedAdapter


@dataclass
class RequestsTransport:
    """:class:`Transport` over a ``requests.Session`` (TLS verified, no redirects).

    Every ``timeout`` is a **whole-request deadline**: connecting, the TLS handshake, a proxy
    tunnel, the headers and the body together (see :class:`_Watchdog`), not a limit per read.

    ``verify_tls``: ``True`` (the default roots), ``False`` (never, except in tests), a CA
    bundle path, or ``None`` for the environment's ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE``
    when set (the default roots otherwise). ``proxies``: ``None`` for the environment's
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (:class:`ProxySettings`). Nothing else is taken
    from the environment: no netrc credentials, no implicit settings of ``requests``.
    """

    user_agent: str = "opkey"
    verify_tls: bool | str | None = None
    proxies: ProxySettings | None = None
    _session: requests.Session | None = field(default=None, init=False, repr=False)
    _verify: bool | str = field(default=True, init=False, repr=False)

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests  # heavy: imported only when the network is used

            if self.verify_tls is None:
                bundle = _ca_bundle_from_env(os.environ)
                self._verify = check_ca_bundle(bundle) if bundle else True
            elif isinstance(self.verify_tls, str):
                self._verify = check_ca_bundle(self.verify_tls)
            else:
                self._verify = self.verify_tls
            if self.proxies is None:
                self.proxies = ProxySettings.from_env()
            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            session.trust_env = False  # proxies and CA bundle are resolved above, nothing else
            adapter = _watched_adapter()()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
        return self._session

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpResponse:
        """Send the request; see :class:`Transport`."""
        import http.client  # loaded by requests anyway; not at start-up

        import requests

        session = self._get_session()
        assert self.proxies is not None
        proxy = self.proxies.proxy_for(url)
        scheme = urlsplit(url).scheme
        deadline = time.monotonic() + timeout
        timed_out = f"{method} {url}: timed out after {timeout:g}s"
        with _Watchdog(timeout) as watchdog:
            try:
                response = session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    data=data,
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                    stream=True,
                    verify=self._verify,
                    proxies={scheme: proxy} if proxy else {},
                )
            except requests.Timeout:
                raise NetworkError(timed_out) from None
            except (requests.RequestException, OSError, http.client.HTTPException) as exc:
                if watchdog.fired:
                    raise NetworkError(timed_out) from None
                raise NetworkError(f"{method} {url}: {_reason(exc, proxy)}") from None
            except ValueError as exc:
                # requests parses a redirect's Location even when not following it; a server
                # can make urllib's URL parser raise on it.
                raise NetworkError(
                    f"{method} {url}: unreadable answer ({printable(exc, limit=120)})"
                ) from None
            try:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise ResponseTooLargeError(
                        f"{method} {url}: response of {declared} bytes exceeds the "
                        f"{max_bytes}-byte limit",
                        expected=max_bytes,
                        found=int(declared),
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_content(chunk_size=65536):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ResponseTooLargeError(
                            f"{method} {url}: response exceeds the {max_bytes}-byte limit",
                            expected=max_bytes,
                        )
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise NetworkError(f"{timed_out} reading")
            except requests.Timeout:
                raise NetworkError(f"{timed_out} reading") from None
            except (requests.RequestException, OSError, http.client.HTTPException) as exc:
                if watchdog.fired:
                    raise NetworkError(f"{timed_out} reading") from None
                raise NetworkError(f"{method} {url}: {_reason(exc, proxy)}") from None
            finally:
                response.close()
            if watchdog.fired:
                raise NetworkError(f"{timed_out} reading")
        return HttpResponse(
            status=response.status_code,
            headers=dict(response.headers),
            body=b"".join(chunks),
            url=url,
        )


def _reason(exc: Exception, proxy: str | None = None) -> str:
    from requests.exceptions import ProxyError

    text = str(exc)
    if proxy is not None and isinstance(exc, ProxyError):
        return f"through the proxy {_without_credentials(proxy)}: {printable(text, limit=300)}"
    if "Connection refused" in text or "Failed to establish" in text:
        return "connection refused (is the server running?)"
    return printable(text.splitlines()[0], limit=300) if text else type(exc).__name__


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
