"""Choosing a provider from command-line arguments (shared by ``sign`` and ``login``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from opkey.errors import ConfigError

if TYPE_CHECKING:
    from opkey.http import Transport
    from opkey.providers import Provider

__all__ = ["PROVIDERS", "add_provider_arguments", "build_provider"]

PROVIDERS = ("auto", "github-actions", "gitlab-ci", "browser", "device")


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


def build_provider(args: argparse.Namespace, *, transport: Transport | None = None) -> Provider:
    """The provider the arguments ask for; ``transport`` (e.g. bound to the command's
    deadline) carries its requests, key fetches included."""
    from opkey import providers as p
    from opkey.http import RequestsTransport

    kind = args.provider
    if kind == "auto":
        return p.auto_provider(transport=transport)
    if kind == "github-actions":
        return p.GitHubActionsProvider.from_env(issuer=args.issuer, transport=transport)
    if kind == "gitlab-ci":
        return p.GitLabCIProvider.from_env(
            variable=args.gitlab_token_variable, issuer=args.issuer, transport=transport
        )
    client = _oidc_client(args)
    http = transport if transport is not None else RequestsTransport()
    if kind == "browser":
        return p.BrowserProvider(
            client=client, no_browser=args.no_browser, output=sys.stderr, transport=http
        )
    return p.DeviceFlowProvider(client=client, output=sys.stderr, transport=http)
