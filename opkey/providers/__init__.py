"""Providers: ways to obtain a PK token for an ephemeral key from an OpenID provider.

* :class:`GitHubActionsProvider`: a GitHub Actions job (``aud`` commitment, always GQ256);
* :class:`ForgejoActionsProvider`: a Forgejo Actions job (GitHub's scheme, per-instance issuer);
* :class:`GitLabCIProvider`: a GitLab CI job's ``id_tokens`` (GQ-bound commitment);
* :class:`BrowserProvider`: a person signing in through a browser (``nonce`` commitment),
  with the built-in clients :data:`GOOGLE`, :data:`MICROSOFT`, :data:`GITLAB_USER`
  (:data:`LOGIN_CLIENTS` by name) or any issuer;
* :class:`DeviceFlowProvider`: the same on a headless machine (RFC 8628);
* :class:`StaticProvider`: an ID token the integrator obtained itself;
* :func:`auto_provider`: the ambient CI provider.

Each returns, from ``get_pktoken(signing_key)``, a PK token it has already verified against
the issuer's published keys, and tells verifiers how to check it (``issuer_config()``).
"""

from __future__ import annotations

from opkey.providers.auto import auto_provider
from opkey.providers.base import Provider
from opkey.providers.browser import BrowserProvider
from opkey.providers.device import DeviceFlowProvider, DevicePrompt
from opkey.providers.forgejo import ForgejoActionsProvider
from opkey.providers.github import GitHubActionsProvider
from opkey.providers.gitlab import GitLabCIProvider
from opkey.providers.oidc import GITLAB_USER, GOOGLE, LOGIN_CLIENTS, MICROSOFT, OidcClient
from opkey.providers.static import StaticProvider

__all__ = [
    "GITLAB_USER",
    "GOOGLE",
    "LOGIN_CLIENTS",
    "MICROSOFT",
    "BrowserProvider",
    "DeviceFlowProvider",
    "DevicePrompt",
    "ForgejoActionsProvider",
    "GitHubActionsProvider",
    "GitLabCIProvider",
    "OidcClient",
    "Provider",
    "StaticProvider",
    "auto_provider",
]
