"""What a registry answers, parsed: error bodies, tag-list pages, ``Link`` headers and token
responses. Pure functions of bytes and strings (no I/O), so that the fuzz targets reach the
same code the client runs.

Everything here is remote input: sizes are bounded before parsing (by the client's transport
limits), the JSON parser is the strict one of :mod:`opkey.jose` with the manifest size limit,
and any text that can end up in an error message is made printable
(:func:`opkey.remote_text.printable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from opkey.errors import FormatError, OpkeyError, RegistryError
from opkey.registry.manifest import parse_manifest_json
from opkey.registry.reference import parse_tag
from opkey.remote_text import printable

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_TOKEN_BYTES",
    "TokenResponse",
    "error_entries",
    "next_page",
    "parse_tag_page",
    "parse_token_response",
]

#: Bytes of an error body looked at.
MAX_ERROR_BODY = 64 * 1024
#: Longest bearer token accepted.
MAX_TOKEN_BYTES = 64 * 1024
#: A token's lifetime when the service gives none or an unusable one (distribution's default).
DEFAULT_TOKEN_LIFETIME = 60
#: Longest lifetime believed: a day (tokens are dropped early anyway, see AuthState).
MAX_TOKEN_LIFETIME = 86_400


def error_entries(body: bytes) -> list[tuple[str, str]]:
    """``(code, message)`` pairs of a distribution error body (at most 5), both printable;
    ``[]`` when the body is not one."""
    try:
        document = parse_manifest_json(body[:MAX_ERROR_BODY], what="error body")
    except FormatError:
        return []
    errors = document.get("errors")
    found: list[tuple[str, str]] = []
    if isinstance(errors, list):
        for item in errors[:5]:
            if isinstance(item, dict):
                code, message = item.get("code"), item.get("message")
                found.append(
                    (
                        printable(code, limit=64),
                        printable(message) if isinstance(message, str) else "",
                    )
                )
    return found


def parse_tag_page(body: bytes, *, what: str = "tag list") -> list[str]:
    """The tags of one tag-list page; each must be a valid tag (at most 128 characters)."""
    try:
        document = parse_manifest_json(body, what=what)
    except FormatError as exc:
        raise RegistryError(str(exc)) from None
    page = document.get("tags")
    if page is None:
        return []
    if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
        raise RegistryError(f"{what}: 'tags' is not a list of strings")
    for tag in page:
        try:
            parse_tag(tag, what=what)
        except OpkeyError as exc:
            raise RegistryError(exc.message, found=exc.found) from None
    return page


def next_page(base: str, link: str | None, *, what: str = "tag list") -> str | None:
    """The next page a ``Link: <…>; rel="next"`` header names, resolved against ``base``;
    ``None`` without one. It must stay on ``base``'s host."""
    if not link or 'rel="next"' not in link.replace(" ", ""):
        return None
    start, end = link.find("<"), link.find(">")
    if start < 0 or end < start:
        raise RegistryError(f"{what}: unreadable Link header {printable(link)!r}")
    try:
        target = urljoin(base + "/", link[start + 1 : end])
        same = urlsplit(target).netloc.lower() == urlsplit(base).netloc.lower()
    except ValueError:
        raise RegistryError(f"{what}: unreadable Link header {printable(link)!r}") from None
    if not same:
        raise RegistryError(f"{what}: Link points to another host")
    return target


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A bearer token and how long it may be used (seconds)."""

    token: str
    lifetime: int


def parse_token_response(body: bytes, *, what: str = "token response") -> TokenResponse:
    """The token of a token service's answer (``token``, else ``access_token``) and its
    ``expires_in`` (60 s when absent or unusable, at most a day)."""
    try:
        document = parse_manifest_json(body, what=what)
    except FormatError as exc:
        raise RegistryError(str(exc)) from None
    token = document.get("token") or document.get("access_token")
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise RegistryError(f"{what}: no usable token")
    if " " in token or len(token) > MAX_TOKEN_BYTES:
        raise RegistryError(f"{what}: a malformed token")
    lifetime = document.get("expires_in", DEFAULT_TOKEN_LIFETIME)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return TokenResponse(token, min(lifetime, MAX_TOKEN_LIFETIME))
