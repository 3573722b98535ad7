"""Artifact digests and the statement opkey signs for a file or a digest.

A digest is ``sha256:`` followed by exactly 64 lowercase hex characters: no other algorithm,
no upper case, no surrounding space, compared byte for byte. The signed message is a small,
canonical, domain-separated statement::

    {"digest":"sha256:<hex>","type":"opkey artifact signature v1"}

so that a signature over an artifact can never be replayed as a container-image signature (whose
cosign payload has another ``type``) or any other OpenPubkey message, and vice versa.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from opkey.errors import FormatError
from opkey.jose import parse_json_object

__all__ = ["ARTIFACT_STATEMENT_TYPE", "Digest", "artifact_statement", "parse_artifact_statement"]

ARTIFACT_STATEMENT_TYPE = "opkey artifact signature v1"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Digest:
    """A SHA-256 content digest in OCI form: ``sha256:<64 lowercase hex>``."""

    value: str

    def __post_init__(self) -> None:
        if _DIGEST.fullmatch(str(self.value)) is None:
            raise FormatError(
                f"invalid digest {self.value!r}: expected 'sha256:' and 64 lowercase hex digits",
                expected="sha256:<64 lowercase hex>",
                found=self.value,
            )

    def __str__(self) -> str:
        return self.value

    @property
    def hex(self) -> str:
        """The 64 hex digits."""
        return self.value[len("sha256:") :]

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        """The digest of ``data``."""
        return cls("sha256:" + hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, path: str | Path) -> Digest:
        """The digest of a file's content, read in chunks."""
        h = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
        return cls("sha256:" + h.hexdigest())


def artifact_statement(digest: Digest) -> bytes:
    """The exact bytes opkey signs for an artifact: ``go_json`` of the statement.

    Written out directly, because every verification builds it: a :class:`Digest` holds only
    ``sha256:`` and hex digits, which JSON writes as they are, so the text is exactly what
    ``go_json({"digest": …, "type": …})`` gives (``tests/test_artifact.py`` checks both agree).
    """
    return b'{"digest":"%s","type":"%s"}' % (
        digest.value.encode("ascii"),
        ARTIFACT_STATEMENT_TYPE.encode("ascii"),
    )


def parse_artifact_statement(data: bytes) -> Digest:
    """The digest an artifact statement names; anything but the canonical form is rejected."""
    document = parse_json_object(data, what="artifact statement")
    if document.get("type") != ARTIFACT_STATEMENT_TYPE:
        raise FormatError(
            f"signed message is not an artifact signature (type {document.get('type')!r})",
            expected=ARTIFACT_STATEMENT_TYPE,
            found=document.get("type"),
        )
    if set(document) != {"digest", "type"}:
        raise FormatError(f"artifact statement has unexpected members {sorted(document)}")
    digest = Digest(document["digest"])
    if artifact_statement(digest) != data:
        raise FormatError("artifact statement is not in canonical form")
    return digest
