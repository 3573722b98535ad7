"""Sign in (browser or device flow) and obtain a PK token.

By default nothing is written: the key lives only in this process, and `opkey sign --provider
browser|device` signs in one step. With --save FILE the key and PK token are kept, in a 0600
file, for signing while the ID token is valid (`opkey sign --session FILE`); once the ID token
has expired the session is refused and you log in again.

Your own OAuth client: --issuer google|microsoft|gitlab alone uses OpenPubkey's public client
registrations, which belong to that project. For real use, register a client of your own:

  * Google: Google Cloud console, APIs & Services, Credentials, "OAuth client ID" of type
    "Desktop app" (loopback redirects on any port are allowed; nothing to register);
  * Microsoft Entra ID: an app registration with the "Mobile and desktop applications"
    platform, redirect URI http://127.0.0.1/login-callback (the port is not compared), and
    "Allow public client flows" for --provider device;
  * any other OpenID provider: a public (or confidential) client allowing the authorization
    code flow with PKCE S256 and the redirect URI http://127.0.0.1/login-callback on any port,
    or the device flow.

Then pass its id with --client-id ID (or set OPKEY_CLIENT_ID) together with --issuer NAME or
--issuer URL. A client secret (Google issues one even to desktop clients) is read only from
OPKEY_CLIENT_SECRET. Verifiers pin the same client id: `opkey verify --issuer URL
--commitment nonce --client-id ID ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opkey.cli.providers import add_provider_arguments
from opkey.cli.signing import add_key_type_argument

FORMATTER = argparse.RawDescriptionHelpFormatter

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``login`` options."""
    add_provider_arguments(parser, interactive_only=True)
    parser.add_argument(
        "--save",
        metavar="FILE",
        help="keep the ephemeral private key and PK token in FILE (mode 0600)",
    )
    add_key_type_argument(parser)


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
