"""The log a verifier trusts: its origin, its key and what it signs.

A verifier pins a log by its checkpoint origin and public key; the log ID entries carry and
the checkpoint key ID both derive from the key (and, for Ed25519 on Rekor v2, the origin):

* **Rekor v1**: origin ``"<hostname> - <tree ID>"``, note key name ``<hostname>``, key ID and
  log ID ``SHA-256(SPKI DER of the key)`` (sigstore/rekor ``pkg/sharding``,
  ``pkg/util/signed_note.go``); it also signs entry timestamps with the same key.
* **Rekor v2**: origin = note key name = the log's hostname; the log ID is the full C2SP
  checkpoint key hash (``SHA-256(name || 0x0A || 0x01 || key)`` for Ed25519,
  ``SHA-256(SPKI DER)`` for ECDSA; rekor-tiles ``pkg/note``); no entry timestamps.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from opkey.errors import FormatError
from opkey.tlog._encoding import check_uint
from opkey.tlog.note import LogPublicKey, NoteKey

__all__ = ["TrustedLog", "rekor_v1_log_id"]

_V1_ORIGIN = re.compile(r"(\S+) - ([1-9][0-9]{0,18})")


def _is_line(value: object) -> bool:
    return isinstance(value, str) and bool(value) and "\n" not in value


def rekor_v1_log_id(public_key: LogPublicKey) -> bytes:
    """Rekor v1's log ID: SHA-256 of the log key's DER SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


@dataclass(frozen=True, slots=True)
class TrustedLog:
    """A pinned transparency log.

    ``origin`` is the checkpoint origin line to require, ``key`` the note key its checkpoints
    are signed with (its :attr:`~NoteKey.key_hash` is the log ID), and
    ``signs_entry_timestamps`` whether its key also signs SETs (Rekor v1).
    """

    origin: str
    key: NoteKey
    signs_entry_timestamps: bool

    def __post_init__(self) -> None:
        if not _is_line(self.origin):
            raise FormatError("trusted log: the origin must be one non-empty line")

    @property
    def log_id(self) -> bytes:
        """The 32-byte log ID this log's entries carry."""
        return self.key.key_hash

    @classmethod
    def rekor_v1(cls, hostname: str, tree_id: int, public_key: LogPublicKey) -> TrustedLog:
        """A Rekor v1 log: ``hostname`` is rekor-server's ``--rekor_server.hostname``."""
        check_uint(tree_id, "trusted log: Trillian tree ID", minimum=1)
        key = NoteKey.rekor_v1(hostname, public_key)
        return cls(f"{hostname} - {tree_id}", key, signs_entry_timestamps=True)

    @classmethod
    def rekor_v2(cls, origin: str, public_key: LogPublicKey) -> TrustedLog:
        """A Rekor v2 (rekor-tiles) log: ``origin`` is its ``--hostname``."""
        return cls(origin, NoteKey.c2sp(origin, public_key), signs_entry_timestamps=False)

    @classmethod
    def pinned(cls, origin: str, public_key: LogPublicKey) -> TrustedLog:
        """The log a verifier pins by its checkpoint ``origin`` and key: Rekor v1 when the
        origin is ``"<hostname> - <tree ID>"`` (its form; a hostname holds no space), else
        Rekor v2 (origin = hostname)."""
        if not _is_line(origin):
            raise FormatError("trusted log: the origin must be one non-empty line")
        match = _V1_ORIGIN.fullmatch(origin)
        if match is not None:
            return cls.rekor_v1(match.group(1), int(match.group(2)), public_key)
        return cls.rekor_v2(origin, public_key)

    @property
    def version(self) -> int:
        """1 for a Rekor v1 log (it signs entry timestamps), 2 for Rekor v2."""
        return 1 if self.signs_entry_timestamps else 2
