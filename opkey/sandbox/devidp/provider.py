"""The dev provider's protocol logic: OpenID Connect, OAuth 2.0 and CI token endpoints.

:class:`DevProvider` answers requests given as values (method, path, query, headers, body) and
returns :class:`Reply` values; :mod:`opkey.sandbox.devidp.server` puts it behind a real HTTP server.
It behaves like a strict real provider, because the point of a development provider is that
clients which work against it also work against Google, GitHub or GitLab:

* authorization code flow with PKCE ``S256`` required (``plain`` and missing are refused),
  ``nonce`` carried into the ID token, errors redirected with ``error``/``state`` when the
  redirect URI is trustworthy and shown as a 400 page otherwise (RFC 6749 §4.1.2.1);
* codes are single use (a replayed code also revokes the tokens issued for it, RFC 6749
  §4.1.2) and expire;
* device authorization grant with ``authorization_pending``, ``slow_down``,
  ``expired_token`` and ``access_denied`` (RFC 8628 §3.5);
* refresh tokens, rotated on use, whose ID tokens keep ``iss`` and ``sub``;
* a GitHub Actions–style token endpoint (bearer request token, ``api-version=2.0`` and
  ``audience`` query parameters, ``{"value": <JWT>}``) and a GitLab CI–style one;
* repeated parameters are errors (RFC 6749 §3.1).

Time comes from an injected clock (seconds since the epoch) so tests can expire codes without
sleeping.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from opkey.sandbox.devidp.identities import DevClient, DevUser, GitHubWorkload, GitLabWorkload
from opkey.sandbox.devidp.keyring import KeyRing

__all__ = [
    "DEVICE_GRANT_TYPE",
    "DevIdPSettings",
    "DevProvider",
    "Reply",
]

DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels: no accidental words (RFC 8628 §6.1)
_MAX_PARAM = 2048


@dataclass(frozen=True, slots=True)
class DevIdPSettings:
    """Everything about the dev provider a test or demo may want to choose."""

    user: DevUser = field(default_factory=DevUser)
    clients: tuple[DevClient, ...] = (DevClient(),)
    github: GitHubWorkload = field(default_factory=GitHubWorkload)
    gitlab: GitLabWorkload = field(default_factory=GitLabWorkload)
    #: Bearer token the GitHub/GitLab-style endpoints require; random when ``None``.
    request_token: str | None = None
    id_token_lifetime: int = 3600
    access_token_lifetime: int = 3600
    code_lifetime: int = 60
    device_code_lifetime: int = 600
    device_interval: int = 5
    #: Seconds added to a device code's polling interval after each ``slow_down``.
    slow_down_increment: int = 5
    #: ``False``: the development user refuses every authorization (``access_denied``).
    auto_approve: bool = True

    def client(self, client_id: str) -> DevClient | None:
        """The registered client with this id."""
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response as a value."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, status: int, document: Mapping[str, Any], headers: tuple[tuple[str, str], ...] = ()
    ) -> Reply:
        """A JSON response."""
        return cls(status, json.dumps(document).encode("utf-8"), "application/json", headers)

    @classmethod
    def page(cls, status: int, title: str, message: str, form: str = "") -> Reply:
        """A small HTML page (``message`` is escaped, ``form`` is trusted markup)."""
        body = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{form}</body></html>"
        )
        return cls(status, body.encode("utf-8"), "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str) -> Reply:
        """``302 Found`` to ``location``."""
        return cls(302, b"", "text/plain", (("Location", location), ("Cache-Control", "no-store")))

    def header(self, name: str) -> str | None:
        """A header of this reply by case-insensitive name."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True, slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    scope: str
    auth_time: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class _DeviceGrant:
    client_id: str
    user_code: str
    nonce: str | None
    scope: str
    expires_at: float
    interval: int
    status: str = "pending"  # pending | approved | denied
    last_poll: float | None = None
    auth_time: int | None = None


@dataclass(frozen=True, slots=True)
class _RefreshGrant:
    client_id: str
    scope: str
    auth_time: int


class _ParamError(Exception):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter {name!r} {problem}")
        self.name = name


def _params(query: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        result.setdefault(name, []).append(value)
    return result


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _ParamError(name, "is repeated")
    if len(values[0]) > _MAX_PARAM:
        raise _ParamError(name, "is too long")
    return values[0]


def _with_query(uri: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2), compared in constant time by the
    caller (authlib's own comparison is a plain ``==``)."""
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    challenge: str = create_s256_code_challenge(verifier)
    return challenge


def _oauth_error(
    error: str, description: str, status: int = 400, headers: tuple[tuple[str, str], ...] = ()
) -> Reply:
    return Reply.json(
        status,
        {"error": error, "error_description": description},
        (("Cache-Control", "no-store"), *headers),
    )


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class DevProvider:
    """The request handling of the dev OpenID provider (see module doc); thread-safe."""

    def __init__(
        self,
        issuer: str,
        settings: DevIdPSettings | None = None,
        *,
        keyring: KeyRing | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.settings = settings if settings is not None else DevIdPSettings()
        self.keyring = keyring if keyring is not None else KeyRing()
        self.request_token = self.settings.request_token or secrets.token_urlsafe(32)
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._used_codes: dict[str, tuple[str, ...]] = {}
        self._devices: dict[str, _DeviceGrant] = {}
        self._refresh: dict[str, _RefreshGrant] = {}
        self._access: dict[str, tuple[str, float]] = {}
        self._routes: dict[tuple[str, str], Callable[[str, Mapping[str, str], bytes], Reply]] = {
            ("GET", "/.well-known/openid-configuration"): self._discovery,
            ("GET", "/.well-known/jwks"): self._jwks,
            ("GET", "/authorize"): self._authorize,
            ("POST", "/token"): self._token,
            ("POST", "/device/code"): self._device_authorization,
            ("GET", "/device"): self._device_page,
            ("POST", "/device"): self._device_decide,
            ("GET", "/userinfo"): self._userinfo,
            ("GET", "/github/token"): self._github_token,
            ("GET", "/gitlab/token"): self._gitlab_token,
        }

    # -- URLs -----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL on this provider."""
        return self.issuer + path

    @property
    def github_request_url(self) -> str:
        """The ``ACTIONS_ID_TOKEN_REQUEST_URL`` equivalent; it already carries a query."""
        return self.url("/github/token?api-version=2.0")

    @property
    def gitlab_token_url(self) -> str:
        """Where a GitLab-style ID token can be requested (same bearer token)."""
        return self.url("/gitlab/token")

    # -- minting --------------------------------------------------------------------------

    def now(self) -> int:
        """The provider's current time, whole seconds."""
        return int(self._clock())

    def sign_claims(self, claims: Mapping[str, Any]) -> str:
        """Sign arbitrary claims with the active key (for tests that need odd tokens)."""
        return self.keyring.sign(claims)

    def mint_id_token(
        self,
        client_id: str,
        *,
        nonce: str | None = None,
        auth_time: int | None = None,
        user: DevUser | None = None,
    ) -> str:
        """An ID token for the development user, issued to ``client_id``."""
        now = self.now()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.settings.id_token_lifetime,
            "auth_time": auth_time if auth_time is not None else now,
        }
        claims.update((user or self.settings.user).claims())
        if nonce is not None:
            claims["nonce"] = nonce
        return self.keyring.sign(claims)

    def mint_github_token(self, audience: str | None = None) -> str:
        """A GitHub Actions–style ID token (default audience: the owner's GitHub URL)."""
        workload = self.settings.github
        aud = (
            audience if audience is not None else f"https://github.com/{workload.repository_owner}"
        )
        claims = workload.claims(
            issuer=self.issuer, audience=aud, issued_at=self.now(), jti=str(uuid.uuid4())
        )
        return self.keyring.sign(claims)

    def mint_gitlab_token(self, audience: str | None = None) -> str:
        """A GitLab CI ``id_tokens``-style ID token (static ``aud`` from the settings)."""
        claims = self.settings.gitlab.claims(
            issuer=self.issuer, issued_at=self.now(), jti=str(uuid.uuid4()), audience=audience
        )
        return self.keyring.sign(claims)

    # -- dispatch -------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes = b"",
    ) -> Reply:
        """Answer one request. ``headers`` keys must be lower case."""
        handler = self._routes.get((method, path))
        if handler is None:
            if any(route_path == path for _, route_path in self._routes):
                return Reply.json(405, {"error": "method_not_allowed"})
            return Reply.json(404, {"error": "not_found", "path": path})
        if method == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                if path == "/device":
                    return Reply.page(400, "Bad request", "expected a submitted form")
                return _oauth_error(
                    "invalid_request",
                    "expected Content-Type application/x-www-form-urlencoded",
                )
            try:
                query = body.decode("utf-8")
            except UnicodeDecodeError:
                return _oauth_error("invalid_request", "request body is not UTF-8")
        return handler(query, headers, body)

    # -- discovery and keys ---------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        """``/.well-known/openid-configuration``."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/authorize"),
            "token_endpoint": self.url("/token"),
            "device_authorization_endpoint": self.url("/device/code"),
            "userinfo_endpoint": self.url("/userinfo"),
            "jwks_uri": self.url("/.well-known/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT_TYPE],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "email",
                "email_verified",
                "name",
                "preferred_username",
            ],
            "authorization_response_iss_parameter_supported": True,
        }

    def _discovery(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        return Reply.json(200, self.discovery_document())

    def _jwks(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        return Reply.json(200, self.keyring.jwks(), (("Cache-Control", "public, max-age=300"),))

    # -- authorization endpoint -----------------------------------------------------------

    def _authorize(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        params = _params(query)
        # Until client and redirect URI are known good, errors must not redirect anywhere.
        try:
            client_id = _single(params, "client_id")
            redirect_uri = _single(params, "redirect_uri")
        except _ParamError as exc:
            return Reply.page(400, "Invalid request", str(exc))
        if client_id is None:
            return Reply.page(400, "Invalid request", "the client_id parameter is missing")
        client = self.settings.client(client_id)
        if client is None:
            return Reply.page(400, "Invalid client", f"unknown client_id {client_id!r}")
        if redirect_uri is None:
            return Reply.page(400, "Invalid request", "the redirect_uri parameter is missing")
        if not client.accepts_redirect(redirect_uri):
            return Reply.page(
                400,
                "Invalid redirect_uri",
                f"redirect_uri {redirect_uri!r} is not registered for client {client_id!r}",
            )
        state_values = params.get("state", [])
        state = state_values[0] if len(state_values) == 1 else None

        def error(code: str, description: str) -> Reply:
            extra = {"error": code, "error_description": description}
            if state is not None:
                extra["state"] = state
            extra["iss"] = self.issuer
            return Reply.redirect(_with_query(redirect_uri, extra))

        try:
            for name in params:
                _single(params, name)
        except _ParamError as exc:
            return error("invalid_request", str(exc))
        response_type = _single(params, "response_type")
        if response_type is None:
            return error("invalid_request", "response_type is missing")
        if response_type != "code":
            return error(
                "unsupported_response_type", f"response_type {response_type!r}; only 'code'"
            )
        scope = _single(params, "scope") or ""
        if "openid" not in scope.split():
            return error("invalid_scope", "scope must include 'openid'")
        method = _single(params, "code_challenge_method")
        challenge = _single(params, "code_challenge")
        if challenge is None:
            return error("invalid_request", "PKCE is required: code_challenge is missing")
        if method is None:
            return error(
                "invalid_request",
                "PKCE code_challenge_method is missing (plain is not accepted; use S256)",
            )
        if method != "S256":
            return error(
                "invalid_request", f"transform algorithm {method!r} not supported; use S256"
            )
        if not _S256_CHALLENGE.fullmatch(challenge):
            return error("invalid_request", "code_challenge is not a base64url SHA-256 digest")
        if not self.settings.auto_approve:
            return error("access_denied", "the development user denied the request")
        nonce = _single(params, "nonce")
        now = self._clock()
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                code_challenge=challenge,
                nonce=nonce,
                scope=scope,
                auth_time=int(now),
                expires_at=now + self.settings.code_lifetime,
            )
        result = {"code": code}
        if state is not None:
            result["state"] = state
        result["iss"] = self.issuer
        return Reply.redirect(_with_query(redirect_uri, result))

    # -- token endpoint -------------------------------------------------------------------

    def _authenticate(
        self, params: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> DevClient | Reply:
        invalid = (("WWW-Authenticate", 'Basic realm="opkey-dev"'),)
        body_id = _single(params, "client_id")
        body_secret = _single(params, "client_secret")
        auth = headers.get("authorization", "")
        basic_id = basic_secret = None
        if auth:
            scheme, _, encoded = auth.partition(" ")
            if scheme.lower() != "basic":
                return _oauth_error("invalid_client", "unsupported client authentication", 401)
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except ValueError:
                return _oauth_error("invalid_client", "malformed Basic credentials", 401, invalid)
            raw_id, colon, raw_secret = decoded.partition(":")
            if not colon:
                return _oauth_error("invalid_client", "malformed Basic credentials", 401, invalid)
            basic_id, basic_secret = unquote(raw_id), unquote(raw_secret)
            if body_id is not None and body_id != basic_id:
                return _oauth_error("invalid_request", "client_id differs from Basic credentials")
        client_id = basic_id if basic_id is not None else body_id
        secret = basic_secret if basic_secret is not None else body_secret
        if client_id is None:
            return _oauth_error("invalid_client", "no client_id", 401, invalid)
        client = self.settings.client(client_id)
        if client is None:
            return _oauth_error("invalid_client", f"unknown client {client_id!r}", 401, invalid)
        if client.client_secret is not None and not (
            secret is not None
            and hmac.compare_digest(secret.encode("utf-8"), client.client_secret.encode("utf-8"))
        ):
            return _oauth_error("invalid_client", "client authentication failed", 401, invalid)
        return client

    def _client_request(
        self, query: str, headers: Mapping[str, str]
    ) -> tuple[dict[str, list[str]], DevClient] | Reply:
        """The parameters and the authenticated client of a request to the token or the
        device authorization endpoint (RFC 6749 §3.2: no parameter twice, the client
        authenticated alike), or the error reply."""
        params = _params(query)
        try:
            for name in params:
                _single(params, name)
        except _ParamError as exc:
            return _oauth_error("invalid_request", str(exc))
        client = self._authenticate(params, headers)
        if isinstance(client, Reply):
            return client
        return params, client

    def _token(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        request = self._client_request(query, headers)
        if isinstance(request, Reply):
            return request
        params, client = request
        grant_type = _single(params, "grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(params, client)
        if grant_type == DEVICE_GRANT_TYPE:
            return self._exchange_device_code(params, client)
        if grant_type == "refresh_token":
            return self._exchange_refresh_token(params, client)
        if grant_type is None:
            return _oauth_error("invalid_request", "grant_type is missing")
        return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r}")

    def _issue(
        self, client: DevClient, *, scope: str, nonce: str | None, auth_time: int
    ) -> tuple[Reply, str, str]:
        access_token = secrets.token_urlsafe(32)
        refresh_token = secrets.token_urlsafe(32)
        id_token = self.mint_id_token(client.client_id, nonce=nonce, auth_time=auth_time)
        lifetime = self.settings.access_token_lifetime
        with self._lock:
            self._access[access_token] = (self.settings.user.sub, self._clock() + lifetime)
            self._refresh[refresh_token] = _RefreshGrant(client.client_id, scope, auth_time)
        reply = Reply.json(
            200,
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "scope": scope,
                "id_token": id_token,
                "refresh_token": refresh_token,
            },
            (("Cache-Control", "no-store"), ("Pragma", "no-cache")),
        )
        return reply, access_token, refresh_token

    def _revoke(self, tokens: tuple[str, ...]) -> None:
        with self._lock:
            for token in tokens:
                self._access.pop(token, None)
                self._refresh.pop(token, None)

    def _exchange_code(self, params: Mapping[str, list[str]], client: DevClient) -> Reply:
        code = _single(params, "code")
        if code is None:
            return _oauth_error("invalid_request", "code is missing")
        with self._lock:
            record = self._codes.pop(code, None)  # single use, even when the exchange fails
            replayed = self._used_codes.get(code)
            if record is not None:
                self._used_codes[code] = ()
        if record is None:
            if replayed is not None:
                self._revoke(replayed)
                return _oauth_error(
                    "invalid_grant", "authorization code already used; its tokens are revoked"
                )
            return _oauth_error("invalid_grant", "unknown authorization code")
        if record.client_id != client.client_id:
            return _oauth_error("invalid_grant", "authorization code was issued to another client")
        if self._clock() > record.expires_at:
            return _oauth_error("invalid_grant", "authorization code expired")
        if _single(params, "redirect_uri") != record.redirect_uri:
            return _oauth_error(
                "invalid_grant", "redirect_uri differs from the authorization request"
            )
        verifier = _single(params, "code_verifier")
        if verifier is None:
            return _oauth_error("invalid_request", "PKCE code_verifier is missing")
        if not _VERIFIER.fullmatch(verifier):
            return _oauth_error("invalid_request", "code_verifier must be 43-128 unreserved chars")
        if not hmac.compare_digest(_s256(verifier), record.code_challenge):
            return _oauth_error("invalid_grant", "PKCE verification failed")
        reply, access_token, refresh_token = self._issue(
            client, scope=record.scope, nonce=record.nonce, auth_time=record.auth_time
        )
        with self._lock:
            self._used_codes[code] = (access_token, refresh_token)
        return reply

    def _exchange_device_code(self, params: Mapping[str, list[str]], client: DevClient) -> Reply:
        device_code = _single(params, "device_code")
        if device_code is None:
            return _oauth_error("invalid_request", "device_code is missing")
        now = self._clock()
        with self._lock:
            grant = self._devices.get(device_code)
            if grant is None or grant.client_id != client.client_id:
                return _oauth_error("invalid_grant", "unknown device_code")
            if now > grant.expires_at:
                return _oauth_error("expired_token", "the device code has expired")
            if grant.status == "denied":
                return _oauth_error("access_denied", "the user denied the request")
            if grant.status == "pending":
                too_fast = grant.last_poll is not None and now - grant.last_poll < grant.interval
                interval = grant.interval + (self.settings.slow_down_increment if too_fast else 0)
                self._devices[device_code] = replace(grant, last_poll=now, interval=interval)
                if too_fast:
                    return _oauth_error(
                        "slow_down", f"polling too fast; wait {interval} seconds between polls"
                    )
                return _oauth_error("authorization_pending", "the user has not approved yet")
            del self._devices[device_code]
        auth_time = grant.auth_time if grant.auth_time is not None else int(now)
        reply, _, _ = self._issue(client, scope=grant.scope, nonce=grant.nonce, auth_time=auth_time)
        return reply

    def _exchange_refresh_token(self, params: Mapping[str, list[str]], client: DevClient) -> Reply:
        token = _single(params, "refresh_token")
        if token is None:
            return _oauth_error("invalid_request", "refresh_token is missing")
        with self._lock:
            grant = self._refresh.get(token)
            if grant is None or grant.client_id != client.client_id:
                return _oauth_error("invalid_grant", "unknown or revoked refresh token")
            del self._refresh[token]  # rotated: each refresh token works once
        reply, _, _ = self._issue(client, scope=grant.scope, nonce=None, auth_time=grant.auth_time)
        return reply

    # -- device flow ----------------------------------------------------------------------

    def _device_authorization(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        request = self._client_request(query, headers)
        if isinstance(request, Reply):
            return request
        params, client = request
        scope = _single(params, "scope") or ""
        if "openid" not in scope.split():
            return _oauth_error("invalid_scope", "scope must include 'openid'")
        device_code = secrets.token_urlsafe(32)
        letters = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
        user_code = f"{letters[:4]}-{letters[4:]}"
        settings = self.settings
        with self._lock:
            self._devices[device_code] = _DeviceGrant(
                client_id=client.client_id,
                user_code=user_code,
                nonce=_single(params, "nonce"),
                scope=scope,
                expires_at=self._clock() + settings.device_code_lifetime,
                interval=settings.device_interval,
            )
        verification_uri = self.url("/device")
        return Reply.json(
            200,
            {
                "device_code": device_code,
                "user_code": user_code,
                "verification_uri": verification_uri,
                "verification_uri_complete": _with_query(
                    verification_uri, {"user_code": user_code}
                ),
                "expires_in": settings.device_code_lifetime,
                "interval": settings.device_interval,
            },
            (("Cache-Control", "no-store"),),
        )

    def _device_page(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        params = _params(query)
        user_code = html.escape((params.get("user_code") or [""])[0][:32], quote=True)
        form = (
            "<form method='post' action='/device'>"
            f"<label>Code <input name='user_code' value='{user_code}'></label>"
            "<button name='action' value='approve'>Approve</button>"
            "<button name='action' value='deny'>Deny</button></form>"
        )
        user = html.escape(self.settings.user.email)
        return Reply.page(200, "Device login", f"Sign in a device as {user}.", form)

    def approve_device(self, user_code: str, *, approve: bool = True) -> bool:
        """Approve (or deny) the pending device grant with ``user_code``; ``False`` if none."""
        wanted = re.sub(r"[^A-Z]", "", user_code.upper())
        now = self._clock()
        with self._lock:
            for device_code, grant in self._devices.items():
                if grant.user_code.replace("-", "") != wanted or grant.status != "pending":
                    continue
                if now > grant.expires_at:
                    return False
                self._devices[device_code] = replace(
                    grant, status="approved" if approve else "denied", auth_time=int(now)
                )
                return True
        return False

    def _device_decide(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        params = _params(query)
        user_code = (params.get("user_code") or [""])[0]
        action = (params.get("action") or ["approve"])[0]
        if action not in ("approve", "deny"):
            return Reply.page(400, "Bad request", f"unknown action {action!r}")
        if not self.approve_device(user_code, approve=action == "approve"):
            return Reply.page(400, "Unknown code", "no pending device login has this code")
        done = "approved" if action == "approve" else "denied"
        return Reply.page(200, f"Device {done}", "You can return to your device.")

    # -- userinfo -------------------------------------------------------------------------

    def _userinfo(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        token = _bearer(headers)
        with self._lock:
            record = self._access.get(token) if token else None
        if record is None or self._clock() > record[1]:
            return Reply.json(
                401,
                {"error": "invalid_token"},
                (("WWW-Authenticate", 'Bearer error="invalid_token"'),),
            )
        return Reply.json(200, self.settings.user.claims())

    # -- CI-style endpoints ---------------------------------------------------------------

    def _ci_request(self, query: str, headers: Mapping[str, str]) -> Reply | str | None:
        """Check the bearer request token and parameters; the requested audience or a reply."""
        token = _bearer(headers)
        if token is None or not hmac.compare_digest(
            token.encode("utf-8"), self.request_token.encode("utf-8")
        ):
            return Reply.json(
                401,
                {"message": "Bad credentials: a valid bearer request token is required"},
                (("WWW-Authenticate", "Bearer"),),
            )
        params = _params(query)
        try:
            for name in params:
                _single(params, name)
        except _ParamError as exc:
            return Reply.json(400, {"message": str(exc)})
        audience = _single(params, "audience")
        if audience == "":
            return Reply.json(400, {"message": "audience must not be empty"})
        return audience

    def _github_token(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        result = self._ci_request(query, headers)
        if isinstance(result, Reply):
            return result
        if _params(query).get("api-version") != ["2.0"]:
            return Reply.json(400, {"message": "api-version=2.0 is required in the query"})
        return Reply.json(200, {"value": self.mint_github_token(result)})

    def _gitlab_token(self, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        result = self._ci_request(query, headers)
        if isinstance(result, Reply):
            return result
        return Reply.json(200, {"value": self.mint_gitlab_token(result)})
