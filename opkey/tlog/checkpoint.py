"""C2SP checkpoints (c2sp.org/tlog-checkpoint): a log's signed tree head.

A checkpoint is a :class:`~opkey.tlog.note.SignedNote` whose text is exactly::

    <origin>
    <tree size, ASCII decimal, no leading zero>
    <root hash, standard base64 of 32 bytes>
    [extension lines, each non-empty]

The origin names the log. Rekor v1 writes ``"<hostname> - <tree ID>"`` and signs with the key
name ``<hostname>``; Rekor v2 writes its hostname and signs with that same name. A verifier
pins both the origin and the key (:class:`~opkey.tlog.log.TrustedLog`): a checkpoint from
another tree under the same key, or another key under the same origin, must not pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog._encoding import b64std_decode, b64std_encode
from opkey.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE
from opkey.tlog.note import NoteKey, SignedNote

__all__ = ["Checkpoint", "SignedCheckpoint"]

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The body of a checkpoint: origin, tree size, root hash and any extension lines."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, *, what: str = "checkpoint") -> Checkpoint:
        """Parse checkpoint note text (ending in a newline); raises :class:`FormatError`."""
        if not text.endswith("\n"):
            raise FormatError(f"{what}: the text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(
                f"{what}: needs origin, size and root hash lines, found {len(lines)} lines"
            )
        origin, size_line, root_line, *extensions = lines
        if not origin:
            raise FormatError(f"{what}: empty origin line")
        if _DECIMAL.fullmatch(size_line) is None:
            raise FormatError(
                f"{what}: tree size {size_line[:30]!r} is not a decimal without leading zeros"
            )
        size = int(size_line)
        if size > MAX_TREE_SIZE:
            raise FormatError(f"{what}: tree size {size} is beyond 2**63-1", found=size)
        root = b64std_decode(root_line, what=f"{what}: root hash", max_length=64)
        if len(root) != HASH_SIZE:
            raise FormatError(
                f"{what}: root hash is {len(root)} bytes, expected {HASH_SIZE}",
                expected=HASH_SIZE,
                found=len(root),
            )
        if any(not line for line in extensions):
            raise FormatError(f"{what}: empty extension line")
        return cls(origin, size, root, tuple(extensions))

    def text(self) -> str:
        """The note text of this checkpoint, byte for byte as it is signed."""
        lines = [self.origin, str(self.tree_size), b64std_encode(self.root_hash)]
        return "\n".join([*lines, *self.extensions]) + "\n"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as received: the parsed body and the signed note it came in."""

    checkpoint: Checkpoint
    note: SignedNote

    @classmethod
    def parse(cls, data: bytes | str, *, what: str = "checkpoint") -> SignedCheckpoint:
        """Parse a signed checkpoint (note and body); no signature is checked yet."""
        note = SignedNote.parse(data, what=what)
        return cls(Checkpoint.parse(note.text, what=what), note)

    def verify(
        self, keys: Sequence[NoteKey], *, origin: str, what: str = "checkpoint"
    ) -> Checkpoint:
        """Check the origin line and the signature by one of ``keys``; returns the body.

        The origin is compared first: a checkpoint of another log is reported as such, not
        as a bad signature.
        """
        if self.checkpoint.origin != origin:
            raise TransparencyLogError(
                f"{what}: origin {self.checkpoint.origin[:120]!r} is not the pinned "
                f"log's {origin!r}",
                expected=origin,
                found=self.checkpoint.origin,
            )
        self.note.verify(keys, what=what)
        return self.checkpoint
