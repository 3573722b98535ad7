"""OCI 1.1 referrers: signatures and attestations as manifests whose ``subject`` is the image.

A referrer is an OCI image manifest with a ``subject`` (the image's descriptor) and an
``artifactType``; registries that serve the referrers API
(``GET /v2/<name>/referrers/<digest>``) list every manifest whose subject is that digest.
opkey writes one referrer per signature or attestation (``spec/registry.md`` §7):

* ``artifactType`` and the config's media type: ``application/vnd.dev.cosign.artifact.sig.v1+json``
  for a signature (cosign's OCI 1.1 signature type), ``application/vnd.in-toto+json`` for an
  attestation (cosign's). The config blob is ``{}``: with its media type equal to the artifact
  type, registries that report the config's media type as the artifact type (go-containerregistry's
  does) list the right type too;
* one layer: exactly the layer the tag layout would hold (a simple-signing payload, a DSSE
  envelope) with the same annotations;
* annotations: ``in-toto.io/predicate-type`` for attestations (the index copies manifest
  annotations, so a reader can pick attestations by type without fetching them).

**Registries without the referrers API** (distribution 2.8 answers 404) get the spec's
fallback, the **referrers tag schema**: an OCI index under the tag ``sha256-<hex>`` listing the
referrers. That tag is read-modify-write like ``.sig``, so it goes through the same journal
and merge loop (:mod:`opkey.registry.journal`): each referrer manifest is itself the journal
entry, pushed under ``sha256-<hex>.referrers.journal-<32 hex of its digest>``. With the API,
the referrer is pushed by digest and the registry keeps the index: nothing to race.

Reading (:func:`list_referrers`) asks the API first and falls back to the tag on 404, as the
distribution spec says; every referrer manifest is fetched by digest (so its bytes are
checked) and must name the image as its subject.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opkey.digest import Digest
from opkey.errors import FormatError, RegistryError
from opkey.jose import thaw_json
from opkey.registry.client import RegistryClient
from opkey.registry.journal import (
    Collection,
    CollectionState,
    Encoded,
    attach_entry,
    check_annotations,
    garbage,
    repair_entries,
)
from opkey.registry.manifest import (
    Descriptor,
    Manifest,
    encode_go_json,
    parse_manifest_json,
)
from opkey.registry.mediatypes import (
    COSIGN_SIGNATURE_ARTIFACT,
    INTOTO_ARTIFACT,
    OCI_INDEX,
    OCI_MANIFEST,
)
from opkey.registry.reference import ImageReference
from opkey.remote_text import printable

__all__ = [
    "EMPTY_CONFIG",
    "MAX_REFERRERS",
    "PREDICATE_TYPE_ANNOTATION",
    "REFERRERS_TAG",
    "Referrer",
    "ReferrerLayer",
    "Referrers",
    "attach_referrer",
    "list_referrers",
    "referrer_manifest",
    "referrers_tag",
    "repair_referrers",
]

#: The config blob of opkey's referrers: an empty JSON object.
EMPTY_CONFIG = b"{}"
#: Referrers of one image considered when reading, and the most the tag index may list.
MAX_REFERRERS = 1024
#: The manifest annotation naming an attestation's predicate type (as BuildKit writes it).
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"
#: The artifact types opkey writes, and reads back.
_OURS = (COSIGN_SIGNATURE_ARTIFACT, INTOTO_ARTIFACT)

Source = Literal["api", "tag", "none"]


def referrers_tag(digest: Digest) -> str:
    """The referrers tag of ``digest`` (OCI distribution 1.1's fallback): ``sha256-<hex>``."""
    return REFERRERS_TAG.tag(digest)


def referrer_manifest(
    subject: Manifest,
    artifact_type: str,
    layer: Descriptor,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of a referrer manifest of ``subject`` with one ``layer`` (see the module)."""
    members: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": Descriptor(artifact_type, Digest.of_bytes(EMPTY_CONFIG), 2).to_json(),
        "layers": [layer.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
    }
    if annotations:
        members["annotations"] = dict(sorted(check_annotations(annotations).items()))
    return encode_go_json(members)


@dataclass(frozen=True)
class _ReferrersTag(Collection):
    """The referrers tag schema as a journal collection (see :mod:`opkey.registry.journal`)."""

    kind: str = "referrer"
    holds: str = "an OCI referrers index"
    suffix: str = ""
    max_entries: int = MAX_REFERRERS
    document: str = "index"

    def journal_mark(self) -> str:
        return ".referrers.journal-"

    def identity(self, entry: Descriptor) -> str:
        return entry.digest.hex

    def _state(self, manifest: Manifest, ref: ImageReference) -> CollectionState:
        entries = _index_entries(manifest.document, f"index {ref}")
        if manifest.media_type != OCI_INDEX:
            raise garbage(ref, self.kind, self.holds, f"it is a {printable(manifest.media_type)}")
        annotations = manifest.document.get("annotations") or {}
        return CollectionState(manifest, OCI_INDEX, entries, dict(annotations))

    def _entry(self, manifest: Manifest, ref: ImageReference, digest: Digest) -> Descriptor | None:
        return _descriptor_of(manifest, digest)

    def _encode(self, state: CollectionState | None, entries: Sequence[Descriptor]) -> Encoded:
        members: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry.to_json() for entry in entries],
        }
        if state is not None and state.annotations:
            members["annotations"] = dict(sorted(state.annotations.items()))
        return Encoded(encode_go_json(members), OCI_INDEX)


#: The referrers tag as a collection.
REFERRERS_TAG = _ReferrersTag()


def _index_entries(document: Mapping[str, Any], what: str) -> tuple[Descriptor, ...]:
    manifests = thaw_json(document).get("manifests")
    if not isinstance(manifests, list):
        raise FormatError(f"{what}: 'manifests' must be an array")
    return tuple(
        Descriptor.from_json(item, what=f"{what} manifests[{index}]")
        for index, item in enumerate(manifests)
    )


def _descriptor_of(manifest: Manifest, digest: Digest) -> Descriptor | None:
    """The index entry of referrer ``manifest``, or ``None`` if its subject is not ``digest``."""
    document = thaw_json(manifest.document)
    if manifest.media_type != OCI_MANIFEST:
        return None
    subject = document.get("subject")
    if not isinstance(subject, dict) or subject.get("digest") != str(digest):
        return None
    extra: dict[str, Any] = {}
    artifact_type = document.get("artifactType")
    if artifact_type is None:
        config = document.get("config")
        artifact_type = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(artifact_type, str) and artifact_type:
        extra["artifactType"] = artifact_type
    annotations = document.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise FormatError("referrer annotations must be strings")
    return Descriptor(OCI_MANIFEST, manifest.digest, manifest.size, annotations, extra)


@dataclass(frozen=True, slots=True)
class ReferrerPushed:
    """Where a referrer went: its manifest digest, and whether the registry's referrers API
    took it (``api``) or the referrers tag lists it (``tag``)."""

    digest: Digest
    source: Source
    writes: int = 0


def attach_referrer(
    client: RegistryClient,
    image: ImageReference,
    artifact_type: str,
    payload: bytes,
    layer_media_type: str,
    layer_annotations: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
    registry_api: bool | None = None,
) -> ReferrerPushed:
    """Store ``payload`` as the one layer of a referrer of ``image`` (see the module).

    ``registry_api`` says whether the registry serves the referrers API (asked when ``None``).
    """
    image.require_digest()
    subject = client.get_manifest(image)
    layer = Descriptor(
        layer_media_type,
        Digest.of_bytes(payload),
        len(payload),
        check_annotations(layer_annotations),
    )
    raw = referrer_manifest(subject, artifact_type, layer, annotations)
    digest = Digest.of_bytes(raw)
    if registry_api is None:
        registry_api = client.find_referrers(image) is not None
    client.push_blob(image, payload)
    client.push_blob(image, EMPTY_CONFIG)
    if registry_api:
        client.put_manifest(image.with_digest(digest), raw, OCI_MANIFEST, blobs_pushed=True)
        return ReferrerPushed(digest, "api")
    manifest = Manifest.from_bytes(raw, what="referrer")
    entry = _descriptor_of(manifest, image.require_digest())
    assert entry is not None

    def record(journal_ref: ImageReference, state: CollectionState | None) -> None:
        client.put_manifest(journal_ref, raw, OCI_MANIFEST, blobs_pushed=True)

    attached = attach_entry(client, image, REFERRERS_TAG, entry, record)
    return ReferrerPushed(digest, "tag", attached.writes)


def repair_referrers(client: RegistryClient, image: ImageReference) -> int:
    """Merge every journalled referrer missing from the referrers tag back into it."""
    return repair_entries(client, image, REFERRERS_TAG)


@dataclass(frozen=True, slots=True)
class ReferrerLayer:
    """The one layer of an opkey referrer: its blob (checked) and descriptor."""

    payload: bytes = field(repr=False)
    descriptor: Descriptor

    @property
    def annotations(self) -> Mapping[str, str]:
        """The layer's annotations."""
        return self.descriptor.annotations


@dataclass(frozen=True, slots=True)
class Referrer:
    """One entry of an image's referrers: its descriptor (artifact type, annotations)."""

    descriptor: Descriptor

    @property
    def digest(self) -> Digest:
        """The referrer manifest's digest."""
        return self.descriptor.digest

    @property
    def artifact_type(self) -> str | None:
        """The artifact type the index gives, if any."""
        value = self.descriptor.extra.get("artifactType")
        return value if isinstance(value, str) else None

    @property
    def ours(self) -> bool:
        """Whether it may be a signature or attestation in opkey's format."""
        return self.artifact_type in _OURS or self.artifact_type is None


@dataclass(frozen=True)
class Referrers:
    """An image's referrers as the registry lists them: from the API, the tag, or none."""

    client: RegistryClient
    image: ImageReference
    entries: tuple[Referrer, ...]
    source: Source
    total: int

    def __len__(self) -> int:
        return len(self.entries)

    def layers(
        self, *, max_bytes: int, artifact_types: frozenset[str] = frozenset(_OURS)
    ) -> Iterator[tuple[Referrer, str, ReferrerLayer]]:
        """``(referrer, artifact type, layer)`` for each referrer of ``artifact_types`` (opkey's
        kinds), fetched one at a time: the manifest by digest (bytes checked), its subject must
        be the image, one layer whose blob is downloaded (digest and size checked). Other
        artifacts are skipped (an entry without an artifact type is fetched to find out)."""
        digest = self.image.require_digest()
        for referrer in self.entries:
            listed = referrer.artifact_type
            if listed is not None and listed not in artifact_types:
                continue
            ref = self.image.with_digest(referrer.digest)
            manifest = self.client.get_manifest(ref)
            document = thaw_json(manifest.document)
            artifact_type = document.get("artifactType")
            if manifest.media_type != OCI_MANIFEST or artifact_type not in artifact_types:
                continue
            subject = document.get("subject")
            if not isinstance(subject, dict) or subject.get("digest") != str(digest):
                raise RegistryError(
                    f"referrer {referrer.digest} of {self.image} names another subject",
                    expected=str(digest),
                    found=subject,
                )
            layers = document.get("layers")
            if not isinstance(layers, list) or len(layers) != 1:
                continue
            layer = Descriptor.from_json(layers[0], what=f"referrer {referrer.digest} layer")
            if layer.size > max_bytes:
                raise RegistryError(
                    f"referrer {referrer.digest}: its layer of {layer.size} bytes exceeds "
                    f"the {max_bytes}-byte limit",
                    expected=max_bytes,
                    found=layer.size,
                )
            payload = self.client.get_blob(self.image, layer.digest, max_bytes=max(layer.size, 1))
            if len(payload) != layer.size:
                raise RegistryError(f"referrer {referrer.digest}: layer size differs")
            yield referrer, str(artifact_type), ReferrerLayer(payload, layer)


def list_referrers(
    client: RegistryClient, image: ImageReference, *, max_referrers: int = MAX_REFERRERS
) -> Referrers:
    """The referrers of ``image``: the referrers API's index, or on 404 the referrers tag's."""
    digest = image.require_digest()
    raw = client.find_referrers(image)
    if raw is not None:
        what = f"referrers of {image}"
        document = parse_manifest_json(raw, what=what)
        if document.get("mediaType", OCI_INDEX) != OCI_INDEX:
            raise RegistryError(f"{what}: not an OCI image index")
        try:
            entries = _index_entries(document, what)
        except FormatError as exc:
            raise RegistryError(f"{what}: {exc}") from None
        source: Source = "api"
    else:
        state = REFERRERS_TAG.read(client, image.with_tag(referrers_tag(digest)))
        entries = state.entries if state is not None else ()
        source = "tag" if state is not None else "none"
    listed = tuple(Referrer(e) for e in entries if e.media_type == OCI_MANIFEST)
    return Referrers(client, image, listed[:max_referrers], source, len(listed))
