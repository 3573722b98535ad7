"""OCI manifests and descriptors: strict parsing and byte-stable encoding.

A manifest is identified by the sha256 of its exact bytes, so a :class:`Manifest` always keeps
the bytes it was parsed from (``raw``); the parsed form is read-only. Parsing is
:mod:`opkey.jose`'s strict parsing (UTF-8, no duplicate member names, no ``NaN``, bounded
depth), with the size limit of a manifest (4 MiB, what registries accept) instead of a
token's 256 KiB: a signature manifest with many PK-token annotations can exceed the latter.

Manifests opkey writes are encoded the way Go's ``encoding/json`` encodes go-containerregistry's
structs (fields in struct order, map keys sorted, compact, ``<``, ``>`` and ``&`` escaped), so a
signature manifest written by opkey has the same bytes as one written by cosign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from opkey.digest import Digest
from opkey.errors import ConfigError, FormatError
from opkey.jose import freeze_json, go_json, parse_json_object, thaw_json
from opkey.registry.mediatypes import IMAGE_MANIFESTS, MANIFEST_TYPES
from opkey.registry.reference import check_digest_value, parse_digest
from opkey.remote_text import printable

__all__ = [
    "MAX_MANIFEST_BYTES",
    "Descriptor",
    "ImageManifest",
    "Manifest",
    "encode_go_json",
    "parse_manifest_json",
]

#: Largest manifest accepted or written (the limit distribution and most registries enforce).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_DESCRIPTOR_ORDER = ("mediaType", "size", "digest", "data", "urls", "annotations", "platform")


def parse_manifest_json(data: bytes, *, what: str = "manifest") -> dict[str, Any]:
    """Parse a JSON object strictly, within :data:`MAX_MANIFEST_BYTES`."""
    return parse_json_object(data, what=what, max_length=MAX_MANIFEST_BYTES)


def encode_go_json(value: Any) -> bytes:
    """Compact JSON in the given key order, escaped like Go's ``json.Marshal``.

    Callers build dicts in Go struct-field order and sort map keys themselves.
    """
    return go_json(value, sort_keys=False)


def _string_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FormatError(f"{what}: expected an object of strings, found {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise FormatError(f"{what}: value of {key!r} must be a string")
    return dict(value)


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about one blob.

    ``extra`` keeps members opkey does not interpret (``urls``, ``platform``…) so that a
    descriptor read from a registry is written back unchanged.
    """

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        check_digest_value(self.digest, what="descriptor digest")
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @classmethod
    def from_json(cls, value: Any, *, what: str = "descriptor") -> Descriptor:
        """Validate one descriptor object (sha256 digests only, non-negative integer size)."""
        if not isinstance(value, dict):
            raise FormatError(f"{what}: expected an object, found {type(value).__name__}")
        media_type = value.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise FormatError(f"{what}: 'mediaType' must be a non-empty string")
        digest = value.get("digest")
        if not isinstance(digest, str):
            raise FormatError(f"{what}: 'digest' must be a string")
        try:
            parsed = parse_digest(digest, what=f"{what} digest")
        except ConfigError as exc:
            raise FormatError(str(exc), found=digest) from None
        size = value.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"{what}: 'size' must be a non-negative integer, found {size!r}")
        annotations = _string_map(value.get("annotations", {}), f"{what} annotations")
        extra = {
            k: freeze_json(v)
            for k, v in value.items()
            if k not in ("mediaType", "digest", "size", "annotations")
        }
        return cls(media_type, parsed, size, annotations, extra)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as a dict in go-containerregistry's field order."""
        members: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": str(self.digest),
        }
        for key in _DESCRIPTOR_ORDER[3:]:
            if key == "annotations":
                if self.annotations:
                    members["annotations"] = dict(sorted(self.annotations.items()))
            elif key in self.extra:
                members[key] = thaw_json(self.extra[key])
        for key in sorted(self.extra):
            if key not in members:
                members[key] = thaw_json(self.extra[key])
        return members


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest as stored: its digest, media type and exact bytes, plus the parsed JSON."""

    digest: Digest
    media_type: str
    raw: bytes = field(repr=False)
    document: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_bytes(
        cls, raw: bytes, *, content_type: str | None = None, what: str = "manifest"
    ) -> Manifest:
        """Parse ``raw``; the media type comes from the document or else ``content_type``.

        When both are present they must agree: a registry that labels a document differently
        from what it says it is has been tampered with or is broken.
        """
        document = parse_manifest_json(raw, what=what)
        declared = document.get("mediaType")
        if declared is not None and not isinstance(declared, str):
            raise FormatError(f"{what}: 'mediaType' must be a string")
        header = content_type.split(";")[0].strip() if content_type else None
        if declared and header and header != declared and header in MANIFEST_TYPES:
            raise FormatError(
                f"{what}: served as {header} but declares mediaType {printable(declared)!r}",
                expected=header,
                found=declared,
            )
        media_type = declared or header
        if media_type not in MANIFEST_TYPES:
            raise FormatError(
                f"{what}: unsupported manifest media type {media_type!r} "
                f"(expected one of {sorted(MANIFEST_TYPES)})",
                found=media_type,
            )
        if document.get("schemaVersion") != 2:
            raise FormatError(
                f"{what}: schemaVersion must be 2, found {document.get('schemaVersion')!r}"
            )
        return cls(Digest.of_bytes(raw), media_type, raw, freeze_json(document))

    @property
    def size(self) -> int:
        """The manifest's length in bytes (what a descriptor of it records)."""
        return len(self.raw)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """The image view of an OCI or Docker v2 manifest: config, layers and annotations."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))

    @classmethod
    def from_manifest(cls, manifest: Manifest, *, what: str = "manifest") -> ImageManifest:
        """Read config and layers; an index or manifest list is rejected."""
        if manifest.media_type not in IMAGE_MANIFESTS:
            raise FormatError(
                f"{what}: is a {manifest.media_type}, not an image manifest",
                expected=sorted(IMAGE_MANIFESTS),
                found=manifest.media_type,
            )
        document = thaw_json(manifest.document)
        config = Descriptor.from_json(document.get("config"), what=f"{what} config")
        layers_json = document.get("layers")
        if not isinstance(layers_json, list):
            raise FormatError(f"{what}: 'layers' must be an array")
        layers = tuple(
            Descriptor.from_json(item, what=f"{what} layer {index}")
            for index, item in enumerate(layers_json)
        )
        annotations = _string_map(document.get("annotations", {}), f"{what} annotations")
        return cls(manifest.media_type, config, layers, annotations)

    def encode(self) -> bytes:
        """The manifest bytes, field order as go-containerregistry writes them."""
        members: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        members["config"] = self.config.to_json()
        members["layers"] = [layer.to_json() for layer in self.layers]
        if self.annotations:
            members["annotations"] = dict(sorted(self.annotations.items()))
        return encode_go_json(members)

    @staticmethod
    def build(
        media_type: str,
        config: Descriptor,
        layers: Sequence[Descriptor],
        annotations: Mapping[str, str] | None = None,
    ) -> ImageManifest:
        """A new image manifest value (encode it with :meth:`encode`)."""
        return ImageManifest(media_type, config, tuple(layers), annotations or {})
