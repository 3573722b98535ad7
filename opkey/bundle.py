"""Bundles: everything needed to verify one signature offline, in one JSON document.

::

    {
      "mediaType": "application/vnd.opkey.bundle.v1+json",
      "pktoken": { …PK token, JWS JSON general serialization… },
      "signature": "<OSM: compact JWS by the ephemeral key over the signed statement>",
      "timestamps": ["<standard base64 of a DER RFC 3161 TimeStampResp>", …],
      "tlogEntries": [{ …Sigstore TransparencyLogEntry, protobuf JSON… }, …]
    }

The signed statement is the OSM payload (for files and digests, the artifact statement of
:mod:`opkey.artifact`). Given a bundle, the issuer's keys (pinned JWKS or archive) and a policy,
verification needs no network access. See ``spec/bundle.md``.

``timestamps`` is optional (bundles without it are as before): RFC 3161 time-stamp responses
over the raw bytes of the OSM's signature, from authorities the signer asked. The bundle keeps
their DER bytes; what they prove is decided by the verifier against the authorities *it*
trusts (:mod:`opkey.timestamp`, ``spec/timestamps.md``), never here.

``tlogEntries`` is optional too: the transparency log entries of the OSM's signature, each with
its inclusion proof and checkpoint (and on Rekor v1 its signed entry timestamp), in the shape of
a Sigstore bundle's ``tlogEntries`` (:mod:`opkey.tlog`, ``spec/transparency-log.md``). Which
logs count is again the verifier's choice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opkey.errors import FormatError
from opkey.jose import CompactJWS, b64std_decode, b64std_encode, parse_compact, parse_json_object
from opkey.pktoken import PKToken

if TYPE_CHECKING:
    # The log modules are loaded when a bundle carries entries: most bundles do not, and
    # start-up time is part of every verification.
    from opkey.tlog.entry import LogEntry

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "MAX_BUNDLE_TIMESTAMPS",
    "MAX_BUNDLE_TLOG_ENTRIES",
    "Bundle",
    "read_timestamps",
    "read_tlog_entries",
]

BUNDLE_MEDIA_TYPE = "application/vnd.opkey.bundle.v1+json"
#: Timestamps one bundle may carry (one per authority the signer asked).
MAX_BUNDLE_TIMESTAMPS = 8
#: The size limit of one time-stamp response (``opkey.timestamp.MAX_TOKEN_BYTES``).
_MAX_TIMESTAMP_BYTES = 64 * 1024
#: Log entries one bundle may carry (one per log the signer wrote to).
MAX_BUNDLE_TLOG_ENTRIES = 4
_MEMBERS = ("mediaType", "pktoken", "signature", "timestamps", "tlogEntries")


@dataclass(frozen=True, slots=True)
class Bundle:
    """A PK token, one signed message (OSM) made with its ephemeral key, and optionally
    RFC 3161 time-stamp responses (DER) over that OSM's signature bytes and the transparency
    log entries of that signature."""

    pktoken: PKToken
    signature: str
    timestamps: Sequence[bytes] = ()
    tlog_entries: Sequence[LogEntry] = ()
    #: ``signature`` as parsed when the bundle was built, so verification does not parse twice.
    signature_jws: CompactJWS = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "signature_jws", parse_compact(self.signature, what="bundle signature")
        )
        stamps = tuple(self.timestamps)
        _check_count(len(stamps), "timestamps", MAX_BUNDLE_TIMESTAMPS)
        for index, der in enumerate(stamps):
            if not isinstance(der, bytes):
                raise TypeError(f"bundle timestamps[{index}] must be DER bytes")
            if not der or len(der) > _MAX_TIMESTAMP_BYTES:
                raise FormatError(
                    f"bundle: timestamps[{index}] must be 1 to {_MAX_TIMESTAMP_BYTES} bytes of DER"
                )
        object.__setattr__(self, "timestamps", stamps)
        entries = tuple(self.tlog_entries)
        _check_count(len(entries), "log entries", MAX_BUNDLE_TLOG_ENTRIES)
        if entries:
            from opkey.tlog.entry import LogEntry
        seen: set[tuple[bytes, int]] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, LogEntry):
                raise TypeError(f"bundle tlog_entries[{index}] must be a LogEntry")
            if (entry.log_id, entry.log_index) in seen:
                raise FormatError(
                    f"bundle: tlogEntries[{index}] repeats an entry (log {entry.log_id.hex()}, "
                    f"index {entry.log_index})"
                )
            seen.add((entry.log_id, entry.log_index))
        object.__setattr__(self, "tlog_entries", entries)

    @classmethod
    def from_json(cls, data: bytes | str) -> Bundle:
        """Parse a bundle document strictly."""
        document = parse_json_object(data, what="bundle")
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Bundle:
        """Validate a decoded bundle document."""
        media_type = document.get("mediaType")
        if media_type != BUNDLE_MEDIA_TYPE:
            raise FormatError(
                f"not an opkey bundle (mediaType {media_type!r})",
                expected=BUNDLE_MEDIA_TYPE,
                found=media_type,
            )
        unknown = set(document) - set(_MEMBERS)
        if unknown:
            raise FormatError(f"bundle: unexpected members {sorted(unknown)}")
        pktoken = document.get("pktoken")
        if not isinstance(pktoken, Mapping):
            raise FormatError("bundle: 'pktoken' must be a PK token in JWS JSON serialization")
        signature = document.get("signature")
        if not isinstance(signature, str):
            raise FormatError("bundle: 'signature' must be a compact JWS string")
        timestamps = read_timestamps(document["timestamps"]) if "timestamps" in document else ()
        entries = read_tlog_entries(document["tlogEntries"]) if "tlogEntries" in document else ()
        return cls(
            pktoken=PKToken.from_json(pktoken),
            signature=signature,
            timestamps=timestamps,
            tlog_entries=entries,
        )

    def with_timestamps(self, timestamps: Sequence[bytes]) -> Bundle:
        """The same signature with ``timestamps`` (DER time-stamp responses) added."""
        return Bundle(
            self.pktoken, self.signature, (*self.timestamps, *timestamps), self.tlog_entries
        )

    def with_tlog_entries(self, entries: Sequence[LogEntry]) -> Bundle:
        """The same signature with transparency log ``entries`` added."""
        return Bundle(self.pktoken, self.signature, self.timestamps, (*self.tlog_entries, *entries))

    def to_dict(self) -> dict[str, Any]:
        """The bundle document."""
        document: dict[str, Any] = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "pktoken": json.loads(self.pktoken.to_json()),
            "signature": self.signature,
        }
        if self.timestamps:
            document["timestamps"] = [b64std_encode(der) for der in self.timestamps]
        if self.tlog_entries:
            from opkey.tlog.rekor import transparency_log_entry

            document["tlogEntries"] = [transparency_log_entry(e) for e in self.tlog_entries]
        return document

    def to_json(self) -> bytes:
        """The bundle document as indented UTF-8 JSON (for files people may look at)."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()


def _bounded_array(value: Any, member: str, items: str, noun: str, limit: int) -> list[Any]:
    """The optional array ``member`` (present, so non-empty) of at most ``limit`` ``items``
    (counted as ``noun`` in errors): a bundle's evidence members are either left out or hold
    something, and are bounded."""
    if not isinstance(value, list) or not value:
        raise FormatError(
            f"bundle: {member!r} must be a non-empty array of {items} (leave the member "
            "out when there are none)"
        )
    _check_count(len(value), noun, limit)
    return value


def _check_count(count: int, noun: str, limit: int) -> None:
    """At most ``limit`` items of evidence (``noun``), whether built or read: a bundle's size
    is bounded before anything in it is parsed or verified."""
    if count > limit:
        raise FormatError(
            f"bundle: {count} {noun} is more than {limit}", expected=limit, found=count
        )


def read_timestamps(value: Any) -> tuple[bytes, ...]:
    """The ``timestamps`` member: a non-empty array of canonical standard base64 strings
    (the same member in attestation bundles, :mod:`opkey.attestation`)."""
    texts = _bounded_array(
        value, "timestamps", "base64 strings", "timestamps", MAX_BUNDLE_TIMESTAMPS
    )
    tokens: list[bytes] = []
    for index, text in enumerate(texts):
        what = f"bundle: timestamps[{index}]"
        tokens.append(
            b64std_decode(text, what=what, max_length=(_MAX_TIMESTAMP_BYTES * 4) // 3 + 4)
        )
    return tuple(tokens)


def read_tlog_entries(value: Any) -> tuple[LogEntry, ...]:
    """The ``tlogEntries`` member: a non-empty array of Sigstore ``TransparencyLogEntry``."""
    items = _bounded_array(
        value, "tlogEntries", "log entries", "log entries", MAX_BUNDLE_TLOG_ENTRIES
    )
    from opkey.tlog.rekor import entry_from_transparency_log_entry

    entries: list[LogEntry] = []
    for index, item in enumerate(items):
        try:
            entries.append(entry_from_transparency_log_entry(item))
        except FormatError as exc:
            raise FormatError(f"bundle: tlogEntries[{index}]: {exc.message}") from None
    return tuple(entries)
