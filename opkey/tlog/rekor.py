"""Reading Rekor's answers into :class:`~opkey.tlog.entry.LogEntry` values (pure parsing).

Two shapes carry the same evidence:

* **Rekor v1's API** (``POST /api/v1/log/entries``, ``GET /api/v1/log/entries/{uuid}``): an
  object with one member, the entry UUID (tree ID and leaf hash in hex), whose value holds
  ``body`` (base64), ``integratedTime``, ``logID`` (hex), ``logIndex`` and ``verification``
  with ``signedEntryTimestamp`` (base64) and ``inclusionProof`` (``logIndex``, ``treeSize``,
  ``rootHash`` and ``hashes`` in hex, ``checkpoint`` as text);
* **the Sigstore ``TransparencyLogEntry``** in protobuf JSON, what Rekor v2 returns and what a
  Sigstore bundle stores: ``logIndex``, ``logId.keyId``, ``integratedTime``,
  ``inclusionPromise.signedEntryTimestamp``, ``inclusionProof`` (``logIndex``, ``rootHash``,
  ``treeSize``, ``hashes``, ``checkpoint.envelope``) and ``canonicalizedBody``, bytes in
  base64 and 64-bit integers as decimal strings or numbers.

Members opkey does not use are ignored (a newer server may add some); those it uses must have
exactly the expected type and encoding, or a :class:`FormatError` says which one is wrong.
"""

from __future__ import annotations

from typing import Any

from opkey.errors import FormatError
from opkey.jose import parse_json_object
from opkey.tlog._encoding import (
    b64std_decode,
    b64std_encode,
    hex_decode,
    json_member,
    json_object,
    json_uint,
)
from opkey.tlog.checkpoint import SignedCheckpoint
from opkey.tlog.entry import MAX_BODY_LENGTH, LogEntry
from opkey.tlog.merkle import HASH_SIZE, InclusionProof
from opkey.tlog.note import MAX_NOTE_LENGTH

__all__ = [
    "cosign_rekor_bundle",
    "entry_from_rekor_v1",
    "entry_from_transparency_log_entry",
    "transparency_log_entry",
]

_MAX_BODY_B64 = 4 * ((MAX_BODY_LENGTH + 2) // 3)
_MAX_HASHES = 63
_HASH_B64 = 44
_MAX_SIGNATURE_B64 = 1024


def _list(value: object, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{what}: expected a JSON array, found {type(value).__name__}")
    if len(value) > limit:
        raise FormatError(f"{what}: {len(value)} items is more than {limit}", found=len(value))
    return value


def _checkpoint(text: object, what: str) -> SignedCheckpoint:
    if not isinstance(text, str):
        raise FormatError(f"{what}: expected text, found {type(text).__name__}")
    if len(text) > MAX_NOTE_LENGTH:
        raise FormatError(f"{what}: {len(text)} characters is too long")
    return SignedCheckpoint.parse(text, what=what)


def entry_from_rekor_v1(response: object) -> LogEntry:
    """The entry in a Rekor v1 API response (``{uuid: entry}``), with its proof and SET.

    The UUID must end with the hex leaf hash of the body, so the key a client looked the
    entry up by names the body it got.
    """
    outer = json_object(response, "Rekor v1 entry")
    if len(outer) != 1:
        raise FormatError(f"Rekor v1 entry: expected one entry, found {len(outer)}")
    ((uuid, value),) = outer.items()
    entry = json_object(value, "Rekor v1 entry")
    what = "Rekor v1 entry"
    body = b64std_decode(
        json_member(entry, "body", what), what=f"{what} body", max_length=_MAX_BODY_B64
    )
    verification = json_object(json_member(entry, "verification", what), f"{what} verification")
    proof = json_object(
        json_member(verification, "inclusionProof", f"{what} verification"),
        f"{what} inclusion proof",
    )
    pwhat = f"{what} inclusion proof"
    hashes = tuple(
        hex_decode(h, what=f"{pwhat} hash", length=HASH_SIZE)
        for h in _list(json_member(proof, "hashes", pwhat), f"{pwhat} hashes", _MAX_HASHES)
    )
    set_b64 = verification.get("signedEntryTimestamp")
    parsed = LogEntry(
        body=body,
        log_index=json_uint(json_member(entry, "logIndex", what), what=f"{what} logIndex"),
        log_id=hex_decode(json_member(entry, "logID", what), what=f"{what} logID", length=32),
        inclusion_proof=InclusionProof(
            index=json_uint(json_member(proof, "logIndex", pwhat), what=f"{pwhat} logIndex"),
            tree_size=json_uint(json_member(proof, "treeSize", pwhat), what=f"{pwhat} treeSize"),
            hashes=hashes,
        ),
        root_hash=hex_decode(
            json_member(proof, "rootHash", pwhat), what=f"{pwhat} rootHash", length=HASH_SIZE
        ),
        checkpoint=_checkpoint(json_member(proof, "checkpoint", pwhat), f"{pwhat} checkpoint"),
        integrated_time=json_uint(
            json_member(entry, "integratedTime", what), what=f"{what} integratedTime"
        ),
        signed_entry_timestamp=None
        if set_b64 is None
        else b64std_decode(
            set_b64, what=f"{what} signedEntryTimestamp", max_length=_MAX_SIGNATURE_B64
        ),
    )
    if not str(uuid).endswith(parsed.leaf_hash.hex()):
        raise FormatError(
            f"{what}: UUID {str(uuid)[:90]!r} does not name the leaf hash of its body",
            expected=parsed.leaf_hash.hex(),
            found=uuid,
        )
    return parsed


def entry_from_transparency_log_entry(tle: object) -> LogEntry:
    """The entry in a Sigstore ``TransparencyLogEntry`` (protobuf JSON): Rekor v2's answer,
    or an entry of a Sigstore bundle from either version.

    ``integratedTime`` is kept only with an inclusion promise (SET): without one it is not
    signed by anyone (Rekor v2 always writes 0), and the spec says to ignore it.
    """
    what = "transparency log entry"
    entry = json_object(tle, what)
    proof = json_object(json_member(entry, "inclusionProof", what), f"{what} inclusionProof")
    pwhat = f"{what} inclusionProof"
    hashes = tuple(
        _hash_b64(h, f"{pwhat} hash")
        for h in _list(proof.get("hashes", []), f"{pwhat} hashes", _MAX_HASHES)
    )
    checkpoint = json_object(json_member(proof, "checkpoint", pwhat), f"{pwhat} checkpoint")
    log_id = json_object(json_member(entry, "logId", what), f"{what} logId")
    promise = entry.get("inclusionPromise")
    signed_entry_timestamp = None
    integrated_time = None
    if promise is not None:
        promise = json_object(promise, f"{what} inclusionPromise")
        signed_entry_timestamp = b64std_decode(
            json_member(promise, "signedEntryTimestamp", f"{what} inclusionPromise"),
            what=f"{what} signedEntryTimestamp",
            max_length=_MAX_SIGNATURE_B64,
        )
        integrated_time = json_uint(
            json_member(entry, "integratedTime", what), what=f"{what} integratedTime"
        )
    log_id_bytes = b64std_decode(
        json_member(log_id, "keyId", f"{what} logId"), what=f"{what} logId.keyId", max_length=64
    )
    return LogEntry(
        body=b64std_decode(
            json_member(entry, "canonicalizedBody", what),
            what=f"{what} canonicalizedBody",
            max_length=_MAX_BODY_B64,
        ),
        log_index=json_uint(json_member(entry, "logIndex", what), what=f"{what} logIndex"),
        log_id=log_id_bytes,
        inclusion_proof=InclusionProof(
            index=json_uint(json_member(proof, "logIndex", pwhat), what=f"{pwhat} logIndex"),
            tree_size=json_uint(json_member(proof, "treeSize", pwhat), what=f"{pwhat} treeSize"),
            hashes=hashes,
        ),
        root_hash=_hash_b64(json_member(proof, "rootHash", pwhat), f"{pwhat} rootHash"),
        checkpoint=_checkpoint(
            json_member(checkpoint, "envelope", f"{pwhat} checkpoint"), f"{pwhat} checkpoint"
        ),
        integrated_time=integrated_time,
        signed_entry_timestamp=signed_entry_timestamp,
    )


def _hash_b64(value: object, what: str) -> bytes:
    raw = b64std_decode(value, what=what, max_length=_HASH_B64)
    if len(raw) != HASH_SIZE:
        raise FormatError(f"{what}: a hash is {HASH_SIZE} bytes, found {len(raw)}")
    return raw


def _kind_version(body: bytes) -> dict[str, str]:
    document = parse_json_object(body, what="log entry body", max_length=MAX_BODY_LENGTH)
    kind, version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(version, str):
        raise FormatError("log entry body: kind and apiVersion must be strings")
    return {"kind": kind, "version": version}


def transparency_log_entry(entry: LogEntry) -> dict[str, Any]:
    """``entry`` as a Sigstore ``TransparencyLogEntry`` in protobuf JSON (the members
    :func:`entry_from_transparency_log_entry` reads back): 64-bit integers as decimal strings,
    bytes as padded standard base64, ``inclusionPromise`` only with a SET."""
    proof = entry.inclusion_proof
    document: dict[str, Any] = {
        "logIndex": str(entry.log_index),
        "logId": {"keyId": b64std_encode(entry.log_id)},
        "kindVersion": _kind_version(entry.body),
        "integratedTime": str(entry.integrated_time or 0),
    }
    if entry.signed_entry_timestamp is not None:
        document["inclusionPromise"] = {
            "signedEntryTimestamp": b64std_encode(entry.signed_entry_timestamp)
        }
    document["inclusionProof"] = {
        "logIndex": str(proof.index),
        "rootHash": b64std_encode(entry.root_hash),
        "treeSize": str(proof.tree_size),
        "hashes": [b64std_encode(h) for h in proof.hashes],
        "checkpoint": {"envelope": entry.checkpoint.note.to_text()},
    }
    document["canonicalizedBody"] = b64std_encode(entry.body)
    return document


def cosign_rekor_bundle(entry: LogEntry) -> str:
    """cosign's ``dev.sigstore.cosign/bundle`` layer annotation for ``entry``: Go's
    ``json.Marshal`` of cosign's ``RekorBundle`` (``pkg/cosign/bundle/rekor.go``), byte for
    byte. Only a Rekor v1 entry with its SET has one (cosign checks the SET, no proof)."""
    if entry.signed_entry_timestamp is None or entry.integrated_time is None:
        raise FormatError("cosign's bundle annotation needs a signed entry timestamp (Rekor v1)")
    return (
        f'{{"SignedEntryTimestamp":"{b64std_encode(entry.signed_entry_timestamp)}",'
        f'"Payload":{{"body":"{b64std_encode(entry.body)}",'
        f'"integratedTime":{entry.integrated_time},"logIndex":{entry.log_index},'
        f'"logID":"{entry.log_id.hex()}"}}}}'
    )
