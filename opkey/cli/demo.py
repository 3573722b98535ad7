"""Run the keyless signing demo on the embedded dev identity provider.

Start the embedded dev OpenID provider on loopback, sign an image digest and a file from a
simulated GitHub Actions job, verify them, and show forgeries being rejected. Nothing leaves
this machine.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every step behaved as it must."""
    from opkey.sandbox.demo import DemoError, run_demo

    try:
        return run_demo(sys.stdout)
    except DemoError as exc:
        print(f"opkey: demo failed: {exc}", file=sys.stderr)
        return 1
