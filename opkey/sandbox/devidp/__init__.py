"""A real OpenID provider for development, demos and tests, running on loopback.

It serves discovery, a rotating JWKS, the authorization code flow with PKCE, the device flow,
refresh tokens, a GitHub Actions–style token endpoint and GitLab CI–style ID tokens, all for a
configurable development identity. ``opkey dev-idp`` runs it standalone; tests and
``opkey demo`` start it in-process with :class:`DevIdP`.
"""

from __future__ import annotations

from opkey.sandbox.devidp.identities import (
    DEFAULT_CLIENT_ID,
    DEFAULT_REDIRECT_URIS,
    DevClient,
    DevUser,
    GitHubWorkload,
    GitLabWorkload,
)
from opkey.sandbox.devidp.keyring import DevKey, KeyRing
from opkey.sandbox.devidp.provider import DEVICE_GRANT_TYPE, DevIdPSettings, DevProvider, Reply
from opkey.sandbox.devidp.server import DevIdP

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_REDIRECT_URIS",
    "DEVICE_GRANT_TYPE",
    "DevClient",
    "DevIdP",
    "DevIdPSettings",
    "DevKey",
    "DevProvider",
    "DevUser",
    "GitHubWorkload",
    "GitLabWorkload",
    "KeyRing",
    "Reply",
]
