"""Transparency-log options shared by ``opkey sign``, ``opkey verify`` and ``opkey monitor``.

* ``--tlog-url URL`` (sign): log every signature in this Rekor log (v1 or v2, found from the
  one URL); signing fails, and writes nothing, when the log cannot take it;
* ``--tlog-key FILE`` with ``--tlog-origin ORIGIN``: the log a verifier pins (its public key,
  PEM or DER, and its checkpoint origin: ``"<hostname> - <tree ID>"`` for Rekor v1, the
  hostname for Rekor v2, the first line of the log's checkpoint). Given to ``sign``, the
  answer of the log must verify under it before anything is written;
* ``--require-tlog`` (verify): reject signatures without a verified entry in a pinned log.

Nothing here contacts a log: the values are checked before any ID token is requested.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.errors import ConfigError

if TYPE_CHECKING:
    from opkey.policy.file import LogPin
    from opkey.tlog.client import RekorClient

__all__ = [
    "add_log_pin_arguments",
    "add_tlog_sign_arguments",
    "add_tlog_verify_arguments",
    "log_pins",
    "tlog_client",
]


def add_log_pin_arguments(group: Any, *, what: str) -> None:
    """``--tlog-key FILE`` and ``--tlog-origin ORIGIN``."""
    group.add_argument(
        "--tlog-key",
        metavar="FILE",
        help=f"public key of the transparency log {what} (PEM or DER; ECDSA P-256 or "
        "Ed25519); needs --tlog-origin",
    )
    group.add_argument(
        "--tlog-origin",
        metavar="ORIGIN",
        help="the log's checkpoint origin, the first line of its checkpoint: "
        "'<hostname> - <tree ID>' for Rekor v1, the hostname for Rekor v2",
    )


def add_tlog_sign_arguments(parser: Any) -> None:
    """The signing side: ``--tlog-url``, the optional pin, ``--tlog-timeout``."""
    group = parser.add_argument_group("transparency log (Rekor)")
    group.add_argument(
        "--tlog-url",
        metavar="URL",
        help="log every signature in this Rekor log (v1 or v2; https, or http on loopback) "
        "with the PK token that vouches for its key; only GQ256 PK tokens (CI providers) "
        "may be published; signing fails if the log cannot take it",
    )
    add_log_pin_arguments(group, what="the answer must verify under")
    group.add_argument(
        "--tlog-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time allowed for the log to answer (default: %(default)g; Rekor v2 answers once "
        "a checkpoint covers the entry)",
    )


def add_tlog_verify_arguments(parser: Any) -> None:
    """The verifying side: the pin and ``--require-tlog``."""
    group = parser.add_argument_group("transparency log (Rekor)")
    add_log_pin_arguments(group, what="to trust")
    group.add_argument(
        "--require-tlog",
        action="store_true",
        help="reject signatures without an entry, verified offline, in the pinned log",
    )


def log_pins(args: argparse.Namespace) -> tuple[LogPin, ...]:
    """The pinned log the arguments name (none, or one)."""
    from opkey.policy.file import LogPin

    key, origin = getattr(args, "tlog_key", None), getattr(args, "tlog_origin", None)
    if key is None and origin is None:
        return ()
    if key is None or not origin:
        raise ConfigError(
            "--tlog-key and --tlog-origin go together: a log is pinned by its key and its "
            "checkpoint origin"
        )
    if "\n" in origin:
        raise ConfigError("--tlog-origin is one line (the first of the log's checkpoint)")
    return (LogPin(Path(key), origin),)


def tlog_client(args: argparse.Namespace) -> RekorClient | None:
    """The client ``--tlog-url`` asks for (with the pinned log, if any), or ``None``."""
    url = getattr(args, "tlog_url", None)
    pins = log_pins(args)
    if url is None:
        if pins:
            raise ConfigError("--tlog-key and --tlog-origin when signing need --tlog-url")
        return None
    if not 0 < args.tlog_timeout <= 300:
        raise ConfigError("--tlog-timeout must be more than 0 and at most 300 seconds")
    from opkey.tlog.client import RekorClient

    log = None
    if pins:
        from opkey.files import read_regular_file
        from opkey.tlog.log import TrustedLog
        from opkey.tlog.note import load_log_public_key

        (pin,) = pins
        data = read_regular_file(
            pin.key_file, limit=16 * 1024, what="transparency log key", error=ConfigError
        )
        log = TrustedLog.pinned(pin.origin, load_log_public_key(data))
    return RekorClient(url, timeout=args.tlog_timeout, log=log)
