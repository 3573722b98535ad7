"""OpenID Connect clients for interactive logins: registrations, the built-in clients and
shared steps.

Browser and device logins put the CIC commitment in the ``nonce``; verifiers then check that
the ID token was issued to the expected client (``aud`` contains the client id). The built-in
login clients (:data:`LOGIN_CLIENTS`) are OpenPubkey's public client registrations, so PK
tokens made with them verify under OpenPubkey's default provider settings. Their redirect URIs
are the loopback URIs those registrations allow; the Google "secret" is public by design
(Google requires one even for public clients)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opkey import issuers
from opkey.cic import ClientInstanceClaims
from opkey.errors import ConfigError, ProviderError
from opkey.http import RequestsTransport, Transport, check_url
from opkey.issuers import IssuerConfig
from opkey.jwks.client import JwksClient
from opkey.jwks.discovery import ProviderMetadata
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.providers.base import parse_id_token, require_issuer, self_verify

__all__ = [
    "GITLAB_USER",
    "GOOGLE",
    "LOGIN_CLIENTS",
    "MICROSOFT",
    "OPENPUBKEY_REDIRECT_URIS",
    "LoginProvider",
    "OidcClient",
]

#: The loopback redirect URIs OpenPubkey's public clients are registered with.
OPENPUBKEY_REDIRECT_URIS = (
    "http://localhost:3000/login-callback",
    "http://localhost:10001/login-callback",
    "http://localhost:11110/login-callback",
)


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class OidcClient:
    """An OAuth client registration at an OpenID provider.

    ``redirect_uris`` are loopback candidates tried in order for the browser flow; port 0 (or
    no port) means any free port, which providers following RFC 8252 accept.
    """

    issuer: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1:0/callback",)
    extra_auth_params: Mapping[str, str] = field(default_factory=lambda: _frozen({}))

    def __post_init__(self) -> None:
        if not self.issuer or not self.client_id:
            raise ConfigError("an OIDC client needs an issuer and a client id")
        if "openid" not in self.scopes:
            raise ConfigError(f"scopes {self.scopes!r} must include 'openid'")
        reserved = {"nonce", "state", "code_challenge", "code_challenge_method", "redirect_uri"}
        clash = reserved.intersection(self.extra_auth_params)
        if clash:
            raise ConfigError(f"extra_auth_params may not set {sorted(clash)}")

    @property
    def scope(self) -> str:
        """The space-separated scope string."""
        return " ".join(self.scopes)

    def client_auth(self) -> dict[str, str]:
        """Form members that identify (and, with a secret, authenticate) this client."""
        form = {"client_id": self.client_id}
        if self.client_secret is not None:
            form["client_secret"] = self.client_secret
        return form


_OFFLINE_CONSENT = _frozen({"prompt": "consent", "access_type": "offline"})

GOOGLE = OidcClient(
    issuer=issuers.GOOGLE_ISSUER,
    client_id=issuers.GOOGLE_CLIENT_ID,
    client_secret="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",  # noqa: S106 - public by design
    scopes=("openid", "profile", "email"),
    redirect_uris=OPENPUBKEY_REDIRECT_URIS,
    extra_auth_params=_OFFLINE_CONSENT,
)
MICROSOFT = OidcClient(
    issuer=issuers.MICROSOFT_ISSUER,
    client_id=issuers.MICROSOFT_CLIENT_ID,
    scopes=("openid", "profile", "email", "offline_access"),
    redirect_uris=OPENPUBKEY_REDIRECT_URIS,
    extra_auth_params=_OFFLINE_CONSENT,
)
GITLAB_USER = OidcClient(
    issuer="https://gitlab.com",
    client_id="8d8b7024572c7fd501f64374dec6bba37096783dfcd792b3988104be08cb6923",
    scopes=("openid", "email"),
    redirect_uris=OPENPUBKEY_REDIRECT_URIS,
    extra_auth_params=_OFFLINE_CONSENT,
)
#: The built-in login clients by provider name, as ``--issuer google|microsoft|gitlab`` offers
#: them (how verifiers check each issuer's tokens, its preset, is :mod:`opkey.issuers`).
LOGIN_CLIENTS: Mapping[str, OidcClient] = MappingProxyType(
    {"google": GOOGLE, "microsoft": MICROSOFT, "gitlab": GITLAB_USER}
)


@dataclass
class LoginProvider:
    """What browser and device logins share: the client registration, the HTTP transport, and
    the issuer's keys (for the provider's own check of the PK token it returns)."""

    client: OidcClient
    transport: Transport = field(default_factory=RequestsTransport, repr=False)
    jwks: JwksClient | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.jwks is None:
            self.jwks = JwksClient([self.client.issuer], transport=self.transport)

    @property
    def issuer(self) -> str:
        """The provider's issuer."""
        return self.client.issuer

    def issuer_config(self) -> IssuerConfig:
        """``nonce`` commitment, audience = client id."""
        return issuers.oidc(self.client.issuer, self.client.client_id)

    def _metadata(self) -> ProviderMetadata:
        """The issuer's discovery document (through the JWKS client's cache)."""
        assert self.jwks is not None
        return self.jwks.metadata(self.client.issuer)

    def _finish_login(
        self,
        token_response: Mapping[str, Any],
        cic: ClientInstanceClaims,
        signing_key: SigningKey,
        *,
        what: str,
    ) -> PKToken:
        """Check the ID token of an interactive login and wrap it into a verified PK token:
        however the browser or the device got it, the token must carry the commitment in its
        ``nonce`` and verify as this client's."""
        assert self.jwks is not None
        client = self.client
        id_token = token_response.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError(
                f"{what}: the token response has no id_token (is 'openid' in the scopes?)",
                expected="id_token",
                found=sorted(token_response),
            )
        _, claims = parse_id_token(id_token, what=f"{what} ID token")
        require_issuer(claims, client.issuer, what=f"{what} ID token")
        commitment = cic.commitment()
        if claims.get("nonce") != commitment:
            raise ProviderError(
                f"{what}: the ID token's nonce is not the commitment that was requested",
                expected=commitment,
                found=claims.get("nonce"),
            )
        pktoken = PKToken.create(id_token, cic, signing_key)
        self_verify(pktoken, issuers.oidc(client.issuer, client.client_id), self.jwks, what=what)
        return pktoken


def endpoint(metadata: ProviderMetadata, name: str) -> str:
    """A discovery endpoint opkey may connect to (checked with :func:`check_url`)."""
    try:
        url = metadata.endpoint(name)
    except ConfigError as exc:
        raise ProviderError(str(exc)) from None
    check_url(url, what=f"{metadata.issuer} {name}")
    return url
