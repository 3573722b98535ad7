"""Small helpers shared by the network edge: JSON over :class:`~opkey.http.Transport`.

Discovery, JWKS fetching and the providers all need the same three things: refuse redirects
with a message that says so, turn a non-200 status into a :class:`~opkey.errors.NetworkError`
that names the URL, and parse the body strictly. Keeping them here keeps those messages the
same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opkey.errors import NetworkError
from opkey.http import HttpResponse, Transport
from opkey.jose import parse_json_object

__all__ = ["body_snippet", "check_status", "get_json", "parse_body"]


def body_snippet(response: HttpResponse, limit: int = 200) -> str:
    """A short, printable excerpt of a response body for error messages."""
    text = response.body[:limit].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text + ("…" if len(response.body) > limit else "")


def check_status(
    response: HttpResponse, *, what: str, method: str = "GET", accept: tuple[int, ...] = (200,)
) -> None:
    """Raise :class:`NetworkError` unless the response status is in ``accept`` (``200 OK``).

    Redirects are reported as such: opkey never follows them (a provider that redirects its
    discovery or key URL is misconfigured or is being impersonated).
    """
    status = response.status
    if status in accept:
        return
    if 300 <= status < 400:
        location = response.header("Location")
        raise NetworkError(
            f"{what}: {method} {response.url} answered HTTP {status} redirecting to "
            f"{location!r}; redirects are not followed",
            expected=200,
            found=status,
        )
    snippet = body_snippet(response)
    detail = f": {snippet}" if snippet else ""
    raise NetworkError(
        f"{what}: {method} {response.url} answered HTTP {status}, expected 200{detail}",
        expected=200,
        found=status,
    )


def parse_body(response: HttpResponse, *, what: str) -> dict[str, Any]:
    """The response body as a strict JSON object (:class:`~opkey.errors.FormatError` if not)."""
    return parse_json_object(response.body, what=f"{what} from {response.url}")


def get_json(
    transport: Transport,
    url: str,
    *,
    what: str,
    timeout: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``GET url`` and return its JSON object body; non-200 and redirects are errors."""
    request_headers = {"Accept": "application/json"}
    request_headers.update(headers or {})
    response = transport.request(
        "GET", url, headers=request_headers, timeout=timeout, max_bytes=max_bytes
    )
    check_status(response, what=what)
    return parse_body(response, what=what)
