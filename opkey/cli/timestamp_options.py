"""Signing-time (RFC 3161) options of ``opkey sign``, ``opkey attest`` and ``opkey verify``.

* ``--timestamp-url URL`` with ``--timestamp-timeout SECONDS`` (sign, attest): ask this
  time-stamping authority for a token over each signature; signing fails, and writes nothing,
  when it cannot be had;
* ``--timestamp-certs FILE`` (verify, verify-attestation): an authority to trust, whose tokens
  prove when a signature was made; ``--require-timestamp`` (alias ``--require-signing-time``):
  reject signatures without a proven signing time.

Declared here once for every command that takes them; nothing here contacts an authority:
the values are checked before any ID token is requested.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opkey.timestamp import TimestampClient

__all__ = ["add_timestamp_sign_arguments", "add_timestamp_verify_arguments", "timestamp_clients"]


def add_timestamp_sign_arguments(parser: Any, *, signed: str, gerund: str) -> None:
    """The signing side: ``--timestamp-url`` over the ``signed`` object (``"signature"``,
    ``"DSSE signature"``) and ``--timestamp-timeout``; ``gerund`` names what fails without it."""
    group = parser.add_argument_group("signing time (RFC 3161)")
    group.add_argument(
        "--timestamp-url",
        action="append",
        default=[],
        metavar="URL",
        help=f"ask this time-stamping authority for a token over the {signed} (one for images; "
        f"repeatable for bundles; https, or http on loopback); {gerund} fails if it cannot be had",
    )
    group.add_argument(
        "--timestamp-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time allowed for each authority to answer (default: %(default)s)",
    )


def add_timestamp_verify_arguments(parser: Any) -> None:
    """The verifying side: the authorities to trust and ``--require-timestamp``."""
    group = parser.add_argument_group("signing time (RFC 3161 timestamps)")
    group.add_argument(
        "--timestamp-certs",
        action="append",
        default=[],
        metavar="FILE",
        help="PEM certificate chain of a time-stamping authority to trust (repeatable); its "
        "tokens prove when a signature was made, checked against the ID token's validity",
    )
    group.add_argument(
        "--require-timestamp",
        "--require-signing-time",
        dest="require_timestamp",
        action="store_true",
        help="reject signatures without a proven signing time: a timestamp from a trusted "
        "authority, or a signed integrated time in a pinned Rekor v1 log",
    )


def timestamp_clients(args: argparse.Namespace) -> list[TimestampClient]:
    """One client per ``--timestamp-url``, checked before any key or token is made."""
    from opkey.errors import ConfigError

    if not args.timestamp_url:
        return []
    if not 0 < args.timestamp_timeout <= 300:
        raise ConfigError("--timestamp-timeout must be more than 0 and at most 300 seconds")
    from opkey.timestamp import TimestampClient

    return [TimestampClient(url, timeout=args.timestamp_timeout) for url in args.timestamp_url]
