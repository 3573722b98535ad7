"""Where a verifier gets an issuer's keys: pinned JWKS, live discovery, the JWKS archive.

A :class:`KeySource` answers "which key of *this issuer* has this ``kid``/``jkt``?" and names
itself, so a verified identity can say which source vouched for the key. Sources are tried in
order by :class:`FallbackKeys`: the usual chain is the live JWKS (fresh keys) and then the
archive (keys that have since been rotated out). A failure of one source (a key it does not
have, or a live JWKS that cannot be fetched) falls through to the next; when no source has the
key, the error says what each one answered. The answer is a :class:`FoundKey`: the key *and*
the name of the source that had it, so a verified identity can report where its key came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opkey.errors import KeyNotFoundError, OpkeyError
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK

__all__ = [
    "MAX_JWKS_FILE_BYTES",
    "ArchiveKeys",
    "FallbackKeys",
    "FoundKey",
    "KeySource",
    "LiveKeys",
    "PinnedKeys",
]

#: Largest pinned JWKS file read (:meth:`PinnedKeys.from_file`): as large as a live JWKS answer
#: may be (``opkey.jwks.client.DEFAULT_JWKS_MAX_BYTES``), so what can be fetched can be pinned.
MAX_JWKS_FILE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class FoundKey:
    """A provider key and the name of the key source that had it.

    It is also a :class:`~opkey.jwks.keyset.KeyLookup` that holds just this key, so the pure PK
    token check (:func:`opkey.verify.verify_pktoken`) can run against exactly the key found.
    """

    key: PublicJWK
    source: str

    def find(self, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """This key, if it is the one named (by ``kid`` when it has one, and by ``jkt``)."""
        if kid is not None and self.key.kid is not None and kid != self.key.kid:
            raise KeyNotFoundError(f"key {self.key.kid!r} is not the key {kid!r} named")
        if jkt is not None and self.key.thumbprint() != jkt:
            raise KeyNotFoundError(
                f"key has thumbprint {self.key.thumbprint()!r}, token names {jkt!r}",
                expected=jkt,
                found=self.key.thumbprint(),
            )
        return self.key


class KeySource(Protocol):
    """Finds an issuer's key by exact ``kid``/``jkt``."""

    @property
    def name(self) -> str:
        """Short name reported with verified identities (``pinned``, ``live``, ``archive``)."""
        ...

    def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """The key; :class:`KeyNotFoundError` if this source has none."""
        ...


class _FindsKey(Protocol):
    def find_key(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK: ...


class _ArchiveLike(Protocol):
    def find(self, issuer: str, *, kid: str | None = None, jkt: str | None = None) -> PublicJWK: ...


@dataclass(frozen=True)
class PinnedKeys:
    """Keys given as data (a JWKS file the user pinned), per issuer."""

    keysets: Mapping[str, KeySet]
    name: str = "pinned"

    @classmethod
    def from_file(cls, issuer: str, path: str | Path) -> PinnedKeys:
        """One issuer's JWKS read from a file."""
        from opkey.files import read_regular_file

        data = read_regular_file(path, limit=MAX_JWKS_FILE_BYTES, what="JWKS file")
        return cls({issuer: KeySet.from_json(data, what=f"JWKS file {path}")})

    def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """See :class:`KeySource`."""
        keyset = self.keysets.get(issuer)
        if keyset is None:
            raise KeyNotFoundError(f"no pinned keys for issuer {issuer!r}")
        return keyset.find(kid=kid, jkt=jkt)


@dataclass(frozen=True)
class LiveKeys:
    """The issuer's current JWKS, through a JWKS client (discovery, cache, rate limits)."""

    client: _FindsKey
    name: str = "live"

    def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """See :class:`KeySource`."""
        return self.client.find_key(issuer, kid=kid, jkt=jkt)


@dataclass(frozen=True)
class ArchiveKeys:
    """Every key ever observed for the issuer, from the JWKS archive."""

    archive: _ArchiveLike
    name: str = "archive"

    def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """See :class:`KeySource`."""
        return self.archive.find(issuer, kid=kid, jkt=jkt)


@dataclass(frozen=True)
class FallbackKeys:
    """Try sources in order; the first that finds the key wins."""

    sources: Sequence[KeySource]

    @property
    def name(self) -> str:
        """The names of the sources, joined with ``+``."""
        return "+".join(source.name for source in self.sources)

    def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
        """See :class:`KeySource`."""
        return self.find_key(issuer, kid=kid, jkt=jkt).key

    def find_key(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> FoundKey:
        """The key and the name of the source that had it."""
        errors: list[OpkeyError] = []
        for source in self.sources:
            try:
                return FoundKey(source.find(issuer, kid=kid, jkt=jkt), source.name)
            except OpkeyError as exc:  # e.g. the live JWKS is unreachable: try the archive
                errors.append(exc)
        if not errors:
            raise KeyNotFoundError(f"no key source configured for issuer {issuer!r}")
        hard = [e for e in errors if not isinstance(e, KeyNotFoundError)]
        if hard:
            first = hard[0]
            raise type(first)(
                f"{first} (and no other key source has the key)",
                expected=first.expected,
                found=first.found,
            )
        detail = "; ".join(f"{s.name}: {e}" for s, e in zip(self.sources, errors, strict=True))
        raise KeyNotFoundError(f"no trusted key for issuer {issuer!r} ({detail})", found=kid)
