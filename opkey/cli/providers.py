"""Choosing a provider from command-line arguments (shared by ``sign`` and ``login``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from opkey.errors import ConfigError, ProviderError

if TYPE_CHECKING:
    from opkey.providers import Provider

__all__ = ["PROVIDERS", "add_provider_arguments", "build_provider"]

PROVIDERS = ("auto", "github-actions", "forgejo-actions", "gitlab-ci", "browser", "device")

#: What to do outside CI, in the words ``--provider`` and ``--issuer`` accept.
_CHOOSE = (
    "choose a provider explicitly: --provider browser (or device) with --issuer "
    "google|microsoft|gitlab, or --issuer URL --client-id ID; in CI, --provider "
    "github-actions|forgejo-actions|gitlab-ci"
)


def add_provider_arguments(parser: Any, *, interactive_only: bool = False) -> None:
    """Add ``--provider``, ``--issuer``, ``--client-id`` and friends to ``parser``."""
    choices = ("browser", "device") if interactive_only else PROVIDERS
    group = parser.add_argument_group("identity provider")
    group.add_argument(
        "--provider",
        choices=choices,
        default="browser" if interactive_only else "auto",
        help="where the ID token comes from (default: %(default)s)",
    )
    group.add_argument(
        "--issuer",
        metavar="URL|NAME",
        help="issuer URL, or google, microsoft, gitlab for the built-in clients",
    )
    group.add_argument("--client-id", metavar="ID", help="OAuth client id (browser/device)")
    group.add_argument(
        "--no-browser", action="store_true", help="print the login URL instead of opening it"
    )
    if not interactive_only:
        group.add_argument(
            "--gitlab-token-variable",
            metavar="NAME",
            default="OPENPUBKEY_JWT",
            help="environment variable holding the GitLab CI ID token (default: %(default)s)",
        )


def _oidc_client(args: argparse.Namespace) -> Any:
    from opkey.providers import PRESETS, OidcClient

    name = (args.issuer or "").lower()
    if name in PRESETS and not args.client_id:
        return PRESETS[name]
    if not args.issuer or not args.client_id:
        raise ConfigError(
            f"--provider {args.provider} needs --issuer google|microsoft|gitlab, or --issuer URL "
            "with --client-id ID"
        )
    return OidcClient(issuer=args.issuer, client_id=args.client_id)


def build_provider(args: argparse.Namespace) -> Provider:
    """The provider the arguments ask for."""
    from opkey import providers as p

    kind = args.provider
    if kind == "auto":
        if args.issuer:
            raise ConfigError(
                "--issuer needs --provider: --provider auto finds the CI job's own issuer; name "
                "the provider (--provider github-actions|forgejo-actions|gitlab-ci --issuer URL "
                "for an enterprise instance, or --provider browser|device --issuer URL|NAME)"
            )
        ci = (p.ForgejoActionsProvider, p.GitHubActionsProvider, p.GitLabCIProvider)
        if not any(provider.detected(os.environ) for provider in ci):
            # Said in the words --provider and --issuer accept (not the library's own).
            raise ProviderError(f"no CI identity found in this environment; {_CHOOSE}")
        return p.auto_provider()
    if kind == "github-actions":
        return p.GitHubActionsProvider.from_env(issuer=args.issuer)
    if kind == "forgejo-actions":
        return p.ForgejoActionsProvider.from_env(issuer=args.issuer)
    if kind == "gitlab-ci":
        return p.GitLabCIProvider.from_env(variable=args.gitlab_token_variable, issuer=args.issuer)
    client = _oidc_client(args)
    if kind == "browser":
        return p.BrowserProvider(client=client, no_browser=args.no_browser, output=sys.stderr)
    return p.DeviceFlowProvider(client=client, output=sys.stderr)
