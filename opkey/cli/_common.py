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
    if isinstance(exc, NetworkError) and not message.startswith("time-stamping authority"):
        return f"{message} (verify offline with --jwks FILE or --jwks-archive and --offline)"
    if isinstance(exc, ExpiredError):
        return f"{message} (choose the rule with --expiry, or verify as of a time with --at)"
    return message


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-`` for standard input), bounded in size."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(path, "rb") as handle:
                data = handle.read(MAX_INPUT + 1)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT:
        raise FormatError(f"{path} is larger than {MAX_INPUT} bytes; not a bundle or PK token")
    return data


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (``2026-01-02T03:04:05Z``) or seconds since the epoch."""
    value = text.strip()
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value), timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise ConfigError(
            f"invalid time {text!r}: use RFC 3339 (2026-01-02T03:04:05Z) or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        raise ConfigError(f"time {text!r} needs a timezone (e.g. a trailing Z for UTC)")
    return parsed


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
    """Write an output file (bundles): atomically, so a crash never leaves half a bundle."""
    import os

    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise FormatError(f"cannot write {path}: {exc.strerror or exc}") from None
