"""Forgejo Actions (Codeberg and self-hosted Forgejo): GitHub's token request on another issuer.

A Forgejo runner gives a job the same two variables GitHub does,
``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``; the job asks for an ID
token with ``audience=<commitment>`` and gets ``{"value": <JWT>}`` back, exactly as on GitHub
(OpenPubkey's ``ForgejoOp`` works the same way). The token is GQ256-signed before it is
published and the commitment is in ``aud``.

Only the issuer differs: every Forgejo instance is its own issuer, ``<instance>/api/actions``.
It is configuration: given by the caller, else ``OPKEY_DEV_ISSUER`` (the dev provider), else
derived from the request URL (a runner of ``https://codeberg.org`` asks
``https://codeberg.org/api/actions/…``), never read from the token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from opkey import issuers
from opkey.errors import ProviderError
from opkey.issuers import IssuerConfig
from opkey.providers.github import GitHubActionsProvider

__all__ = ["ForgejoActionsProvider"]


@dataclass
class ForgejoActionsProvider(GitHubActionsProvider):
    """PK tokens from a Forgejo Actions job (see module doc). ``issuer`` is required unless
    it can be derived from ``request_url``; :meth:`from_env` takes it from the caller, else
    ``OPKEY_DEV_ISSUER``, else the instance of the request URL."""

    issuer: str = ""

    def __post_init__(self) -> None:
        if not self.issuer:
            derived = issuers.forgejo_issuer_from_request_url(self.request_url or "")
            if derived is None:
                raise ProviderError(
                    "Forgejo Actions: no issuer given, and the request URL "
                    f"{self.request_url!r} does not name an instance (…/api/actions/…)",
                    expected=f"<instance>{issuers.FORGEJO_ISSUER_SUFFIX}",
                )
            self.issuer = derived
        super().__post_init__()

    #: Every instance is its own issuer: derived from the request URL when none is named.
    DEFAULT_ISSUER: ClassVar[str] = ""

    @classmethod
    def detected(cls, environ: Mapping[str, str] | None = None) -> bool:
        """Whether this process runs in a Forgejo Actions job: a request URL on a Forgejo
        instance (Forgejo runners also set ``GITHUB_ACTIONS=true``)."""
        env = os.environ if environ is None else environ
        url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
        return env.get("FORGEJO_ACTIONS") == "true" or (
            bool(url) and issuers.forgejo_issuer_from_request_url(url) is not None
        )

    @classmethod
    def variables_missing(cls, missing: list[str]) -> ProviderError:
        """The error for a job without the token request variables."""
        return ProviderError(
            "Forgejo Actions ID token request variables are not set "
            "(ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN): the workflow "
            "job needs `permissions: id-token: write`",
            expected="permissions: id-token: write",
        )

    def issuer_config(self) -> IssuerConfig:
        """``aud`` commitment, GQ256 required, this instance's issuer."""
        return issuers.forgejo_actions(issuer=self.issuer)
