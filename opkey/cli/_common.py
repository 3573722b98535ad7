"""Helpers shared by the CLI subcommands: input files, time arguments, output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from opkey.errors import ConfigError, FormatError

__all__ = [
    "ARCHIVE_FILE_NAME",
    "SPEC",
    "ErrorOrigin",
    "archive_path",
    "columns",
    "emit_json",
    "parse_time",
    "read_input",
    "time_argument",
    "with_hint",
    "write_new_file",
]

#: Where help text points for the specifications (the wheel ships the code, not ``spec/``).
SPEC = "https://github.com/opkey-dev/opkey/blob/main/spec"

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


#: Where an error came from, as far as the remedy depends on it: fetching the identity
#: provider's keys (discovery, JWKS), or anywhere else (a registry, a provider's token
#: endpoint, a file).
ErrorOrigin = Literal["keys", "other"]


def with_hint(exc: Exception, *, command: str | None = None, origin: ErrorOrigin = "other") -> str:
    """The error's message and, when a usual remedy applies to this command and to where the
    error came from, what to do about it.

    Only ``opkey verify`` chooses keys, expiry rules and times, so only its errors suggest
    ``--jwks-archive``, ``--expiry`` or ``--at``; going offline helps only when the provider's
    keys could not be fetched (``origin="keys"``), never after a registry failure. Every
    command may be given more time. The message is passed through
    :func:`opkey.remote_text.printable` once more: text from remote parties is made printable
    where it enters a message, and this keeps a terminal safe from anything that slipped
    through.
    """
    from opkey.errors import DeadlineError, ExpiredError, KeyNotFoundError
    from opkey.remote_text import printable

    message = printable(str(exc), limit=8000)
    if isinstance(exc, DeadlineError):
        return f"{message} (allow more time with --timeout SECONDS)"
    if command != "verify":
        return message
    if origin == "keys":
        return (
            f"{message} (the issuer's keys could not be fetched; verify offline with "
            "--jwks FILE or --jwks-archive and --offline)"
        )
    if isinstance(exc, KeyNotFoundError) and "not trusted" not in message:
        return (
            f"{message} (if the provider has rotated its keys, verify with "
            "--jwks-archive holding the old ones)"
        )
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


def columns(rows: Sequence[Sequence[str]], *, gap: str = "  ") -> list[str]:
    """``rows`` as lines whose columns line up (every column padded to its widest cell, the
    last one left as it is, trailing blanks dropped)."""
    if not rows:
        return []
    count = max(len(row) for row in rows)
    widths = [max((len(row[i]) for row in rows if i < len(row)), default=0) for i in range(count)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(gap.join(cells).rstrip())
    return lines


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on standard output."""
    print(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False))


def write_new_file(path: Path, data: bytes) -> None:
    """Write an output file (bundles): atomically, never through a planted link
    (:func:`opkey.files.write_file_atomically`)."""
    from opkey.files import write_file_atomically

    write_file_atomically(path, data, what="output file", error=FormatError)
