"""Transparency logs, checked offline: Merkle proofs, checkpoints, signed entry timestamps.

The pure core of opkey's log support: bytes and pinned keys in, typed values or a
:class:`~opkey.errors.TransparencyLogError` out, with no network and no clock. Spec:
``spec/transparency-log.md``. ::

    from opkey.tlog import TrustedLog, entry_from_rekor_v1, load_log_public_key, verify_log_entry

    log = TrustedLog.rekor_v1("rekor.example", tree_id, load_log_public_key(pem))
    verified = verify_log_entry(entry_from_rekor_v1(response_json), log)
    verified.integrated_time   # the log's signed time (Rekor v1), or None

Modules, from the bottom up:

* :mod:`opkey.tlog.merkle`: RFC 9162 inclusion and consistency proofs (RFC 6962 hashing);
* :mod:`opkey.tlog.note`: C2SP signed notes and note keys (Ed25519, ECDSA P-256, Rekor v1);
* :mod:`opkey.tlog.checkpoint`: C2SP checkpoints, their origin and signature;
* :mod:`opkey.tlog.entry_timestamp`: Rekor v1 signed entry timestamps;
* :mod:`opkey.tlog.log`: the pinned log (origin, key, log ID);
* :mod:`opkey.tlog.entry`: one entry with its evidence, and the check that ties them together;
* :mod:`opkey.tlog.rekor`: parsing Rekor v1 responses and Sigstore ``TransparencyLogEntry``.
"""

from __future__ import annotations

from opkey.tlog.checkpoint import Checkpoint, SignedCheckpoint
from opkey.tlog.entry import LogEntry, VerifiedLogEntry, verify_log_entry
from opkey.tlog.entry_timestamp import SignedEntryTimestamp
from opkey.tlog.log import TrustedLog, rekor_v1_log_id
from opkey.tlog.merkle import ConsistencyProof, InclusionProof, leaf_hash, node_hash
from opkey.tlog.note import LogPublicKey, NoteKey, NoteSignature, SignedNote, load_log_public_key
from opkey.tlog.rekor import entry_from_rekor_v1, entry_from_transparency_log_entry

__all__ = [
    "Checkpoint",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntry",
    "LogPublicKey",
    "NoteKey",
    "NoteSignature",
    "SignedCheckpoint",
    "SignedEntryTimestamp",
    "SignedNote",
    "TrustedLog",
    "VerifiedLogEntry",
    "entry_from_rekor_v1",
    "entry_from_transparency_log_entry",
    "leaf_hash",
    "load_log_public_key",
    "node_hash",
    "rekor_v1_log_id",
    "verify_log_entry",
]
