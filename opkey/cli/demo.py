"""``opkey demo``: the keyless flow end to end on the embedded dev provider (see opkey.demo)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="run the keyless signing demo on the embedded dev identity provider",
        description=(
            "Start the embedded dev OpenID provider on loopback, sign an image digest and a "
            "file from a simulated GitHub Actions job, verify them, and show forgeries being "
            "rejected. Nothing leaves this machine."
        ),
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step behaved as it must."""
    from opkey.sandbox.demo import DemoError, run_demo

    try:
        return run_demo(sys.stdout)
    except DemoError as exc:
        print(f"opkey: demo failed: {exc}", file=sys.stderr)
        return 1
