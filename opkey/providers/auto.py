"""Choosing a provider from the environment: Forgejo Actions, GitHub Actions, then GitLab CI.

Only CI providers are ambient: their identity is the job's, and nothing needs to be asked.
Outside CI there is no safe default (which account? which provider?), so :func:`auto_provider`
asks the caller to choose instead of, say, opening a browser on a build machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opkey.errors import ProviderError
from opkey.http import Transport
from opkey.jwks.client import JwksClient
from opkey.providers.base import Provider
from opkey.providers.forgejo import ForgejoActionsProvider
from opkey.providers.github import GitHubActionsProvider
from opkey.providers.gitlab import GitLabCIProvider

__all__ = ["auto_provider"]


def auto_provider(
    environ: Mapping[str, str] | None = None,
    *,
    transport: Transport | None = None,
    jwks: JwksClient | None = None,
) -> Provider:
    """The ambient CI provider, or :class:`ProviderError` asking for an explicit one."""
    env = os.environ if environ is None else environ
    # Before GitHub: Forgejo runners set GITHUB_ACTIONS=true too.
    if ForgejoActionsProvider.detected(env):
        return ForgejoActionsProvider.from_env(env, transport=transport, jwks=jwks)
    if GitHubActionsProvider.detected(env):
        return GitHubActionsProvider.from_env(env, transport=transport, jwks=jwks)
    if GitLabCIProvider.detected(env):
        return GitLabCIProvider.from_env(env, transport=transport, jwks=jwks)
    raise ProviderError(
        "no CI identity found (neither GITHUB_ACTIONS=true nor GITLAB_CI=true); choose a "
        "provider explicitly: github, gitlab-ci, google, microsoft, gitlab, device, or an "
        "issuer with a client id",
        expected="GITHUB_ACTIONS=true or GITLAB_CI=true",
    )
