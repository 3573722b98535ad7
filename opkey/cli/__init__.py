"""The ``opkey`` command line: a thin shell over the library.

Each subcommand lives in its own module under :mod:`opkey.cli` and exposes
``register(subparsers)`` (cheap: no heavy imports) and ``run(args) -> int``. This module only
parses arguments, dispatches, and turns :class:`~opkey.errors.OpkeyError` into a one-line
message and an exit code:

* 0: success (verified);
* 1: verification rejected;
* 2: usage or input error (also every other :class:`~opkey.errors.OpkeyError`).

``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from opkey._version import __version__

__all__ = ["COMMANDS", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

#: Subcommand modules, in the order ``opkey --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "sign",
    "verify",
    "inspect",
    "login",
    "jwks",
    "demo",
    "dev_idp",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="opkey",
        description="Keyless signing with OpenID Connect (OpenPubkey-compatible).",
    )
    parser.add_argument("--version", action="version", version=f"opkey {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"opkey.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from opkey.errors import OpkeyError

    try:
        code: int = args.run(args)
    except OpkeyError as exc:
        if args.debug:
            raise
        from opkey.cli._common import with_hint

        print(f"opkey: error: {with_hint(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("opkey: interrupted", file=sys.stderr)
        return 130
    return code
