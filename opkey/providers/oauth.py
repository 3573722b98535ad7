"""The OAuth 2.0 client of the interactive logins: authlib's, sending through opkey's transport.

authlib's ``OAuth2Session`` (:mod:`authlib.integrations.requests_client`) does the OAuth work
of the browser and device logins: the authorization URL with its PKCE ``S256`` challenge, the
authorization-code and device-code token requests, client authentication (``none`` for public
clients, ``client_secret_post`` with a secret) and the parsing of token responses, whose OAuth
errors it raises as ``OAuthError``.

It is a ``requests.Session``, and ``send()`` is where a session opens connections, follows
redirects and reads bodies without a size limit. :class:`BoundedOAuth2Session` replaces that
one method: every request goes through the provider's :class:`~opkey.http.Transport`, so it is
bounded in time and size, never follows a redirect (a 3xx is a
:class:`~opkey.errors.NetworkError`), and can be replaced in tests like any other request of
opkey's. The body authlib then parses has first passed opkey's strict JSON parser (duplicate
keys, nesting, non-objects are refused), so both read the same document.

opkey stays stricter than authlib where it matters, and keeps its own checks there:

* discovery is opkey's (:mod:`opkey.discovery`): fetched with the issuer's keys, its
  ``issuer`` compared exactly with the configured one, endpoints checked with
  :func:`~opkey.http.check_url`; authlib's metadata class checks neither;
* the redirect's ``state`` and ``iss`` are checked by opkey (constant-time comparisons, RFC
  9207) rather than by authlib's ``parse_authorization_code_response``;
* the ID token is only ever read by opkey's strict parser and verified as a PK token.

Refresh tokens are not used: an ID token obtained by refreshing carries no ``nonce``, so it
cannot commit to a new key, and keeping a refresh token would turn a login session into a
long-lived credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from requests.structures import CaseInsensitiveDict

from opkey.errors import FormatError, ProviderError
from opkey.http import Transport
from opkey.jose import parse_json_object
from opkey.jwks.discovery import ProviderMetadata
from opkey.providers.base import TOKEN_RESPONSE_MAX_BYTES, check_token_response
from opkey.providers.oidc import OidcClient, endpoint
from opkey.remote_text import printable

__all__ = ["BoundedOAuth2Session", "OAuthRefusal", "call"]

_T = TypeVar("_T")

#: What a form POST to an OAuth endpoint sends (authlib's token requests send the same).
_FORM_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "Accept": "application/json",
}


@dataclass(frozen=True, slots=True)
class OAuthRefusal:
    """An OAuth error response (``error``, ``error_description``) from a token-style endpoint.

    A value, not an exception: the device flow expects some of these (``authorization_pending``,
    ``slow_down``); callers turn the others into :class:`~opkey.errors.ProviderError`.
    """

    error: str
    description: str = ""

    def __post_init__(self) -> None:
        # Both come from the provider and end up in messages people read.
        object.__setattr__(self, "error", printable(self.error))
        object.__setattr__(self, "description", printable(self.description))

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


class BoundedOAuth2Session(OAuth2Session):  # type: ignore[misc]  # authlib ships no types
    """authlib's OAuth 2.0 client for ``client``, sending through ``transport`` (module doc)."""

    def __init__(
        self,
        client: OidcClient,
        transport: Transport,
        *,
        token_endpoint: str,
        timeout: float,
    ) -> None:
        super().__init__(
            client_id=client.client_id,
            client_secret=client.client_secret,
            token_endpoint_auth_method=(
                "none" if client.client_secret is None else "client_secret_post"
            ),
            code_challenge_method="S256",
            token_endpoint=token_endpoint,
        )
        self.trust_env = False  # no proxies or netrc credentials from the environment
        self.headers.clear()  # no requests defaults: the transport sets its own User-Agent
        self._transport = transport
        self._timeout = timeout
        self.what = "OAuth request"

    @classmethod
    def at_token_endpoint(
        cls, client: OidcClient, transport: Transport, metadata: ProviderMetadata, *, timeout: float
    ) -> BoundedOAuth2Session:
        """A session for ``client`` at the token endpoint ``metadata`` names (checked as every
        endpoint opkey connects to is, :func:`~opkey.providers.oidc.endpoint`)."""
        return cls(
            client, transport, token_endpoint=endpoint(metadata, "token_endpoint"), timeout=timeout
        )

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send ``request`` through the transport; refuse what opkey refuses (module doc)."""
        body = request.body
        data = body.encode("utf-8") if isinstance(body, str) else body
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        response = self._transport.request(
            str(request.method),
            str(request.url),
            headers=headers,
            data=data,
            timeout=self._timeout,
            max_bytes=TOKEN_RESPONSE_MAX_BYTES,
        )
        oauth_error = False
        if 400 <= response.status < 500:
            try:
                document = parse_json_object(response.body, what=self.what)
                oauth_error = isinstance(document.get("error"), str)
            except FormatError:
                pass
        if not oauth_error:
            # redirects and 5xx: NetworkError; other 4xx and non-JSON: ProviderError
            check_token_response(response, what=self.what)
        result = requests.Response()
        result.status_code = response.status
        result._content = response.body
        result.headers = CaseInsensitiveDict(response.headers)
        result.url = response.url
        result.encoding = "utf-8"
        result.request = request
        return result

    def post_form(
        self, url: str, form: Mapping[str, str], *, what: str
    ) -> dict[str, Any] | OAuthRefusal:
        """POST ``form`` with this client's authentication: the JSON object answered, or the
        OAuth error. For requests authlib has no method for (RFC 8628 device authorization).
        """
        self.what = what
        response = self.request(
            "POST",
            url,
            data=dict(form),
            headers=dict(_FORM_HEADERS),
            auth=self.client_auth(self.token_endpoint_auth_method),
            withhold_token=True,
        )
        document = parse_json_object(response.content, what=what)
        if response.status_code != 200 or "error" in document:
            error, description = document.get("error"), document.get("error_description")
            return OAuthRefusal(
                error if isinstance(error, str) else f"HTTP {response.status_code}",
                description if isinstance(description, str) else "",
            )
        return document

    def request_token(self, *, what: str, **params: str) -> dict[str, Any] | OAuthRefusal:
        """A token request (``grant_type`` and its parameters) to the token endpoint: the
        token response, or the OAuth error."""
        self.what = what
        try:
            token: dict[str, Any] = call(lambda: self.fetch_token(**params), what=what)
        except OAuthError as exc:
            return OAuthRefusal(str(exc.error or ""), str(exc.description or ""))
        return dict(token)


def call(function: Callable[[], _T], *, what: str) -> _T:
    """Run an authlib call; a response it cannot use becomes :class:`ProviderError`.

    authlib converts some response members itself (``expires_in`` with ``int()``), and a
    provider's nonsense there must be an error that names the provider, not a traceback.
    """
    try:
        return function()
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProviderError(f"{what}: the provider's response is not usable ({exc})") from None
    except requests.RequestException as exc:
        raise ProviderError(f"{what}: the request could not be made ({exc})") from None
