"""Rekor v1 signed entry timestamps (SETs): the log's signed promise of an entry and its time.

When Rekor v1 accepts an entry it signs four facts (sigstore/rekor ``pkg/api/entries.go``,
``signEntry``): the entry body, the time it was integrated, the log's ID and the entry's index.
The signed bytes are the RFC 8785 (JCS) canonical JSON of::

    {"body": base64(body), "integratedTime": seconds, "logID": hex(log ID), "logIndex": index}

Rekor marshals the object with Go's ``encoding/json`` (the body, ``[]byte``, becomes padded
standard base64; the log ID is lowercase hex) and canonicalizes it with cyberphone's
``jsoncanonicalizer``; sigstore-python's ``_encode_canonical`` rebuilds the same bytes with
``rfc8785``. With only these four members, base64/hex strings (no character JCS would escape)
and integers below 2**53 (which JCS writes as plain decimals), the canonical form is the
fixed template below, so no JSON library is involved; larger integers are refused rather than
guessed at. The signature is ECDSA P-256/SHA-256 (DER) or Ed25519, by the log's key.

Rekor v2 signs no SET: its entries carry no time, and signing time comes from RFC 3161
timestamps instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from opkey.errors import TransparencyLogError
from opkey.tlog._encoding import b64std_encode, check_bytes, check_uint
from opkey.tlog.note import LogPublicKey, verify_log_signature

__all__ = ["MAX_JCS_INTEGER", "SignedEntryTimestamp"]

#: Integers above this are not written as plain decimals by RFC 8785 (they are not exact in
#: an IEEE double), so a SET over them is refused.
MAX_JCS_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class SignedEntryTimestamp:
    """A SET and the facts it signs."""

    body: bytes
    integrated_time: int
    log_id: bytes
    log_index: int
    signature: bytes

    def __post_init__(self) -> None:
        what = "signed entry timestamp"
        check_bytes(self.body, f"{what} body")
        check_uint(self.integrated_time, f"{what} integratedTime", maximum=MAX_JCS_INTEGER)
        check_uint(self.log_index, f"{what} logIndex", maximum=MAX_JCS_INTEGER)
        check_bytes(self.log_id, f"{what} log ID", length=32)
        check_bytes(self.signature, f"{what} signature")

    def payload(self) -> bytes:
        """The canonical JSON the log signed (see the module docstring)."""
        return (
            f'{{"body":"{b64std_encode(self.body)}","integratedTime":{self.integrated_time},'
            f'"logID":"{self.log_id.hex()}","logIndex":{self.log_index}}}'
        ).encode("ascii")

    def verify(self, key: LogPublicKey) -> None:
        """Check the signature under the log's ``key``; raises :class:`TransparencyLogError`."""
        if not verify_log_signature(key, self.signature, self.payload()):
            raise TransparencyLogError(
                f"signed entry timestamp of log index {self.log_index} does not verify under "
                "the log's key"
            )
