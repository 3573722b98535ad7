"""``opkey login``: sign in interactively and get a PK token for an ephemeral key.

By default nothing is written: the key lives only in this process, and `opkey sign --provider
browser|device` signs in one step. With ``--save FILE`` the key and PK token are kept, in a
0600 file, for signing within the PK token's lifetime (`opkey sign --session FILE`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from opkey.cli.providers import add_provider_arguments

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``login`` subcommand."""
    parser = subparsers.add_parser(
        "login",
        help="sign in (browser or device flow) and obtain a PK token",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_provider_arguments(parser, interactive_only=True)
    parser.add_argument(
        "--save",
        metavar="FILE",
        help="keep the ephemeral private key and PK token in FILE (mode 0600)",
    )
    parser.add_argument(
        "--key-type",
        choices=["ES256", "EdDSA", "RS256"],
        default="ES256",
        help="ephemeral key algorithm (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Log in and report (and save, if asked)."""
    from datetime import datetime, timezone

    from opkey.cli.providers import build_provider
    from opkey.signer import Signer

    signer = Signer.from_provider(build_provider(args), alg=args.key_type)
    claims = signer.pktoken.claims
    who = claims.get("email") or claims.get("sub")
    expires = datetime.fromtimestamp(claims["exp"], timezone.utc)
    print(
        f"opkey: logged in as {who} (issuer {signer.pktoken.issuer}); ID token valid until "
        f"{expires:%Y-%m-%dT%H:%M:%SZ}",
        file=sys.stderr,
    )
    if args.save:
        from opkey.cli.session import save_session

        save_session(Path(args.save), signer)
        print(
            f"opkey: saved the key and PK token to {args.save} (mode 0600); sign with "
            f"`opkey sign --session {args.save} …`",
            file=sys.stderr,
        )
    else:
        print(
            "opkey: nothing saved (the key stays in memory only); use --save FILE to sign "
            "later, or `opkey sign --provider browser` to log in and sign in one step",
            file=sys.stderr,
        )
    return 0
