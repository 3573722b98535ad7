"""One log entry and the offline check that it is in a trusted log.

:class:`LogEntry` is what a client keeps of an upload: the canonicalized body, its index, the
log ID, an inclusion proof with the signed checkpoint it leads to, and on Rekor v1 the signed
entry timestamp. :func:`verify_log_entry` checks all of it against a :class:`TrustedLog` with
no network and no clock:

1. the entry names the pinned log (log ID);
2. the checkpoint has the pinned origin and is signed by the pinned key;
3. the proof is for the checkpoint's tree size and its claimed root is the checkpoint's;
4. ``SHA-256(0x00 || body)`` at the entry's index leads to that root (RFC 9162);
5. if the log signs entry timestamps and the entry has one, it verifies over
   ``{body, integratedTime, logID, logIndex}``; only then is a time reported.

What the body must say (kind, digest, signature, key) and whether a time is required are the
caller's rules, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

from opkey.errors import FormatError, TransparencyLogError
from opkey.tlog._encoding import check_bytes, check_uint
from opkey.tlog.checkpoint import Checkpoint, SignedCheckpoint
from opkey.tlog.entry_timestamp import SignedEntryTimestamp
from opkey.tlog.log import TrustedLog
from opkey.tlog.merkle import HASH_SIZE, InclusionProof, leaf_hash

__all__ = ["MAX_BODY_LENGTH", "LogEntry", "VerifiedLogEntry", "verify_log_entry"]

#: Largest entry body accepted, in bytes. A hashedrekord with a certificate that carries a
#: GQ-signed PK token stays under 32 KiB.
MAX_BODY_LENGTH = 256 * 1024


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An entry and its evidence of inclusion, as parsed from a log's response or a bundle."""

    body: bytes
    log_index: int
    log_id: bytes
    inclusion_proof: InclusionProof
    root_hash: bytes
    checkpoint: SignedCheckpoint
    integrated_time: int | None = None
    signed_entry_timestamp: bytes | None = None

    def __post_init__(self) -> None:
        check_bytes(self.body, "log entry body")
        if len(self.body) > MAX_BODY_LENGTH:
            raise FormatError(
                f"log entry: a {len(self.body)}-byte body is more than the "
                f"{MAX_BODY_LENGTH} allowed",
                expected=MAX_BODY_LENGTH,
                found=len(self.body),
            )
        check_uint(self.log_index, "log entry index")
        check_bytes(self.log_id, "log entry log ID", length=32)
        check_bytes(self.root_hash, "log entry root hash", length=HASH_SIZE)
        if self.integrated_time is not None:
            check_uint(self.integrated_time, "log entry integrated time")
        if self.signed_entry_timestamp is not None:
            check_bytes(self.signed_entry_timestamp, "log entry signed entry timestamp")
        if self.signed_entry_timestamp is not None and self.integrated_time is None:
            raise FormatError("log entry: a signed entry timestamp needs its integrated time")

    @property
    def leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash of the body."""
        return leaf_hash(self.body)


@dataclass(frozen=True, slots=True)
class VerifiedLogEntry:
    """An entry proven to be in the pinned log.

    ``integrated_time`` (seconds since the epoch) is set only when the log signed it in a SET
    that verified; it is the log operator's clock, a second source next to RFC 3161 time.
    """

    origin: str
    log_index: int
    body: bytes
    checkpoint: Checkpoint
    integrated_time: int | None
    #: The pinned log's ID (its key hash), which the entry named.
    log_id: bytes = b""


def verify_log_entry(entry: LogEntry, log: TrustedLog) -> VerifiedLogEntry:
    """Check ``entry`` against ``log`` offline; raises :class:`TransparencyLogError`."""
    if entry.log_id != log.log_id:
        raise TransparencyLogError(
            f"the entry is from log {entry.log_id.hex()}, not the pinned log {log.log_id.hex()}",
            expected=log.log_id.hex(),
            found=entry.log_id.hex(),
        )
    checkpoint = entry.checkpoint.verify([log.key], origin=log.origin)
    proof = entry.inclusion_proof
    if proof.index != entry.log_index:
        raise TransparencyLogError(
            f"the inclusion proof is for index {proof.index}, the entry is at {entry.log_index}",
            expected=entry.log_index,
            found=proof.index,
        )
    if proof.tree_size != checkpoint.tree_size:
        raise TransparencyLogError(
            f"the inclusion proof is for tree size {proof.tree_size}, the checkpoint for "
            f"{checkpoint.tree_size}",
            expected=checkpoint.tree_size,
            found=proof.tree_size,
        )
    if entry.root_hash != checkpoint.root_hash:
        raise TransparencyLogError(
            "the entry's root hash is not the checkpoint's",
            expected=checkpoint.root_hash.hex(),
            found=entry.root_hash.hex(),
        )
    proof.verify(entry.leaf_hash, checkpoint.root_hash)
    integrated_time = None
    if log.signs_entry_timestamps and entry.signed_entry_timestamp is not None:
        assert entry.integrated_time is not None  # LogEntry.__post_init__
        SignedEntryTimestamp(
            body=entry.body,
            integrated_time=entry.integrated_time,
            log_id=entry.log_id,
            log_index=entry.log_index,
            signature=entry.signed_entry_timestamp,
        ).verify(log.key.public_key)
        integrated_time = entry.integrated_time
    return VerifiedLogEntry(
        origin=log.origin,
        log_index=entry.log_index,
        body=entry.body,
        checkpoint=checkpoint,
        integrated_time=integrated_time,
        log_id=log.log_id,
    )
