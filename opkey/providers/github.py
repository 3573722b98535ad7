"""GitHub Actions: a PK token from the job's OIDC token, requested with the commitment as ``aud``.

Inside a job that has ``permissions: id-token: write``, GitHub sets
``ACTIONS_ID_TOKEN_REQUEST_URL`` (which already carries a query string, so the audience is
appended with ``&``) and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (a bearer token). The job asks for
an ID token whose ``aud`` is the CIC commitment; the answer is ``{"value": <JWT>}``.

The token is always GQ256-signed before it is published (OpenPubkey's rule for CI providers):
a GitHub ID token is a bearer credential for five minutes, and a PK token attached to a public
artifact must not be replayable as one. The GQ header carries no ``cic``: the commitment is in
``aud``.

The issuer is configuration, never read from the token: GitHub's by default, the dev
provider's when ``OPKEY_DEV_ISSUER`` is set, or whatever the caller passes (GHES, GHEC
enterprise issuers).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from opkey import issuers
from opkey.errors import ProviderError
from opkey.http import RequestsTransport, Transport, check_url
from opkey.issuers import GITHUB_ACTIONS_ISSUER, IssuerConfig
from opkey.jwks.client import JwksClient
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.providers.base import (
    TOKEN_RESPONSE_MAX_BYTES,
    CIJobProvider,
    check_token_response,
    new_cic,
    parse_id_token,
    require_issuer,
)

__all__ = [
    "DEV_ISSUER_VARIABLE",
    "GitHubActionsProvider",
    "with_audience",
]

#: Environment variable naming the dev provider's issuer (written by ``opkey dev-idp``).
DEV_ISSUER_VARIABLE = "OPKEY_DEV_ISSUER"
_PERMISSION_HINT = (
    "the workflow job needs `permissions: id-token: write` for GitHub to provide "
    "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)


def with_audience(url: str, audience: str) -> str:
    """``url`` with ``audience=<audience>`` added to its query (replacing any audience).

    GitHub's request URL already has a query (``?api-version=2.0``), so the parameter must be
    joined with ``&``; the rest of the query is kept byte for byte.
    """
    parts = urlsplit(url)
    kept = [item for item in parts.query.split("&") if item and item.split("=", 1)[0] != "audience"]
    kept.append("audience=" + quote(audience, safe=""))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), parts.fragment))


_Job = TypeVar("_Job", bound="GitHubActionsProvider")


@dataclass
class GitHubActionsProvider(CIJobProvider):
    """PK tokens from a GitHub Actions job (see module doc).

    Build it with :meth:`from_env` inside a job, or directly with the request URL and token.
    """

    JOB_VARIABLE: ClassVar[str] = "GITHUB_ACTIONS"
    #: The issuer when neither the caller nor ``OPKEY_DEV_ISSUER`` names one.
    DEFAULT_ISSUER: ClassVar[str] = GITHUB_ACTIONS_ISSUER

    request_url: str
    request_token: str = field(repr=False)
    issuer: str = GITHUB_ACTIONS_ISSUER
    transport: Transport = field(default_factory=RequestsTransport, repr=False)
    jwks: JwksClient | None = field(default=None, repr=False)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.request_url or not self.request_token:
            raise ProviderError(
                f"GitHub Actions ID token request is not possible: {_PERMISSION_HINT}"
            )
        self._use_issuer_keys()

    @classmethod
    def from_env(
        cls: type[_Job],
        environ: Mapping[str, str] | None = None,
        *,
        issuer: str | None = None,
        transport: Transport | None = None,
        jwks: JwksClient | None = None,
    ) -> _Job:
        """The provider for the current job, from its environment variables.

        The issuer is ``issuer``, else ``OPKEY_DEV_ISSUER`` (the dev provider), else
        :attr:`DEFAULT_ISSUER` (GitHub's).
        """
        env = os.environ if environ is None else environ
        url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
        token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
        if not url or not token:
            missing = [
                name
                for name, value in (
                    ("ACTIONS_ID_TOKEN_REQUEST_URL", url),
                    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", token),
                )
                if not value
            ]
            raise cls.variables_missing(missing)
        return cls(
            request_url=url,
            request_token=token,
            issuer=issuer or env.get(DEV_ISSUER_VARIABLE) or cls.DEFAULT_ISSUER,
            transport=transport if transport is not None else RequestsTransport(),
            jwks=jwks,
        )

    @classmethod
    def variables_missing(cls, missing: list[str]) -> ProviderError:
        """The error for a job without the token request variables ``missing``."""
        return ProviderError(
            f"GitHub Actions ID token request variables are not set ({', '.join(missing)}): "
            f"{_PERMISSION_HINT}",
            expected="permissions: id-token: write",
            found=missing,
        )

    def issuer_config(self) -> IssuerConfig:
        """``aud`` commitment, GQ256 required."""
        return issuers.github_actions(issuer=self.issuer)

    def request_id_token(self, audience: str) -> str:
        """Ask GitHub for an ID token with ``aud`` = ``audience``; return the compact JWT."""
        url = with_audience(self.request_url, audience)
        check_url(url, what="ACTIONS_ID_TOKEN_REQUEST_URL")
        response = self.transport.request(
            "GET",
            url,
            headers={
                "Authorization": f"Bearer {self.request_token}",
                "Accept": "application/json",
            },
            timeout=self.timeout,
            max_bytes=TOKEN_RESPONSE_MAX_BYTES,
        )
        if response.status in (401, 403):
            raise ProviderError(
                f"GitHub refused the ID token request (HTTP {response.status}): the request "
                f"token was not accepted; {_PERMISSION_HINT}",
                found=response.status,
            )
        document = check_token_response(response, what="GitHub Actions ID token request")
        value = document.get("value")
        if not isinstance(value, str) or not value:
            raise ProviderError(
                "GitHub Actions ID token response has no string 'value'",
                expected="value",
                found=sorted(document),
            )
        return value

    def get_pktoken(
        self, signing_key: SigningKey, *, extra_claims: Mapping[str, str] | None = None
    ) -> PKToken:
        """Request the ID token with the commitment as audience, GQ-sign it, wrap it."""
        assert self.jwks is not None
        cic = new_cic(signing_key, extra_claims)
        commitment = cic.commitment()
        id_token = self.request_id_token(commitment)
        what = "GitHub Actions ID token"
        jws, claims = parse_id_token(id_token, what=what)
        require_issuer(
            claims,
            self.issuer,
            what=what,
            hint=f"pass the right issuer (or set {DEV_ISSUER_VARIABLE} for the dev provider)",
        )
        if claims.get("aud") != commitment:
            raise ProviderError(
                f"{what} has aud {claims.get('aud')!r}, not the requested commitment; the "
                "audience parameter was not honoured",
                expected=commitment,
                found=claims.get("aud"),
            )
        return self._gq_pktoken(id_token, jws, cic, signing_key, what=what)
