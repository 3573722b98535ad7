"""Bundles: everything needed to verify one signature offline, in one JSON document.

::

    {
      "mediaType": "application/vnd.opkey.bundle.v1+json",
      "pktoken": { …PK token, JWS JSON general serialization… },
      "signature": "<OSM: compact JWS by the ephemeral key over the signed statement>",
      "timestamps": ["<standard base64 of a DER RFC 3161 TimeStampResp>", …]
    }

The signed statement is the OSM payload (for files and digests, the artifact statement of
:mod:`opkey.artifact`). Given a bundle, the issuer's keys (pinned JWKS or archive) and a policy,
verification needs no network access. See ``spec/bundle.md``.

``timestamps`` is optional (bundles without it are as before): RFC 3161 time-stamp responses
over the raw bytes of the OSM's signature, from authorities the signer asked. The bundle keeps
their DER bytes; what they prove is decided by the verifier against the authorities *it*
trusts (:mod:`opkey.timestamp`, ``spec/timestamps.md``), never here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opkey.errors import FormatError
from opkey.jose import CompactJWS, b64std_decode, b64std_encode, parse_compact, parse_json_object
from opkey.pktoken import PKToken

__all__ = ["BUNDLE_MEDIA_TYPE", "MAX_BUNDLE_TIMESTAMPS", "Bundle", "read_timestamps"]

BUNDLE_MEDIA_TYPE = "application/vnd.opkey.bundle.v1+json"
#: Timestamps one bundle may carry (one per authority the signer asked).
MAX_BUNDLE_TIMESTAMPS = 8
#: The size limit of one time-stamp response (``opkey.timestamp.MAX_TOKEN_BYTES``).
_MAX_TIMESTAMP_BYTES = 64 * 1024
_MEMBERS = ("mediaType", "pktoken", "signature", "timestamps")


@dataclass(frozen=True, slots=True)
class Bundle:
    """A PK token, one signed message (OSM) made with its ephemeral key, and optionally
    RFC 3161 time-stamp responses (DER) over that OSM's signature bytes."""

    pktoken: PKToken
    signature: str
    timestamps: Sequence[bytes] = ()
    #: ``signature`` as parsed when the bundle was built, so verification does not parse twice.
    signature_jws: CompactJWS = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "signature_jws", parse_compact(self.signature, what="bundle signature")
        )
        stamps = tuple(self.timestamps)
        if len(stamps) > MAX_BUNDLE_TIMESTAMPS:
            raise FormatError(
                f"bundle: {len(stamps)} timestamps is more than {MAX_BUNDLE_TIMESTAMPS}",
                expected=MAX_BUNDLE_TIMESTAMPS,
                found=len(stamps),
            )
        for index, der in enumerate(stamps):
            if not isinstance(der, bytes):
                raise TypeError(f"bundle timestamps[{index}] must be DER bytes")
            if not der or len(der) > _MAX_TIMESTAMP_BYTES:
                raise FormatError(
                    f"bundle: timestamps[{index}] must be 1 to {_MAX_TIMESTAMP_BYTES} bytes of DER"
                )
        object.__setattr__(self, "timestamps", stamps)

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
        return cls(pktoken=PKToken.from_json(pktoken), signature=signature, timestamps=timestamps)

    def with_timestamps(self, timestamps: Sequence[bytes]) -> Bundle:
        """The same signature with ``timestamps`` (DER time-stamp responses) added."""
        return Bundle(self.pktoken, self.signature, (*self.timestamps, *timestamps))

    def to_dict(self) -> dict[str, Any]:
        """The bundle document."""
        document: dict[str, Any] = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "pktoken": json.loads(self.pktoken.to_json()),
            "signature": self.signature,
        }
        if self.timestamps:
            document["timestamps"] = [b64std_encode(der) for der in self.timestamps]
        return document

    def to_json(self) -> bytes:
        """The bundle document as indented UTF-8 JSON (for files people may look at)."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()


def read_timestamps(value: Any) -> tuple[bytes, ...]:
    """The ``timestamps`` member: a non-empty array of canonical standard base64 strings
    (the same member in attestation bundles, :mod:`opkey.attestation`)."""
    if not isinstance(value, list) or not value:
        raise FormatError(
            "bundle: 'timestamps' must be a non-empty array of base64 strings (leave the member "
            "out when there are none)"
        )
    if len(value) > MAX_BUNDLE_TIMESTAMPS:
        raise FormatError(
            f"bundle: {len(value)} timestamps is more than {MAX_BUNDLE_TIMESTAMPS}",
            expected=MAX_BUNDLE_TIMESTAMPS,
            found=len(value),
        )
    tokens: list[bytes] = []
    for index, text in enumerate(value):
        what = f"bundle: timestamps[{index}]"
        tokens.append(
            b64std_decode(text, what=what, max_length=(_MAX_TIMESTAMP_BYTES * 4) // 3 + 4)
        )
    return tuple(tokens)
