"""Local files opkey reads and writes: bounded regular files in, atomic unredirectable files out.

Every file opkey reads (bundles, PK tokens, JWKS snapshots, policy files, session files, JWKS
imports, artifacts to hash) comes through :func:`read_regular_file` or
:func:`open_regular_file`, and every file it writes (bundles, session files, environment files)
through :func:`write_file_atomically`. One place decides, so no reader can forget a bound:

**Reading.** A path can name something that never ends (``/dev/zero``, ``/dev/urandom``), never
begins (a FIFO with no writer: even ``open`` blocks), or is not a file at all (a directory, a
terminal, a socket). So the path is opened with ``O_NONBLOCK`` (opening a FIFO then returns at
once instead of waiting for a writer) and ``O_NOCTTY`` (a terminal never becomes ours), and
what was *actually opened* is checked with ``fstat``: anything but a regular file is refused,
and at most ``limit + 1`` bytes are read, so a file over its limit is refused without being
read whole. Symbolic links are followed: an input is only read, the check applies to the file
finally opened, and its content is untrusted input anyway; refusing links would only break
configuration directories that link to shared files. Standard input (``-``) is read with the
same bound by :func:`read_stream`.

**Writing.** Output goes to a new temporary file in the target's directory and is renamed over
the target, so a reader never sees half a file and a crash leaves the old one. The temporary
name is unpredictable (64 random bits) and it is created with ``O_CREAT | O_EXCL |
O_NOFOLLOW``: in a directory shared with someone else, a planted symlink or a file waiting
under a guessed name makes creation fail (and another name is tried) instead of redirecting
the write into the attacker's choice of file. The rename replaces a symlink at the target
name itself, never the file it points to. Secrets (session files) are created with mode
0600 from the first byte; other output gets 0666 less the umask, as any new file does.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from opkey.errors import ConfigError, FormatError, OpkeyError

__all__ = ["open_regular_file", "read_regular_file", "read_stream", "write_file_atomically"]

_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_CREATE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_CHUNK = 64 * 1024
#: Attempts at a fresh temporary name before giving up (each collision is a 2^-64 event, or
#: someone planting files under every name we try).
_CREATE_ATTEMPTS = 16

_ErrorType = type[OpkeyError]


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _open_regular(path: str | os.PathLike[str], what: str, error: _ErrorType) -> int:
    """A descriptor on ``path`` if what it names is a regular file; else ``error``."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise error(f"cannot read {what} {os.fspath(path)}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise error(f"cannot read {what} {os.fspath(path)}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(
            f"cannot read {what} {os.fspath(path)}: it is {_kind(mode)}, not a regular file",
            expected="a regular file",
            found=_kind(mode),
        )
    return fd


def _too_large(what: str, where: str, limit: int, error: _ErrorType) -> OpkeyError:
    return error(
        f"{what} {where} is larger than {limit} bytes",
        expected=f"<= {limit} bytes",
        found=f"> {limit} bytes",
    )


def read_regular_file(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str = "file",
    error: _ErrorType = FormatError,
) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    Anything else (FIFO, device, directory, socket, a missing or unreadable path, a file over
    ``limit``) raises ``error`` (a :class:`~opkey.errors.FormatError` unless the caller reads
    configuration) naming ``what`` and the path. Never blocks on a FIFO, never reads more than
    ``limit + 1`` bytes.
    """
    fd = _open_regular(path, what, error)
    where = os.fspath(path)
    try:
        if os.fstat(fd).st_size > limit:
            raise _too_large(what, where, limit, error)
        return _read_bounded(lambda size: os.read(fd, size), limit, what, where, error)
    finally:
        os.close(fd)


def open_regular_file(
    path: str | os.PathLike[str], *, what: str = "file", error: _ErrorType = FormatError
) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file (see
    :func:`read_regular_file`); for content read in chunks, such as an artifact being hashed,
    whose size is its own (a regular file ends; ``/dev/zero`` is refused)."""
    return os.fdopen(_open_regular(path, what, error), "rb")


def read_stream(
    stream: BinaryIO, *, limit: int, what: str = "standard input", error: _ErrorType = FormatError
) -> bytes:
    """At most ``limit`` bytes of ``stream`` (standard input): ``error`` if there are more."""
    return _read_bounded(stream.read, limit, what, "(-)", error)


def _read_bounded(
    read: Callable[[int], bytes], limit: int, what: str, where: str, error: _ErrorType
) -> bytes:
    """Read until the end, but never more than ``limit + 1`` bytes: more is ``error``."""
    chunks: list[bytes] = []
    remaining = limit + 1
    try:
        while remaining > 0:
            chunk = read(min(remaining, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        label = what if where == "(-)" else f"{what} {where}"
        raise error(f"cannot read {label}: {exc.strerror or exc}") from None
    data = b"".join(chunks)
    if len(data) > limit:
        raise _too_large(what, where, limit, error)
    return data


def _create_temporary(
    target: Path, *, private: bool, what: str, error: _ErrorType
) -> tuple[int, Path]:
    """A new, empty file next to ``target`` under an unpredictable name, and its descriptor."""
    directory = target.parent
    for _ in range(_CREATE_ATTEMPTS):
        temporary = directory / f".{target.name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(temporary, _CREATE_FLAGS, 0o600 if private else 0o666), temporary
        except FileExistsError:
            continue
        except OSError as exc:
            raise error(f"cannot write {what} {target}: {exc.strerror or exc}") from None
    raise error(
        f"cannot write {what} {target}: {_CREATE_ATTEMPTS} fresh temporary names in "
        f"{directory} were all taken"
    )


def write_file_atomically(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    what: str = "file",
    private: bool = False,
    error: _ErrorType = ConfigError,
) -> None:
    """Replace ``path`` with ``data``, atomically and without following planted links.

    See the module documentation. ``private`` files (they hold a key) are mode 0600 from
    creation. Failures raise ``error`` naming ``what`` and the path; the temporary file is
    removed and the target left as it was.
    """
    target = Path(path)
    fd, temporary = _create_temporary(target, private=private, what=what, error=error)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise error(f"cannot write {what} {target}: {exc.strerror or exc}") from None
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows (best effort: POSIX only)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
