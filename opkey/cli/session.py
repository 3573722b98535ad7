"""Login sessions: an ephemeral key and its PK token, saved only when the user asks.

The file holds an unencrypted private key, so it is created with mode 0600, never overwritten
in place, and refused when its permissions let anyone else read it.

A session is only good while its ID token is: once the token's ``exp`` has passed (with the
usual clock-skew leeway, :data:`opkey.expiry.DEFAULT_LEEWAY`) it is refused. Otherwise the file
would be a long-lived signing key: signatures made with it long after the provider stopped
vouching for the login would still carry that login's identity, which is exactly what keyless
signing is meant to rule out.
"""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone
from pathlib import Path

from opkey.errors import ConfigError, FormatError
from opkey.expiry import DEFAULT_LEEWAY, timestamp
from opkey.files import read_regular_file, write_file_atomically
from opkey.jose import parse_json_object
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.signer import Signer

__all__ = ["MAX_SESSION_BYTES", "SESSION_TYPE", "load_session", "save_session"]

SESSION_TYPE = "application/vnd.opkey.session.v1+json"
#: Largest session file read: a PK token (bounded by its own limits) and one PEM key.
MAX_SESSION_BYTES = 1024 * 1024


def save_session(path: Path, signer: Signer) -> None:
    """Write ``signer`` to a file created 0600 (:func:`opkey.files.write_file_atomically`:
    unpredictable temporary name, never through a planted link, atomic rename)."""
    document = {
        "mediaType": SESSION_TYPE,
        "pktoken": json.loads(signer.pktoken.to_json()),
        "key": signer.signing_key.private_pem().decode("ascii"),
    }
    data = (json.dumps(document, indent=2) + "\n").encode()
    write_file_atomically(path, data, what="session", private=True)


def load_session(path: Path, *, now: datetime | None = None) -> Signer:
    """Read a session file written by :func:`save_session`, if its ID token is still valid.

    ``now`` defaults to the current time; a session whose ID token expired more than
    :data:`~opkey.expiry.DEFAULT_LEEWAY` seconds before it is a :class:`ConfigError` that says
    to log in again.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read session {path}: {exc.strerror or exc}") from None
    data = read_regular_file(path, limit=MAX_SESSION_BYTES, what="session", error=ConfigError)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"session {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"it holds a private key: chmod 600 {path}"
        )
    document = parse_json_object(data, what=f"session {path}")
    if document.get("mediaType") != SESSION_TYPE:
        raise FormatError(f"{path} is not an opkey session file")
    key = document.get("key")
    if not isinstance(key, str):
        raise FormatError(f"session {path}: missing key")
    pktoken = PKToken.from_json(document.get("pktoken") or {})
    expires: int = pktoken.claims["exp"]  # an integer time: checked by the PK token parser
    current = timestamp(now if now is not None else datetime.now(timezone.utc))
    if current > expires + DEFAULT_LEEWAY:
        ended = datetime.fromtimestamp(expires, timezone.utc)
        raise ConfigError(
            f"session {path} expired at {ended:%Y-%m-%dT%H:%M:%SZ} (its ID token's exp); "
            f"log in again: opkey login --save {path}",
            expected=f"exp >= {current - DEFAULT_LEEWAY}",
            found=expires,
        )
    try:
        return Signer(pktoken, SigningKey.from_pem(key.encode("ascii")))
    except ValueError:
        raise FormatError(f"session {path}: the key does not match the PK token") from None
