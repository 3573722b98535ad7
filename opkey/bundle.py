"""Bundles: everything needed to verify one signature offline, in one JSON document.

::

    {
      "mediaType": "application/vnd.opkey.bundle.v1+json",
      "pktoken": { …PK token, JWS JSON general serialization… },
      "signature": "<OSM: compact JWS by the ephemeral key over the signed statement>"
    }

The signed statement is the OSM payload (for files and digests, the artifact statement of
:mod:`opkey.artifact`). Given a bundle, the issuer's keys (pinned JWKS or archive) and a policy,
verification needs no network access. See ``spec/bundle.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opkey.errors import FormatError
from opkey.jose import CompactJWS, parse_compact, parse_json_object
from opkey.pktoken import PKToken

__all__ = ["BUNDLE_MEDIA_TYPE", "Bundle"]

BUNDLE_MEDIA_TYPE = "application/vnd.opkey.bundle.v1+json"


@dataclass(frozen=True, slots=True)
class Bundle:
    """A PK token and one signed message (OSM) made with its ephemeral key."""

    pktoken: PKToken
    signature: str
    #: ``signature`` as parsed when the bundle was built, so verification does not parse twice.
    signature_jws: CompactJWS = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "signature_jws", parse_compact(self.signature, what="bundle signature")
        )

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
        unknown = set(document) - {"mediaType", "pktoken", "signature"}
        if unknown:
            raise FormatError(f"bundle: unexpected members {sorted(unknown)}")
        pktoken = document.get("pktoken")
        if not isinstance(pktoken, Mapping):
            raise FormatError("bundle: 'pktoken' must be a PK token in JWS JSON serialization")
        signature = document.get("signature")
        if not isinstance(signature, str):
            raise FormatError("bundle: 'signature' must be a compact JWS string")
        return cls(pktoken=PKToken.from_json(pktoken), signature=signature)

    def to_dict(self) -> dict[str, Any]:
        """The bundle document."""
        return {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "pktoken": json.loads(self.pktoken.to_json()),
            "signature": self.signature,
        }

    def to_json(self) -> bytes:
        """The bundle document as indented UTF-8 JSON (for files people may look at)."""
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()
