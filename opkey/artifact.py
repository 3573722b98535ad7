"""The statement opkey signs for a file or a digest.

The signed message is a small, canonical, domain-separated statement::

    {"digest":"sha256:<hex>","type":"opkey artifact signature v1"}

so that a signature over an artifact can never be replayed as a container-image signature (whose
cosign payload has another ``type``) or any other OpenPubkey message, and vice versa.
"""

from __future__ import annotations

from opkey.digest import Digest
from opkey.errors import FormatError
from opkey.jose import parse_json_object

__all__ = ["ARTIFACT_STATEMENT_TYPE", "artifact_statement", "parse_artifact_statement"]

ARTIFACT_STATEMENT_TYPE = "opkey artifact signature v1"


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
