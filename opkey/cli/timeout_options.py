"""``--timeout SECONDS``: one deadline for all the network work of a command.

Every command that talks to registries, identity providers or logs takes it, with its own
default (long enough for a browser login when signing); the value becomes one
:class:`~opkey.http.Deadline` that the command's requests, retries and waits all count against,
so no command hangs however many requests it makes. Declared here once for all of them.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_timeout_argument"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError(f"{text!r}: give between 0 and 86400 seconds")
    return value


def add_timeout_argument(parser: Any, default: float) -> None:
    """``--timeout SECONDS``: one deadline for the whole operation's network work."""
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=default,
        metavar="SECONDS",
        help="deadline for all network work of this command: registry requests, retries and "
        "waits, key fetches (default: %(default)g)",
    )
