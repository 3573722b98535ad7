"""DSSE envelopes: a payload, its type, and signatures over the pre-authentication encoding.

An attestation is an in-toto statement carried in a DSSE envelope (Dead Simple Signing
Envelope, ``github.com/secure-systems-lab/dsse``)::

    {"payloadType":"application/vnd.in-toto+json","payload":"<standard base64>",
     "signatures":[{"keyid":"","sig":"<standard base64>"}]}

What is signed is not the JSON but the **pre-authentication encoding** (:func:`pae`) of the
payload type and the payload bytes, so the type cannot be changed without breaking the
signature and no parser ambiguity reaches the signed bytes::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body      (lengths in ASCII decimal bytes)

The envelope is written as Go's ``encoding/json`` writes ``dsse.Envelope`` (the field order
above, compact), which is what cosign stores in ``.att`` layers. It is read strictly: exactly
those members (``keyid`` may be absent, as DSSE allows), standard base64 with padding and no
spare bits, no duplicate members, bounded size. ``keyid`` is an unauthenticated hint: opkey
writes ``""`` (as cosign does), because go-securesystemslib skips a signature whose non-empty
``keyid`` is not the SSH fingerprint of the verifying key.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from opkey.errors import FormatError
from opkey.jose import go_json, parse_json_object

__all__ = [
    "DSSE_MEDIA_TYPE",
    "MAX_ENVELOPE_BYTES",
    "Envelope",
    "EnvelopeSignature",
    "pae",
    "std_b64decode",
]

#: The media type of a DSSE envelope (an ``.att`` layer, a referrer's layer).
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
#: Largest envelope read or written: a statement with a large predicate (a scan report, an
#: SBOM excerpt) fits; more is refused rather than downloaded and parsed.
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
#: Signatures one envelope may hold.
_MAX_SIGNATURES = 16
_MAX_KEYID = 256


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE pre-authentication encoding of ``payload`` with ``payload_type``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def std_b64decode(text: str, *, what: str) -> bytes:
    """Standard base64 (RFC 4648 §4), padded and canonical; anything else is a FormatError."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not standard base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise FormatError(f"{what} is not canonical standard base64 (padded, no spare bits)")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    """One signature of an envelope: the raw signature bytes over the PAE, and the hint."""

    sig: bytes = field(repr=False)
    keyid: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope: payload type, payload bytes and signatures (see the module doc)."""

    payload_type: str
    payload: bytes = field(repr=False)
    signatures: tuple[EnvelopeSignature, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "signatures", tuple(self.signatures))
        if not self.payload_type:
            raise FormatError("DSSE envelope: payloadType must be a non-empty string")
        if not isinstance(self.payload, bytes):
            raise TypeError("DSSE envelope payload must be bytes")
        if not self.signatures:
            raise FormatError("DSSE envelope: no signatures")
        if len(self.signatures) > _MAX_SIGNATURES:
            raise FormatError(
                f"DSSE envelope: {len(self.signatures)} signatures is more than {_MAX_SIGNATURES}"
            )

    @property
    def pae(self) -> bytes:
        """The bytes every signature of the envelope signs."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> bytes:
        """The envelope as Go writes it: compact, fields in DSSE's struct order."""
        document = {
            "payloadType": self.payload_type,
            "payload": _b64(self.payload),
            "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig)} for s in self.signatures],
        }
        data = go_json(document, sort_keys=False)
        if len(data) > MAX_ENVELOPE_BYTES:
            raise FormatError(
                f"DSSE envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}",
                expected=MAX_ENVELOPE_BYTES,
                found=len(data),
            )
        return data

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse an envelope strictly (see the module documentation)."""
        if len(data) > MAX_ENVELOPE_BYTES:
            raise FormatError(f"DSSE envelope exceeds {MAX_ENVELOPE_BYTES} bytes")
        document = parse_json_object(data, what="DSSE envelope", max_length=MAX_ENVELOPE_BYTES)
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Any) -> Envelope:
        """Validate a decoded envelope object."""
        if not isinstance(document, dict):
            raise FormatError("DSSE envelope must be a JSON object")
        if set(document) != {"payloadType", "payload", "signatures"}:
            raise FormatError(
                "DSSE envelope: expected exactly the members payloadType, payload and "
                f"signatures, found {sorted(document)}",
                found=sorted(document),
            )
        payload_type, payload, signatures = (
            document["payloadType"],
            document["payload"],
            document["signatures"],
        )
        if not isinstance(payload_type, str):
            raise FormatError("DSSE envelope: payloadType must be a string")
        if not isinstance(payload, str):
            raise FormatError("DSSE envelope: payload must be a base64 string")
        if not isinstance(signatures, list):
            raise FormatError("DSSE envelope: signatures must be an array")
        parsed: list[EnvelopeSignature] = []
        for index, item in enumerate(signatures):
            what = f"DSSE envelope signatures[{index}]"
            if not isinstance(item, dict) or not set(item) <= {"keyid", "sig"} or "sig" not in item:
                raise FormatError(f"{what}: expected an object with sig (and keyid)")
            keyid = item.get("keyid", "")
            if not isinstance(keyid, str) or len(keyid) > _MAX_KEYID:
                raise FormatError(f"{what}: keyid must be a string of at most {_MAX_KEYID}")
            if not isinstance(item["sig"], str) or not item["sig"]:
                raise FormatError(f"{what}: sig must be a non-empty base64 string")
            parsed.append(EnvelopeSignature(std_b64decode(item["sig"], what=f"{what}.sig"), keyid))
        return cls(payload_type, std_b64decode(payload, what="DSSE payload"), tuple(parsed))
