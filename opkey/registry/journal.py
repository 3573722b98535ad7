"""Tags that many writers add to, without losing anyone's entry: the journal and the merge loop.

cosign's signature tag (``sha256-<hex>.sig``), its attestation tag (``sha256-<hex>.att``) and
the OCI 1.1 referrers tag (``sha256-<hex>``, for registries without the referrers API) are
all *collections*: one manifest listing entries (layers; manifest descriptors), that each
writer extends by reading it, adding its entry and writing it back. The registry offers no
compare-and-swap, so two writers that interleave *read, read, write, write* lose the first
one's entry. This module closes that race once, for every such tag (``spec/registry.md`` §3
has the argument):

1. each entry is first stored on its own under a **journal tag**
   ``<collection tag><mark><32 hex of the entry's identity>``, never rewritten with other
   content;
2. the writer then **checks**: it lists the journal, then reads the collection; when something
   listed is missing, it writes back every entry it read plus every missing journal entry (its
   own included), never dropping one, and checks again; a check that still fails right after
   its own write means others are writing too, so it pauses (jittered) before competing;
3. it stops only when a check made after its last write finds nothing missing.

A :class:`Collection` says what one kind of tag holds and how to read and write it (reading
a tag or a journal entry is the same for every kind, up to what the manifest must hold);
:class:`LayerCollection` is cosign's kind (an image manifest with one layer per entry, the
``.sig`` and ``.att`` tags), and :mod:`opkey.registry.referrers` adds the referrers index.
A collection tag holding something else is never overwritten: attaching fails with a
:class:`~opkey.errors.RegistryError` naming the tag and the way out.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from opkey.digest import Digest
from opkey.errors import ConfigError, FormatError, RegistryError
from opkey.jose import go_json
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import Descriptor, ImageManifest, Manifest, encode_go_json
from opkey.registry.mediatypes import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST
from opkey.registry.reference import ImageReference
from opkey.remote_text import printable

__all__ = [
    "IDENTITY_HEX",
    "MAX_LAYERS",
    "MAX_LAYER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "Collection",
    "CollectionState",
    "Encoded",
    "Layer",
    "LayerCollection",
    "Layers",
    "attach_entry",
    "check_annotations",
    "cosign_config",
    "layer_identity",
    "repair_entries",
]

#: Entries of one collection considered when reading (the first ones), and the most a writer
#: makes: one per signing of a digest, so a sign-off with a few stages, re-run many times,
#: stays far below.
MAX_LAYERS = 256
#: Largest simple-signing payload written or read (they are a few hundred bytes).
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Layer bytes downloaded in all for one collection of one image.
MAX_LAYER_BYTES = 16 * 1024 * 1024
#: Hex digits of an entry's identity in its journal tag.
IDENTITY_HEX = 32

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as go-containerregistry writes it
_CONFIG_FOR = {OCI_MANIFEST: OCI_CONFIG, DOCKER_MANIFEST: DOCKER_CONFIG}


def layer_identity(layer: Descriptor) -> str:
    """What makes a layer entry distinct: hash of media type, digest, size, annotations.

    Not the blob digest alone: every signer of an image signs the same simple-signing payload,
    so all their layers share one blob and differ only in annotations (the signatures).
    """
    canonical = go_json(
        {
            "annotations": dict(layer.annotations),
            "digest": str(layer.digest),
            "mediaType": layer.media_type,
            "size": layer.size,
        }
    )
    return hashlib.sha256(canonical).hexdigest()


def check_annotations(annotations: Mapping[str, object]) -> dict[str, str]:
    """Annotations as given by the caller: non-empty string names, string values, Unicode."""
    checked: dict[str, str] = {}
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise ConfigError(f"layer annotation {key!r} must be a string")
        if not key:
            raise ConfigError("layer annotation names must not be empty")
        try:
            key.encode("utf-8")
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"layer annotation {key!r} is not valid Unicode") from None
        checked[key] = value
    return checked


def cosign_config(layers: Sequence[Descriptor]) -> bytes:
    """The config blob cosign writes for a signature (or attestation) manifest with ``layers``.

    go-containerregistry's empty image with the layers appended: empty architecture and OS,
    Go's zero time, one empty history entry and one diff ID (the layer digest: signature
    layers are not compressed) per layer.
    """
    document: dict[str, object] = {"architecture": "", "created": _ZERO_TIME}
    if layers:
        document["history"] = [{"created": _ZERO_TIME} for _ in layers]
    document["os"] = ""
    document["rootfs"] = {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]}
    document["config"] = {}
    return encode_go_json(document)


@dataclass(frozen=True, slots=True)
class CollectionState:
    """A collection tag as read: the manifest, and the entries it lists, in order."""

    manifest: Manifest
    media_type: str
    entries: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


class Collection:
    """One kind of tag that accumulates entries from concurrent writers.

    Every kind is a manifest under ``sha256-<hex><suffix>`` with journal entries under
    ``sha256-<hex><journal_mark><identity>``; reading the tag and reading a journal entry
    are the same steps for every kind (fetch, parse, refuse what is not ours), so they live
    here and a kind says only what its manifest must hold (:meth:`_state`, :meth:`_entry`),
    how an entry is identified and how the tag is written.
    """

    #: What an entry is, for messages: ``signature``, ``attestation``, ``referrer``.
    kind: str
    #: What the collection tag must hold, for the refusal to overwrite anything else.
    holds: str
    #: What follows ``sha256-<hex>`` in the collection tag (``.sig``; empty for referrers).
    suffix: str
    #: Entries a writer may leave in the collection.
    max_entries: int
    #: What the tag's manifest is called when it cannot be parsed (``manifest``, ``index``).
    document: str = "manifest"

    def tag(self, digest: Digest) -> str:
        """The collection tag of the image ``digest``."""
        return digest.tag_stem + self.suffix

    def journal_mark(self) -> str:
        """What follows the collection's tag stem in its journal tags (``.sig.journal-``)."""
        raise NotImplementedError

    def identity(self, entry: Descriptor) -> str:
        """The entry's identity, hex (its journal tag names the first 32 digits)."""
        raise NotImplementedError

    def _state(self, manifest: Manifest, ref: ImageReference) -> CollectionState:
        """The collection ``manifest`` (read at ``ref``) holds; a FormatError or a
        :func:`garbage` refusal when it is not one of this kind."""
        raise NotImplementedError

    def _entry(self, manifest: Manifest, ref: ImageReference, digest: Digest) -> Descriptor | None:
        """The entry a journal ``manifest`` records for the image ``digest``, ``None`` when it
        records none (FormatError and RegistryError count as none)."""
        raise NotImplementedError

    def read(self, client: RegistryClient, ref: ImageReference) -> CollectionState | None:
        """The collection at ``ref``, ``None`` when absent; anything else raises."""
        found = client.find_manifest_bytes(ref)
        if found is None:
            return None
        raw, content_type = found
        what = f"{self.document} {ref}"
        try:
            manifest = Manifest.from_bytes(raw, content_type=content_type, what=what)
            return self._state(manifest, ref)
        except FormatError as exc:
            raise garbage(ref, self.kind, self.holds, str(exc)) from None

    def read_entry(
        self, client: RegistryClient, ref: ImageReference, digest: Digest, prefix: str
    ) -> tuple[bool, Descriptor | None]:
        """``(found, entry)`` of the journal tag ``ref``: ``found`` is False when it cannot be
        read (yet); ``entry`` None when it is not an entry of ``digest`` whose identity starts
        with ``prefix`` (not opkey's: never merged)."""
        found = client.find_manifest_bytes(ref)
        if found is None:
            return False, None
        try:
            manifest = Manifest.from_bytes(found[0], content_type=found[1], what=f"manifest {ref}")
            entry = self._entry(manifest, ref, digest)
        except (FormatError, RegistryError):
            return True, None
        if entry is None or not self.identity(entry).startswith(prefix):
            return True, None
        return True, entry

    def _encode(self, state: CollectionState | None, entries: Sequence[Descriptor]) -> Encoded:
        """The tag's manifest listing ``entries``, extending ``state`` (its media type and
        annotations) when there is one."""
        raise NotImplementedError

    def write(
        self,
        client: RegistryClient,
        ref: ImageReference,
        state: CollectionState | None,
        entries: Sequence[Descriptor],
    ) -> Digest:
        """Store the collection with ``entries``, blobs first (a crash leaves no dangling
        reference); returns its digest."""
        encoded = self._encode(state, entries)
        for blob in encoded.blobs:
            client.push_blob(ref, blob)
        return client.put_manifest(
            ref, encoded.manifest, encoded.media_type, blobs_pushed=bool(encoded.blobs)
        )


@dataclass(frozen=True, slots=True)
class Encoded:
    """A collection manifest to store, with the blobs it needs uploaded before it."""

    manifest: bytes
    media_type: str
    blobs: tuple[bytes, ...] = ()


def journal_tag(collection: Collection, digest: Digest, entry: Descriptor) -> str:
    """The journal tag that records ``entry`` of ``collection`` for the image ``digest``."""
    return digest.tag_stem + collection.journal_mark() + collection.identity(entry)[:IDENTITY_HEX]


def garbage(ref: ImageReference, kind: str, holds: str, detail: str) -> RegistryError:
    """The refusal to overwrite a tag that holds something other than a collection."""
    return RegistryError(
        f"the {kind} tag {ref} does not hold {holds} ({detail}). "
        f"opkey will not overwrite it, so no {kind} is lost; inspect the tag, and if it is "
        f"not needed delete it (e.g. 'crane delete' or the registry's API), then try again",
        found=detail,
    )


@dataclass(frozen=True)
class LayerCollection(Collection):
    """cosign's kind of collection: an image manifest, one layer of ``layer_media_type`` per
    entry, config as cosign writes it; Docker media types are read and extended as they are."""

    kind: str
    suffix: str
    layer_media_type: str
    holds: str
    max_entries: int = MAX_LAYERS

    def journal_mark(self) -> str:
        """``<suffix>.journal-``."""
        return self.suffix + ".journal-"

    def identity(self, entry: Descriptor) -> str:
        """See :func:`layer_identity`."""
        return layer_identity(entry)

    def _image(self, manifest: Manifest, ref: ImageReference) -> ImageManifest:
        if manifest.media_type not in _CONFIG_FOR:
            raise garbage(
                ref, self.kind, self.holds, f"its media type is {printable(manifest.media_type)}"
            )
        try:
            image = ImageManifest.from_manifest(manifest, what=f"manifest {ref}")
        except FormatError as exc:
            raise garbage(ref, self.kind, self.holds, str(exc)) from None
        if image.config.media_type not in _CONFIG_FOR.values():
            raise garbage(
                ref,
                self.kind,
                self.holds,
                f"its config has media type {printable(image.config.media_type)}",
            )
        for index, layer in enumerate(image.layers):
            if layer.media_type != self.layer_media_type:
                raise garbage(
                    ref,
                    self.kind,
                    self.holds,
                    f"layer {index} has media type {printable(layer.media_type)}",
                )
        return image

    def _state(self, manifest: Manifest, ref: ImageReference) -> CollectionState:
        image = self._image(manifest, ref)
        return CollectionState(manifest, image.media_type, image.layers, image.annotations)

    def _entry(self, manifest: Manifest, ref: ImageReference, digest: Digest) -> Descriptor | None:
        """A one-layer manifest of this kind: its layer."""
        image = self._image(manifest, ref)
        return image.layers[0] if len(image.layers) == 1 else None

    def _encode(self, state: CollectionState | None, entries: Sequence[Descriptor]) -> Encoded:
        """An image manifest with cosign's config blob (:func:`cosign_config`)."""
        media_type = state.media_type if state is not None else OCI_MANIFEST
        annotations = state.annotations if state is not None else {}
        config = cosign_config(entries)
        config_descriptor = Descriptor(
            _CONFIG_FOR[media_type], Digest.of_bytes(config), len(config)
        )
        manifest = ImageManifest.build(media_type, config_descriptor, entries, annotations)
        return Encoded(manifest.encode(), media_type, (config,))


def _journal_tags(
    client: RegistryClient, image: ImageReference, collection: Collection, digest: Digest
) -> dict[str, str]:
    """The journal tags of ``digest`` now listed, each with the identity prefix it names."""
    prefix = digest.tag_stem + collection.journal_mark()
    pattern = re.compile(re.escape(prefix) + f"([0-9a-f]{{{IDENTITY_HEX}}})")
    tags: dict[str, str] = {}
    for tag in client.iter_tags(image):
        match = pattern.fullmatch(tag)
        if match is not None:
            tags[tag] = match.group(1)
    return tags


def _missing_entries(
    client: RegistryClient,
    image: ImageReference,
    collection: Collection,
    tags: Mapping[str, str],
    present: set[str],
    cache: dict[str, Descriptor | None],
) -> list[Descriptor]:
    """Entries of the journal ``tags`` that are not in ``present``, in tag order.

    Entries whose identity is present are not fetched. An entry whose content does not match
    its tag (not written by opkey) is ignored: merging it would let anyone with push access
    inject entries under a name they did not earn.
    """
    digest = image.require_digest()
    present_prefixes = {identity[:IDENTITY_HEX] for identity in present}
    missing: list[Descriptor] = []
    for tag in sorted(tags):
        if tags[tag] in present_prefixes:
            continue
        if tag not in cache:
            found, entry = collection.read_entry(client, image.with_tag(tag), digest, tags[tag])
            if not found:
                # Listed but not readable yet: its writer's PUT has not completed, so that
                # writer has not touched the collection yet and will merge its entry itself.
                # Ask again next time rather than remembering the absence.
                continue
            cache[tag] = entry
        entry = cache[tag]
        if entry is not None and collection.identity(entry) not in present:
            missing.append(entry)
    return missing


@dataclass(frozen=True, slots=True)
class Converged:
    """What the merge loop ended with: the final state, the writes, the restored entries."""

    state: CollectionState | None
    writes: int
    restored: int


def converge(
    client: RegistryClient,
    image: ImageReference,
    collection: Collection,
    own: Descriptor | None,
    *,
    max_writes: int,
    deadline: float,
    sleep: Callable[[float], None],
    rng: random.Random,
) -> Converged:
    """Write the collection until a check made after our last write shows every journal entry
    (and ``own``) in it.

    A check lists the journal *first* and reads the collection *second*, both after our last
    write: every entry whose owner could have written before our write landed is in that
    listing, so a write of ours that dropped an entry is always seen and repaired.
    """
    digest = image.require_digest()
    ref = image.with_tag(collection.tag(digest))
    own_identity = None if own is None else collection.identity(own)
    # Journal entries already known: our own (just written) needs no fetching.
    cache: dict[str, Descriptor | None] = (
        {} if own is None else {journal_tag(collection, digest, own): own}
    )
    started = time.monotonic()
    writes = restored = 0
    pause = False
    while True:
        if pause:
            # Our last write did not settle it: others are writing too. Wait (jittered,
            # growing with our writes), then look again before competing.
            sleep(rng.uniform(0, min(1.0, 0.01 * 2**writes)))
        tags = _journal_tags(client, image, collection, digest)
        state = collection.read(client, ref)
        present = {collection.identity(e) for e in state.entries} if state is not None else set()
        missing = _missing_entries(client, image, collection, tags, present, cache)
        if own is not None and own_identity not in present | {
            collection.identity(m) for m in missing
        }:
            missing.insert(0, own)
        if not missing:
            return Converged(state, writes, restored)
        if writes >= max_writes or time.monotonic() - started > deadline:
            break
        if writes > 0 and not pause:
            pause = True
            continue
        pause = False
        entries = list(state.entries) if state is not None else []
        seen: set[str] = set()
        additions = []
        for entry in missing:
            identity = collection.identity(entry)
            if identity not in seen:
                seen.add(identity)
                additions.append(entry)
        if len(entries) + len(additions) > collection.max_entries:
            raise RegistryError(
                f"{ref} would hold {len(entries) + len(additions)} {collection.kind} entries; "
                f"verifiers consider at most {collection.max_entries}, so the new ones would "
                f"not be seen. Nothing was written to it (the journal keeps every "
                f"{collection.kind})",
                expected=collection.max_entries,
                found=len(entries) + len(additions),
            )
        restored += sum(1 for e in additions if collection.identity(e) != own_identity)
        collection.write(client, ref, state, entries + additions)
        writes += 1
    what = f"the {collection.kind}" if own is not None else "the journal"
    raise RegistryError(
        f"could not confirm {what} in {ref} after {writes} writes (other writers kept "
        "overwriting it, or the deadline passed). Nothing is lost: every entry is kept "
        f"under its journal tag ({digest.tag_stem}{collection.journal_mark()}…); run "
        "the command again to merge them"
    )


@dataclass(frozen=True, slots=True)
class Attached:
    """What :func:`attach_entry` did: the collection's final manifest digest, the journal
    tag, the writes made (0 when the entry was there already) and the entries restored."""

    ref: ImageReference
    manifest_digest: Digest
    journal_ref: ImageReference
    writes: int
    restored: int


def attach_entry(
    client: RegistryClient,
    image: ImageReference,
    collection: Collection,
    entry: Descriptor,
    record: Callable[[ImageReference, CollectionState | None], None],
    *,
    max_writes: int = 16,
    deadline: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Attached:
    """Add ``entry`` to ``image``'s ``collection``, safely among concurrent writers.

    ``record(journal_ref, state)`` stores the journal entry (blobs first) under
    ``journal_ref``; it is called after the collection was read once, so a tag holding
    garbage is refused before anything is written.
    """
    digest = image.require_digest()
    ref = image.with_tag(collection.tag(digest))
    client.get_manifest(image)  # the image must exist (and hash to its digest)
    state = collection.read(client, ref)  # garbage is refused before anything is written
    journal_ref = image.with_tag(journal_tag(collection, digest, entry))
    record(journal_ref, state)
    result = converge(
        client,
        image,
        collection,
        entry,
        max_writes=max_writes,
        deadline=deadline,
        sleep=sleep,
        rng=rng or random.Random(),  # noqa: S311 - jitter only
    )
    assert result.state is not None  # converge returns only once our entry is present
    return Attached(ref, result.state.manifest.digest, journal_ref, result.writes, result.restored)


def repair_entries(
    client: RegistryClient,
    image: ImageReference,
    collection: Collection,
    *,
    max_writes: int = 16,
    deadline: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Merge every journal entry missing from the collection back into it; return how many."""
    digest = image.require_digest()
    collection.read(client, image.with_tag(collection.tag(digest)))  # refuse garbage first
    result = converge(
        client,
        image,
        collection,
        None,
        max_writes=max_writes,
        deadline=deadline,
        sleep=sleep,
        rng=random.Random(),  # noqa: S311 - jitter only
    )
    return result.restored


# -- reading layers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer entry as stored: its blob (verified against the layer digest) and the layer
    descriptor with its annotations."""

    payload: bytes = field(repr=False)
    descriptor: Descriptor

    @property
    def annotations(self) -> Mapping[str, str]:
        """The layer annotations (cosign's signature, opkey's PK token…)."""
        return self.descriptor.annotations

    @property
    def digest(self) -> Digest:
        """The blob's digest."""
        return self.descriptor.digest

    @property
    def identity(self) -> str:
        """See :func:`layer_identity`."""
        return layer_identity(self.descriptor)


@dataclass(frozen=True)
class Layers:
    """The layers of one collection tag, downloaded one at a time as they are iterated.

    ``descriptors`` are the layers considered: the first :data:`MAX_LAYERS` (or the caller's
    bound) of the manifest, in order; ``total`` counts every layer it names. Iterating
    downloads each blob, checks it against the layer's digest and size, and yields it; nothing
    is kept afterwards but a small cache of blobs already seen (honest signers of one image
    share one payload blob). Downloading more than ``max_total_bytes`` in all is a
    :class:`RegistryError`.
    """

    client: RegistryClient
    image: ImageReference
    signature_ref: ImageReference
    descriptors: tuple[Descriptor, ...]
    total: int
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_total_bytes: int = MAX_LAYER_BYTES

    @property
    def skipped(self) -> int:
        """Layers of the manifest beyond the bound: never downloaded nor verified."""
        return self.total - len(self.descriptors)

    def __len__(self) -> int:
        return len(self.descriptors)

    def __iter__(self) -> Iterator[Layer]:
        cache: dict[Digest, bytes] = {}
        cached = downloaded = 0
        ref = self.signature_ref
        for index, layer in enumerate(self.descriptors):
            if layer.size > self.max_payload_bytes:
                raise RegistryError(
                    f"{ref} layer {index}: payload of {layer.size} bytes exceeds the "
                    f"{self.max_payload_bytes}-byte limit",
                    expected=self.max_payload_bytes,
                    found=layer.size,
                )
            payload = cache.get(layer.digest)
            if payload is None:
                if downloaded + layer.size > self.max_total_bytes:
                    raise RegistryError(
                        f"{ref}: its payloads need more than {self.max_total_bytes} bytes in "
                        f"all (at layer {index})",
                        expected=self.max_total_bytes,
                    )
                payload = self.client.get_blob(
                    self.image, layer.digest, max_bytes=max(layer.size, 1)
                )
                downloaded += len(payload)
                if cached + len(payload) <= MAX_PAYLOAD_BYTES:
                    cache[layer.digest] = payload
                    cached += len(payload)
            if len(payload) != layer.size:
                raise RegistryError(
                    f"{ref} layer {index}: payload is {len(payload)} bytes, the manifest "
                    f"says {layer.size}",
                    expected=layer.size,
                    found=len(payload),
                )
            yield Layer(payload, layer)


def read_layers(
    client: RegistryClient,
    image: ImageReference,
    collection: LayerCollection,
    *,
    max_layers: int = MAX_LAYERS,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    max_total_bytes: int = MAX_LAYER_BYTES,
) -> Layers:
    """The layers of ``image``'s ``collection`` tag, to iterate (none when there is no tag).

    Only the manifest is read here; blobs are downloaded during iteration (see
    :class:`Layers`). A tag that holds something else raises :class:`RegistryError`.
    """
    digest = image.require_digest()
    ref = image.with_tag(collection.tag(digest))
    state = collection.read(client, ref)
    layers = state.entries if state is not None else ()
    return Layers(
        client,
        image,
        ref,
        tuple(layers[:max_layers]),
        len(layers),
        max_payload_bytes,
        max_total_bytes,
    )
