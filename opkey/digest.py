"""Content digests: the one value type for "these exact bytes", for files, blobs and manifests.

A digest is ``sha256:`` followed by exactly 64 lowercase hex characters: no other algorithm,
no upper case, no surrounding space, compared byte for byte. A digest that could be spelled
two ways invites comparing the wrong strings, so there is exactly one spelling, checked when
the value is made.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from opkey.errors import FormatError
from opkey.files import open_regular_file

__all__ = ["Digest"]

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

    @property
    def tag_stem(self) -> str:
        """The digest as OCI tags spell it (``sha256-<hex>``): a tag may not contain ``:``,
        so cosign's ``.sig``/``.att`` tags and the referrers tag name the image this way."""
        return "sha256-" + self.hex

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        """The digest of ``data``."""
        return cls("sha256:" + hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, path: str | Path) -> Digest:
        """The digest of a regular file's content, read in chunks.

        A FIFO, device or directory is refused (:func:`opkey.files.open_regular_file`):
        ``/dev/zero`` would never end. Sign streamed content by its digest instead.
        """
        h = hashlib.sha256()
        try:
            with open_regular_file(path, what="file") as handle:
                while chunk := handle.read(_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
        return cls("sha256:" + h.hexdigest())
