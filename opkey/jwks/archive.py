"""The JWKS archive: every provider key ever observed, so signatures outlive key rotation.

Identity providers rotate their signing keys: GitHub's 2022 key ``78167F72…`` is absent from
its 2025 JWKS, so a PK token from 2022 cannot be verified against the live key set. The archive
records each key opkey sees (or is given as a snapshot) with the issuer it came from, its
``kid``, its RFC 7638 thumbprint (``jkt``), the public JWK, and when it was first and last seen::

    archive = JwksArchive("jwks-archive.sqlite")
    archive.import_jwks(GITHUB, snapshot_bytes, seen_at=datetime(2022, 8, 5, tzinfo=timezone.utc))
    key = archive.find(GITHUB, kid="78167F727DEC5D801DD1C8784C704A1C880EC0E1")

It plugs into a JWKS client as its ``observer`` (:meth:`JwksArchive.record` has the signature
``(issuer, keys, seen_at)``) and into a verifier as the fallback for keys the live set no
longer has (:meth:`JwksArchive.find`).

**Lookups are exact and scoped to one issuer**: ``(issuer, kid)`` or ``(issuer, jkt)``, never
across issuers, never "try every key". When both ``kid`` and ``jkt`` are given they must
describe the same archived key.

**Conflicts are kept, never resolved by guessing.** If an issuer publishes different key
material under a ``kid`` it used before, both keys are kept (each with its own times) and a
lookup by that ``kid`` alone is refused as ambiguous (:class:`KeyNotFoundError`); a lookup that
also names the ``jkt`` (GQ256 tokens carry it) still resolves. :meth:`JwksArchive.entries`
flags such keys with ``conflict=True``.

**Storage: one SQLite file** (stdlib :mod:`sqlite3`), chosen over a directory of JSON files
because it gives, without code of our own:

* atomic writes: one :meth:`~JwksArchive.record` call is one transaction, so a crash or a kill
  leaves either the whole key set or none of it, and readers never see half a write;
* safety between processes: SQLite's file locks serialise writers (``BEGIN IMMEDIATE`` plus a
  busy timeout makes concurrent writers wait instead of failing), and WAL journaling lets
  readers proceed while a writer works;
* indexed lookups without loading the archive, so memory stays bounded however large it grows.

A JSON directory would need its own ``flock`` locking, temp-file + ``fsync`` + rename for every
write and whole-file reads for every lookup. Caveat: WAL relies on shared memory, so keep the
archive on a local filesystem (not NFS/SMB). The file is marked with an ``application_id`` and a
schema version, so a foreign SQLite file is refused rather than written into.

Time is always a parameter (``seen_at``); the archive never reads the clock. Each operation
opens its own short-lived connection, so an archive object may be shared between threads and
survives ``fork``.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opkey.errors import ConfigError, FormatError, KeyNotFoundError
from opkey.expiry import timestamp, utc_datetime
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK

__all__ = ["DEFAULT_MAX_KEYS_PER_ISSUER", "ArchiveEntry", "JwksArchive"]

#: Most keys kept per issuer. Real providers publish a handful of keys a year; a larger number
#: means a broken or hostile key source, and unbounded growth would defeat "bounded memory".
DEFAULT_MAX_KEYS_PER_ISSUER = 1000
_APPLICATION_ID = 0x6F706B61  # "opka"
_SCHEMA_VERSION = 1
_PAGE = 256
_SCHEMA = """
CREATE TABLE keys (
    issuer     TEXT    NOT NULL,
    kid        TEXT,              -- the kid as published, NULL when the key had none
    kid_key    TEXT    NOT NULL,  -- 'k' || kid, or 'n' for no kid: a NULL-free unique key
    jkt        TEXT    NOT NULL,  -- RFC 7638 SHA-256 thumbprint, base64url
    jwk        TEXT    NOT NULL,  -- the public JWK members, JSON with sorted keys
    first_seen INTEGER NOT NULL,  -- seconds since the epoch, UTC
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (issuer, kid_key, jkt)
);
CREATE INDEX keys_by_jkt ON keys (issuer, jkt);
"""


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One archived key of one issuer, with the span of time it was observed."""

    issuer: str
    kid: str | None
    jkt: str
    jwk: PublicJWK
    first_seen: datetime
    last_seen: datetime
    conflict: bool = False
    """True when the issuer published *different* key material under the same ``kid``."""


def _kid_key(kid: str | None) -> str:
    return "n" if kid is None else "k" + kid


def _utc(seconds: int) -> datetime:
    try:
        return utc_datetime(seconds, what="stored time")
    except FormatError as exc:
        raise ConfigError(f"JWKS archive is corrupt: {exc}") from None


def _require_issuer(issuer: object) -> str:
    if not isinstance(issuer, str) or not issuer:
        raise ConfigError(f"issuer must be a non-empty string, found {issuer!r}", found=issuer)
    return issuer


@functools.lru_cache(maxsize=256)
def _load_jwk(text: str, jkt: str) -> PublicJWK:
    """Parse a stored JWK (cached: keys are immutable) and check it is the key indexed."""
    try:
        key = PublicJWK.from_dict(json.loads(text), what="archived JWK")
    except (ValueError, FormatError) as exc:
        raise ConfigError(f"JWKS archive holds a malformed key ({exc})") from None
    if key.thumbprint() != jkt:
        raise ConfigError(
            f"JWKS archive is corrupt: key stored under thumbprint {jkt!r} has thumbprint "
            f"{key.thumbprint()!r}",
            expected=jkt,
            found=key.thumbprint(),
        )
    return key


class JwksArchive:
    """A persistent, process-safe archive of provider keys in one SQLite file (see module)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        max_keys_per_issuer: int = DEFAULT_MAX_KEYS_PER_ISSUER,
    ) -> None:
        """Use (creating it on first write or read) the archive at ``path``.

        ``timeout`` is how long an operation waits for another process's write to finish.
        """
        self.path = Path(path)
        if str(path) in ("", ":memory:"):
            raise ConfigError("the JWKS archive needs a file path (':memory:' is not shared)")
        if max_keys_per_issuer < 1:
            raise ConfigError("max_keys_per_issuer must be at least 1")
        self._timeout = timeout
        self._max_keys = max_keys_per_issuer
        self._ready = False
        self._check_file()

    def __repr__(self) -> str:
        return f"JwksArchive({str(self.path)!r})"

    def _check_file(self) -> None:
        """Refuse a path that names something other than a regular file (a FIFO, a device, a
        directory): SQLite would block on it or fail obscurely. A missing file is created."""
        try:
            mode = os.stat(self.path).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"cannot open JWKS archive {self.path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"cannot open JWKS archive {self.path}: not a regular file (give the database "
                "file, or a directory holding it as --jwks-archive DIR/)"
            )

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in autocommit mode; sqlite3 errors become ConfigError."""
        self._check_file()
        try:
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open JWKS archive {self.path}: {exc}") from None
        try:
            if not self._ready:
                self._initialise(conn)
            yield conn
        except sqlite3.Error as exc:
            raise ConfigError(f"JWKS archive {self.path}: {exc}") from None
        finally:
            conn.close()

    def _initialise(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":  # pragma: no cover - odd filesystems
            conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("BEGIN IMMEDIATE")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id == 0 and version == 0 and tables == 0:
                # Statement by statement: executescript() would commit the open transaction.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            elif app_id != _APPLICATION_ID:
                raise ConfigError(f"{self.path} is not an opkey JWKS archive")
            elif version != _SCHEMA_VERSION:
                raise ConfigError(
                    f"JWKS archive {self.path} has schema version {version}; this opkey reads "
                    f"version {_SCHEMA_VERSION}",
                    expected=_SCHEMA_VERSION,
                    found=version,
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("PRAGMA synchronous = FULL")
        self._ready = True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or none of it does."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------------

    def record(self, issuer: str, keys: KeySet, seen_at: datetime) -> None:
        """Record that ``issuer`` published ``keys`` at ``seen_at`` (a JWKS client observer).

        New keys are added; known keys get ``first_seen``/``last_seen`` widened to include
        ``seen_at`` (observations may arrive out of order, e.g. an old snapshot imported late).
        A key's stored JWK members are those of its latest observation. The whole set is one
        transaction. Raises :class:`ConfigError` if the issuer would exceed
        ``max_keys_per_issuer`` (nothing is recorded then).
        """
        _require_issuer(issuer)
        if not isinstance(keys, KeySet):
            raise TypeError(f"keys must be a KeySet, not {type(keys).__name__}")
        seen = timestamp(seen_at)
        rows = [
            (key.kid, key.thumbprint(), json.dumps(key.to_dict(), sort_keys=True)) for key in keys
        ]
        with self._write() as conn:
            for kid, jkt, text in rows:
                self._upsert(conn, issuer, kid, jkt, text, seen)
            count = conn.execute("SELECT count(*) FROM keys WHERE issuer = ?", (issuer,))
            total = count.fetchone()[0]
            if total > self._max_keys:
                raise ConfigError(
                    f"JWKS archive: issuer {issuer} would hold {total} keys, more than the "
                    f"{self._max_keys} allowed; refusing to record this key set",
                    expected=self._max_keys,
                    found=total,
                )

    def _upsert(
        self,
        conn: sqlite3.Connection,
        issuer: str,
        kid: str | None,
        jkt: str,
        text: str,
        seen: int,
    ) -> None:
        kid_key = _kid_key(kid)
        row = conn.execute(
            "SELECT last_seen FROM keys WHERE issuer = ? AND kid_key = ? AND jkt = ?",
            (issuer, kid_key, jkt),
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO keys (issuer, kid, kid_key, jkt, jwk, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (issuer, kid, kid_key, jkt, text, seen, seen),
            )
            return
        conn.execute(
            "UPDATE keys SET first_seen = min(first_seen, ?), last_seen = max(last_seen, ?), "
            "jwk = CASE WHEN ? >= last_seen THEN ? ELSE jwk END "
            "WHERE issuer = ? AND kid_key = ? AND jkt = ?",
            (seen, seen, seen, text, issuer, kid_key, jkt),
        )

    def import_jwks(self, issuer: str, jwks: bytes | str, seen_at: datetime) -> KeySet:
        """Record a JWKS snapshot (the document an issuer served at ``seen_at``).

        The document is parsed strictly (:class:`~opkey.errors.FormatError` if malformed)
        before anything is written. Returns the keys recorded.
        """
        keys = KeySet.from_json(jwks, what=f"JWKS snapshot for {issuer}")
        self.record(issuer, keys, seen_at)
        return keys

    # -- reading -------------------------------------------------------------------------------

    def find(self, issuer: str, *, kid: str | None = None, jkt: str | None = None) -> PublicJWK:
        """The archived key of ``issuer`` with this ``kid`` and/or thumbprint ``jkt``.

        Raises :class:`KeyNotFoundError` when no key matches, when a ``kid`` alone names
        conflicting keys, when ``kid`` and ``jkt`` disagree, or when neither is given.
        """
        _require_issuer(issuer)
        if kid is None and jkt is None:
            raise KeyNotFoundError("archive lookup needs a kid or a jkt; refusing to guess")
        with self._connect() as conn:
            if jkt is not None:
                return self._find_by_jkt(conn, issuer, kid, jkt)
            assert kid is not None
            rows = conn.execute(
                "SELECT jkt, jwk FROM keys WHERE issuer = ? AND kid_key = ? "
                "ORDER BY last_seen DESC",
                (issuer, _kid_key(kid)),
            ).fetchall()
        thumbprints = sorted({row[0] for row in rows})
        if not thumbprints:
            raise KeyNotFoundError(
                f"no archived key of {issuer} has kid {kid!r}", expected=kid, found=None
            )
        if len(thumbprints) > 1:
            raise KeyNotFoundError(
                f"archived kid {kid!r} of {issuer} names {len(thumbprints)} different keys "
                f"(thumbprints {', '.join(thumbprints)}); ambiguous, refusing to pick one",
                found=thumbprints,
            )
        jkt_found, text = rows[0]
        return _load_jwk(text, jkt_found)

    def _find_by_jkt(
        self, conn: sqlite3.Connection, issuer: str, kid: str | None, jkt: str
    ) -> PublicJWK:
        rows = conn.execute(
            "SELECT kid, jwk FROM keys WHERE issuer = ? AND jkt = ? ORDER BY last_seen DESC",
            (issuer, jkt),
        ).fetchall()
        if not rows:
            raise KeyNotFoundError(
                f"no archived key of {issuer} has thumbprint {jkt!r}", expected=jkt, found=None
            )
        if kid is not None:
            # As in KeySet.find: a key published without a kid matches any kid.
            rows = [row for row in rows if row[0] in (kid, None)]
            if not rows:
                raise KeyNotFoundError(
                    f"archived key {jkt!r} of {issuer} was never published with kid {kid!r}",
                    expected=kid,
                )
        return _load_jwk(rows[0][1], jkt)

    def keyset(self, issuer: str) -> KeySet:
        """Every archived key of ``issuer`` as a :class:`~opkey.jwks.keyset.KeySet` (oldest first).

        Conflicting keys are all included, so :meth:`KeySet.by_kid` refuses their ``kid``.
        """
        _require_issuer(issuer)
        return KeySet(tuple(entry.jwk for entry in self.entries(issuer)))

    def entries(self, issuer: str | None = None) -> Iterator[ArchiveEntry]:
        """Archived keys (of one issuer, or all), oldest first, read page by page."""
        query = (
            "SELECT issuer, kid, jkt, jwk, first_seen, last_seen, kid IS NOT NULL AND EXISTS ("
            " SELECT 1 FROM keys AS other WHERE other.issuer = keys.issuer"
            " AND other.kid_key = keys.kid_key AND other.jkt != keys.jkt)"
            " FROM keys {where} ORDER BY issuer, first_seen, kid_key, jkt"
        )
        params: tuple[Any, ...] = ()
        if issuer is not None:
            _require_issuer(issuer)
            params = (issuer,)
        where = "WHERE issuer = ?" if issuer is not None else ""
        with self._connect() as conn:
            cursor = conn.execute(query.format(where=where), params)
            while True:
                page = cursor.fetchmany(_PAGE)
                if not page:
                    return
                for row in page:
                    yield ArchiveEntry(
                        issuer=row[0],
                        kid=row[1],
                        jkt=row[2],
                        jwk=_load_jwk(row[3], row[2]),
                        first_seen=_utc(row[4]),
                        last_seen=_utc(row[5]),
                        conflict=bool(row[6]),
                    )

    def issuers(self) -> list[str]:
        """Every issuer with archived keys, sorted."""
        with self._connect() as conn:
            rows = conn.execute("SELECT DISTINCT issuer FROM keys ORDER BY issuer").fetchall()
        return [row[0] for row in rows]

    def export_jwks(self, issuer: str) -> bytes:
        """A JWKS document (``{"keys": [...]}``) of every archived key of ``issuer``.

        The output is deterministic (oldest key first, members sorted) and re-imports with
        :meth:`import_jwks`. First/last-seen times are not part of a JWKS and are not exported.
        """
        keys = [entry.jwk.to_dict() for entry in self.entries(issuer)]
        if not keys:
            raise KeyNotFoundError(f"no archived keys for issuer {issuer}", found=issuer)
        return (json.dumps({"keys": keys}, indent=2, sort_keys=True) + "\n").encode("utf-8")
