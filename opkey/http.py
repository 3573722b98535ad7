"""The one HTTP seam of opkey: a small :class:`Transport` interface and its requests-based default.

Everything that talks to the network (discovery, JWKS, identity providers, registries) goes
through a :class:`Transport`, so tests and integrators can replace it and the pure core never
builds HTTP clients. The default :class:`RequestsTransport`:

* follows no redirects (a 3xx is a :class:`~opkey.errors.NetworkError`);
* always sets a timeout, and stops reading a body beyond ``max_bytes``;
* maps every transport failure to :class:`~opkey.errors.NetworkError`.

:func:`check_url` enforces where opkey may connect: ``https`` only, plain ``http`` only to
loopback (local development) or to hosts the caller names, and never to private, link-local or
otherwise internal addresses unless the caller allows them (SSRF). ``requests`` is imported
lazily: paths that do no network I/O do not pay for it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from opkey.errors import NetworkError, ResponseTooLargeError

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "HttpResponse",
    "RequestsTransport",
    "Transport",
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


@dataclass
class RequestsTransport:
    """:class:`Transport` over a ``requests.Session`` (TLS verified, no redirects)."""

    user_agent: str = "opkey"
    verify_tls: bool | str = True
    _session: requests.Session | None = field(default=None, init=False, repr=False)

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests  # heavy: imported only when the network is used

            session = requests.Session()
            session.headers["User-Agent"] = self.user_agent
            session.trust_env = False  # no proxies or netrc credentials picked up implicitly
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
        import requests

        session = self._get_session()
        deadline = time.monotonic() + timeout
        try:
            response = session.request(
                method,
                url,
                headers=dict(headers or {}),
                data=data,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
                verify=self.verify_tls,
            )
        except requests.Timeout:
            raise NetworkError(f"{method} {url}: timed out after {timeout:g}s") from None
        except requests.RequestException as exc:
            raise NetworkError(f"{method} {url}: {_reason(exc)}") from None
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
                    raise NetworkError(f"{method} {url}: timed out after {timeout:g}s reading")
        except requests.Timeout:
            raise NetworkError(f"{method} {url}: timed out reading the response") from None
        except requests.RequestException as exc:
            raise NetworkError(f"{method} {url}: {_reason(exc)}") from None
        finally:
            response.close()
        return HttpResponse(
            status=response.status_code,
            headers=dict(response.headers),
            body=b"".join(chunks),
            url=url,
        )


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text or "Failed to establish" in text:
        return "connection refused (is the server running?)"
    return text.splitlines()[0][:300] if text else type(exc).__name__
