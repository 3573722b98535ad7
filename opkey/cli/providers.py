"""Choosing a provider from command-line arguments (shared by ``sign`` and ``login``).

Interactive logins need an OAuth client registration. The built-in ones (``--issuer google``,
``microsoft``, ``gitlab``) are OpenPubkey's public clients: fine for trying opkey, but they
belong to another project, whose consent screen users see and which can change or revoke them.
An organisation registers its own client and passes its id with ``--client-id`` (or
``OPKEY_CLIENT_ID``); a secret, which Google requires even for desktop clients, comes only from
``OPKEY_CLIENT_SECRET``, never from the command line, where other local users can read it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opkey.errors import ConfigError, ProviderError

if TYPE_CHECKING:
    from opkey.http import Transport
    from opkey.providers import Provider

__all__ = [
    "CLIENT_ID_VARIABLE",
    "CLIENT_SECRET_VARIABLE",
    "OWN_CLIENT_REDIRECT_URI",
    "PROVIDERS",
    "add_provider_arguments",
    "build_provider",
]

PROVIDERS = ("auto", "github-actions", "forgejo-actions", "gitlab-ci", "browser", "device")
#: Environment variables configuring one's own OAuth client (``--client-id`` wins over the first).
CLIENT_ID_VARIABLE = "OPKEY_CLIENT_ID"
CLIENT_SECRET_VARIABLE = "OPKEY_CLIENT_SECRET"  # noqa: S105 - a variable name
#: Where the browser login of one's own client returns: any free loopback port.
#: Register ``http://127.0.0.1/login-callback`` (Google desktop clients need nothing, Microsoft
#: ignores the port of loopback redirect URIs, RFC 8252 §7.3).
OWN_CLIENT_REDIRECT_URI = "http://127.0.0.1:0/login-callback"

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
    group.add_argument(
        "--client-id",
        metavar="ID",
        help=f"your own OAuth client id (browser/device; default: ${CLIENT_ID_VARIABLE}, else "
        f"the built-in client of --issuer NAME); a client secret is read from "
        f"${CLIENT_SECRET_VARIABLE}",
    )
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


def _oidc_client(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """The client registration: a preset, a preset's issuer with one's own client, or any."""
    from dataclasses import replace

    from opkey.providers import LOGIN_CLIENTS, OidcClient

    client_id = args.client_id or environ.get(CLIENT_ID_VARIABLE) or None
    secret = environ.get(CLIENT_SECRET_VARIABLE) or None
    name = (args.issuer or "").lower()
    if name in LOGIN_CLIENTS:
        preset = LOGIN_CLIENTS[name]
        if client_id is None:
            return preset
        # One's own client at a known provider: the preset's issuer, scopes and parameters,
        # none of the preset's credentials.
        return replace(
            preset,
            client_id=client_id,
            client_secret=secret,
            redirect_uris=(OWN_CLIENT_REDIRECT_URI,),
        )
    if not args.issuer or client_id is None:
        raise ConfigError(
            f"--provider {args.provider} needs --issuer google|microsoft|gitlab, or --issuer URL "
            f"with --client-id ID (or ${CLIENT_ID_VARIABLE})"
        )
    return OidcClient(
        issuer=args.issuer,
        client_id=client_id,
        client_secret=secret,
        redirect_uris=(OWN_CLIENT_REDIRECT_URI,),
    )


def build_provider(args: argparse.Namespace, *, transport: Transport | None = None) -> Provider:
    """The provider the arguments ask for; ``transport`` (e.g. bound to the command's
    deadline) carries its requests, key fetches included."""
    from opkey import providers as p
    from opkey.http import RequestsTransport

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
        return p.auto_provider(transport=transport)
    if kind == "github-actions":
        return p.GitHubActionsProvider.from_env(issuer=args.issuer, transport=transport)
    if kind == "forgejo-actions":
        return p.ForgejoActionsProvider.from_env(issuer=args.issuer, transport=transport)
    if kind == "gitlab-ci":
        return p.GitLabCIProvider.from_env(
            variable=args.gitlab_token_variable, issuer=args.issuer, transport=transport
        )
    client = _oidc_client(args, os.environ)
    http = transport if transport is not None else RequestsTransport()
    if kind == "browser":
        return p.BrowserProvider(
            client=client, no_browser=args.no_browser, output=sys.stderr, transport=http
        )
    return p.DeviceFlowProvider(client=client, output=sys.stderr, transport=http)
