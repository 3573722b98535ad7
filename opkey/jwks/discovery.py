"""OpenID Connect discovery: an issuer's metadata document, fetched and checked.

``<issuer>/.well-known/openid-configuration`` tells a client where the provider's keys
(``jwks_uri``) and endpoints are. The document's ``issuer`` must equal the issuer the caller
configured *exactly* (OpenID Connect Discovery §4.3): a trailing slash, another scheme or
another letter case is a different issuer, and accepting it would let one provider's
discovery speak for another. Endpoint URLs are checked with :func:`opkey.http.check_url`
(https only, plain http only on loopback) before opkey connects to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opkey._httpjson import get_json
from opkey.errors import ConfigError, FormatError, NetworkError
from opkey.http import DEFAULT_MAX_BYTES, Transport, check_url

__all__ = ["ProviderMetadata", "discovery_url", "fetch_metadata", "validate_issuer"]

_WELL_KNOWN = "/.well-known/openid-configuration"
_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "userinfo_endpoint",
)


def validate_issuer(issuer: str, *, allow_private: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``issuer`` is a usable issuer identifier.

    An issuer is an https URL (plain http only on loopback) with no query or fragment. The
    host is not resolved here; :func:`fetch_metadata` checks it again before connecting.
    """
    if not issuer:
        raise ConfigError(f"issuer must be a non-empty URL string, found {issuer!r}")
    try:
        check_url(issuer, what=f"issuer {issuer!r}", allow_private=allow_private, resolve=False)
    except NetworkError as exc:
        raise ConfigError(str(exc), expected="https URL", found=issuer) from None
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        raise ConfigError(
            f"issuer {issuer!r} must not have a query or fragment", expected="https URL"
        )


def discovery_url(issuer: str) -> str:
    """Where ``issuer`` publishes its metadata (a terminating ``/`` is dropped first)."""
    return issuer.rstrip("/") + _WELL_KNOWN


def _optional_str(document: Mapping[str, Any], name: str, what: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FormatError(f"{what}: {name!r} must be a non-empty string, found {value!r}")
    return value


def _str_list(document: Mapping[str, Any], name: str, what: str) -> tuple[str, ...]:
    value = document.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FormatError(f"{what}: {name!r} must be an array of strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of a provider's discovery document opkey uses."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    code_challenge_methods_supported: tuple[str, ...] = ()
    id_token_signing_alg_values_supported: tuple[str, ...] = ()
    source: str = ""

    @classmethod
    def from_document(
        cls, document: Mapping[str, Any], *, expected_issuer: str, source: str = "discovery"
    ) -> ProviderMetadata:
        """Validate a decoded discovery document for ``expected_issuer``."""
        what = f"discovery document {source}"
        found = document.get("issuer")
        if found != expected_issuer:
            raise ConfigError(
                f"{what} names issuer {found!r}, but the configured issuer is "
                f"{expected_issuer!r}; they must be equal exactly (scheme, case and trailing "
                "slash included)",
                expected=expected_issuer,
                found=found,
            )
        jwks_uri = _optional_str(document, "jwks_uri", what)
        if jwks_uri is None:
            raise FormatError(f"{what}: 'jwks_uri' is missing")
        endpoints = {name: _optional_str(document, name, what) for name in _ENDPOINTS}
        return cls(
            issuer=expected_issuer,
            jwks_uri=jwks_uri,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            device_authorization_endpoint=endpoints["device_authorization_endpoint"],
            userinfo_endpoint=endpoints["userinfo_endpoint"],
            code_challenge_methods_supported=_str_list(
                document, "code_challenge_methods_supported", what
            ),
            id_token_signing_alg_values_supported=_str_list(
                document, "id_token_signing_alg_values_supported", what
            ),
            source=source,
        )

    def endpoint(self, name: str) -> str:
        """An endpoint URL by metadata name; :class:`ConfigError` if the provider has none."""
        value = getattr(self, name, None) if name in _ENDPOINTS else None
        if not isinstance(value, str):
            raise ConfigError(
                f"issuer {self.issuer} publishes no {name} in its discovery document",
                expected=name,
            )
        return value


def fetch_metadata(
    issuer: str,
    *,
    transport: Transport,
    timeout: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_private: bool = False,
) -> ProviderMetadata:
    """Fetch and validate ``issuer``'s discovery document.

    Raises :class:`~opkey.errors.NetworkError` (unreachable, timeout, non-200, redirect,
    oversize, a URL opkey may not connect to), :class:`~opkey.errors.FormatError` (not a JSON
    object, wrong member types) or :class:`ConfigError` (the document names another issuer).
    """
    url = discovery_url(issuer)
    check_url(url, what=f"discovery for {issuer}", allow_private=allow_private)
    document = get_json(
        transport,
        url,
        what=f"discovery for {issuer}",
        timeout=timeout,
        max_bytes=max_bytes,
    )
    return ProviderMetadata.from_document(document, expected_issuer=issuer, source=url)
