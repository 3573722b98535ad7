"""Helpers shared by the CLI subcommands: input files, time arguments, output."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opkey.errors import ConfigError, FormatError

__all__ = [
    "ARCHIVE_FILE_NAME",
    "archive_path",
    "emit_json",
    "parse_time",
    "read_input",
    "time_argument",
    "with_hint",
    "write_new_file",
]

#: Largest input file the CLI reads (bundles and PK tokens are a few KiB).
MAX_INPUT = 1024 * 1024


#: The archive file inside a directory given as ``--jwks-archive DIR``.
ARCHIVE_FILE_NAME = "jwks-archive.sqlite"


def archive_path(value: str | Path) -> Path:
    """The archive file for ``--jwks-archive``/``--archive``: a file, or a directory holding
    ``jwks-archive.sqlite`` (an existing directory, or a path ending in ``/``)."""
    text = str(value)
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith("/"):
        return path / ARCHIVE_FILE_NAME
    return path


def with_hint(exc: Exception) -> str:
    """The error's message and, for errors with a usual remedy, what to do about it."""
    from opkey.errors import ExpiredError, KeyNotFoundError, NetworkError

    message = str(exc)
    if isinstance(exc, KeyNotFoundError) and "not trusted" not in message:
        return (
            f"{message} (if the provider has rotated its keys, verify with "
            "--jwks-archive holding the old ones)"
        )
    if isinstance(exc, NetworkError):
        return f"{message} (verify offline with --jwks FILE or --jwks-archive and --offline)"
    if isinstance(exc, ExpiredError):
        return f"{message} (choose the rule with --expiry, or verify as of a time with --at)"
    return message


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-`` for standard input): a regular file of at most
    :data:`MAX_INPUT` bytes (:mod:`opkey.files`)."""
    from opkey.files import read_regular_file, read_stream

    if path == "-":
        return read_stream(sys.stdin.buffer, limit=MAX_INPUT, what="standard input")
    return read_regular_file(path, limit=MAX_INPUT, what="input")


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2026-01-02T03:04:05Z``) or seconds since the epoch, in UTC.

    Every failure is a :class:`ConfigError`: malformed text, a missing timezone, and a time
    outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z (:func:`opkey.expiry.timestamp`), which
    no token can be checked at and which ``datetime`` could not convert to UTC.
    """
    from opkey.errors import OpkeyError
    from opkey.expiry import timestamp, utc_datetime

    value = text.strip()
    hint = "use RFC 3339 (2026-01-02T03:04:05Z) or epoch seconds"
    outside = (
        f"invalid time {text[:80]!r}: outside the times opkey can check "
        "(1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)"
    )
    if value.isascii() and value.isdigit():
        try:
            return utc_datetime(int(value) if len(value) <= 20 else -1)
        except OpkeyError:
            raise ConfigError(outside) from None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise ConfigError(f"invalid time {text[:80]!r}: {hint}") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"time {text[:80]!r} needs a timezone (e.g. a trailing Z for UTC)")
    try:
        timestamp(parsed)
    except OpkeyError:
        raise ConfigError(outside) from None
    return parsed.astimezone(timezone.utc)  # in range: cannot overflow


def time_argument(text: str) -> datetime:
    """argparse type for times; errors become usage errors."""
    try:
        return parse_time(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on standard output."""
    print(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False))


def write_new_file(path: Path, data: bytes) -> None:
    """Write an output file (bundles): atomically, never through a planted link
    (:func:`opkey.files.write_file_atomically`)."""
    from opkey.files import write_file_atomically

    write_file_atomically(path, data, what="output file", error=FormatError)
