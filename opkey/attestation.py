"""Attestations as opkey writes them: a DSSE envelope, the PK token, and what binds the two.

An attestation is an in-toto statement (:mod:`opkey.intoto`) in a DSSE envelope
(:mod:`opkey.dsse`) whose one signature is made by the PK token's ephemeral key over the
envelope's pre-authentication encoding (PAE), in the encoding ``cosign verify-attestation
--key`` checks (DER for ECDSA, PKCS#1 v1.5 for RSA, raw Ed25519). Beside the envelope travel

* the **PK token** (compact form), which says whose key that is;
* an **OSM over the PAE bytes**, detached (``header..signature``): an OpenPubkey signed message
  by the same key whose ``kid`` is the PK token's hash, so the envelope cannot be presented
  with another PK token for the same key, exactly as image signature layers carry one over
  their payload;
* optionally RFC 3161 **timestamps** over the raw bytes of the DSSE signature;
* optionally the **transparency log entries** of the DSSE signature (a dsse entry on Rekor
  v1, a hashedrekord over the PAE on Rekor v2), with their proofs
  (``spec/transparency-log.md``).

They travel in two forms (``spec/attestations.md`` has both byte for byte):

* **a layer** (``.att`` tag, OCI 1.1 referrer): the blob is the envelope JSON, media type
  ``application/vnd.dsse.envelope.v1+json``; annotations carry the rest
  (:meth:`SignedAttestation.layer_annotations`);
* **an attestation bundle** for files and digests (``spec/bundle.md``)::

      {"mediaType": "application/vnd.opkey.attestation.v1+json",
       "pktoken": {…}, "dsseEnvelope": {…}, "signature": "<header..signature>",
       "timestamps": ["<base64 DER>", …], "tlogEntries": [{…}, …]}
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opkey.bundle import (
    MAX_BUNDLE_TIMESTAMPS,
    MAX_BUNDLE_TLOG_ENTRIES,
    read_timestamps,
    read_tlog_entries,
)
from opkey.cosign import COSIGN_SIGNATURE, OPKEY_OSM, OPKEY_PKTOKEN, OPKEY_TLOG
from opkey.dsse import MAX_ENVELOPE_BYTES, Envelope
from opkey.errors import FormatError
from opkey.jose import b64url_encode, parse_json_object
from opkey.pktoken import PKToken

if TYPE_CHECKING:
    from opkey.tlog.entry import LogEntry

__all__ = [
    "ATTESTATION_BUNDLE_MEDIA_TYPE",
    "OPKEY_TIMESTAMP_ANNOTATION",
    "PREDICATE_TYPE_ANNOTATION",
    "SignedAttestation",
    "is_attestation_document",
    "split_detached",
]

#: The media type of an attestation bundle document.
ATTESTATION_BUNDLE_MEDIA_TYPE = "application/vnd.opkey.attestation.v1+json"
#: cosign's layer annotation naming the statement's predicate type (``.att`` layers).
PREDICATE_TYPE_ANNOTATION = "predicateType"
#: The annotation of an attestation layer holding an RFC 3161 timestamp over the DSSE
#: signature, in cosign's value format. Not cosign's own annotation: for attestation layers
#: cosign stamps the envelope bytes, not the signature, and would misread this token.
OPKEY_TIMESTAMP_ANNOTATION = "dev.opkey/rfc3161timestamp"

_MEMBERS = ("mediaType", "pktoken", "dsseEnvelope", "signature", "timestamps", "tlogEntries")
#: An attestation bundle: the envelope, the PK token and a few timestamps.
_MAX_BUNDLE_BYTES = MAX_ENVELOPE_BYTES + 512 * 1024


def split_detached(osm: str, *, what: str) -> tuple[str, str]:
    """The protected header and signature of a detached JWS ``header..signature``."""
    parts = osm.split(".")
    if len(parts) != 3 or parts[1] or not parts[0] or not parts[2]:
        raise FormatError(f"{what} must be a detached JWS 'header..signature'")
    return parts[0], parts[2]


def is_attestation_document(document: Mapping[str, Any]) -> bool:
    """Whether a parsed JSON document declares itself an attestation bundle."""
    return document.get("mediaType") == ATTESTATION_BUNDLE_MEDIA_TYPE


@dataclass(frozen=True)
class SignedAttestation:
    """An envelope with the PK token, the detached OSM over its PAE, and timestamps."""

    envelope: Envelope
    pktoken: PKToken
    osm: str
    timestamps: Sequence[bytes] = ()
    #: The envelope bytes as stored (a layer's blob), when read from a registry.
    envelope_json: bytes | None = field(default=None, repr=False, compare=False)
    #: The transparency log entries of the DSSE signature.
    tlog_entries: Sequence[LogEntry] = ()

    def __post_init__(self) -> None:
        split_detached(self.osm, what="attestation signature")
        stamps = tuple(self.timestamps)
        if len(stamps) > MAX_BUNDLE_TIMESTAMPS:
            raise FormatError(f"an attestation carries at most {MAX_BUNDLE_TIMESTAMPS} timestamps")
        object.__setattr__(self, "timestamps", stamps)
        entries = tuple(self.tlog_entries)
        if len(entries) > MAX_BUNDLE_TLOG_ENTRIES:
            raise FormatError(
                f"an attestation carries at most {MAX_BUNDLE_TLOG_ENTRIES} log entries"
            )
        object.__setattr__(self, "tlog_entries", entries)
        if len(self.envelope.signatures) != 1:
            raise FormatError(
                f"an opkey attestation's envelope has one signature, found "
                f"{len(self.envelope.signatures)}"
            )

    @property
    def signature(self) -> bytes:
        """The raw DSSE signature over the PAE (what timestamps stamp)."""
        return self.envelope.signatures[0].sig

    @property
    def attached_osm(self) -> str:
        """The OSM with the PAE bytes attached as its payload (compact JWS)."""
        header, signature = split_detached(self.osm, what="attestation signature")
        return f"{header}.{b64url_encode(self.envelope.pae)}.{signature}"

    def envelope_bytes(self) -> bytes:
        """The envelope JSON: as stored when read, else as opkey writes it."""
        return self.envelope_json if self.envelope_json is not None else self.envelope.to_json()

    def layer_annotations(self, predicate_type: str) -> dict[str, str]:
        """The annotations of the envelope's layer (``.att`` tag or referrer)."""
        annotations = {
            COSIGN_SIGNATURE: "",  # as cosign writes attestation layers: the signature is inside
            PREDICATE_TYPE_ANNOTATION: predicate_type,
            OPKEY_PKTOKEN: self.pktoken.to_compact(),
            OPKEY_OSM: self.osm,
        }
        if self.timestamps:
            if len(self.timestamps) > 1:
                raise FormatError("an attestation layer carries one RFC 3161 timestamp")
            stamp = base64.b64encode(self.timestamps[0]).decode("ascii")
            annotations[OPKEY_TIMESTAMP_ANNOTATION] = f'{{"SignedRFC3161Timestamp":"{stamp}"}}'
        if self.tlog_entries:
            if len(self.tlog_entries) > 1:
                raise FormatError("an attestation layer carries one transparency log entry")
            (entry,) = self.tlog_entries
            from opkey.tlog.rekor import transparency_log_entry

            annotations[OPKEY_TLOG] = json.dumps(
                transparency_log_entry(entry), separators=(",", ":")
            )
        return annotations

    # -- the bundle document -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The attestation bundle document."""
        document: dict[str, Any] = {
            "mediaType": ATTESTATION_BUNDLE_MEDIA_TYPE,
            "pktoken": json.loads(self.pktoken.to_json()),
            "dsseEnvelope": json.loads(self.envelope.to_json()),
            "signature": self.osm,
        }
        if self.timestamps:
            document["timestamps"] = [base64.b64encode(t).decode("ascii") for t in self.timestamps]
        if self.tlog_entries:
            from opkey.tlog.rekor import transparency_log_entry

            document["tlogEntries"] = [transparency_log_entry(e) for e in self.tlog_entries]
        return document

    def to_json(self) -> bytes:
        """The attestation bundle as indented UTF-8 JSON."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> SignedAttestation:
        """Parse an attestation bundle strictly."""
        document = parse_json_object(data, what="attestation bundle", max_length=_MAX_BUNDLE_BYTES)
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> SignedAttestation:
        """Validate a decoded attestation bundle."""
        if not is_attestation_document(document):
            raise FormatError(
                f"not an opkey attestation bundle (mediaType {document.get('mediaType')!r})",
                expected=ATTESTATION_BUNDLE_MEDIA_TYPE,
                found=document.get("mediaType"),
            )
        unknown = set(document) - set(_MEMBERS)
        missing = {"pktoken", "dsseEnvelope", "signature"} - set(document)
        if unknown or missing:
            raise FormatError(
                f"attestation bundle: unexpected members {sorted(unknown)}, missing "
                f"{sorted(missing)}"
            )
        pktoken = document["pktoken"]
        if not isinstance(pktoken, Mapping):
            raise FormatError("attestation bundle: 'pktoken' must be a PK token in JWS JSON")
        signature = document["signature"]
        if not isinstance(signature, str):
            raise FormatError("attestation bundle: 'signature' must be a detached JWS string")
        envelope = document["dsseEnvelope"]
        if not isinstance(envelope, Mapping):
            raise FormatError("attestation bundle: 'dsseEnvelope' must be a DSSE envelope object")
        stamps = read_timestamps(document["timestamps"]) if "timestamps" in document else ()
        entries = read_tlog_entries(document["tlogEntries"]) if "tlogEntries" in document else ()
        return cls(
            Envelope.from_dict(dict(envelope)),
            PKToken.from_json(pktoken),
            signature,
            stamps,
            tlog_entries=entries,
        )
