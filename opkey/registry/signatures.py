"""Cosign-compatible image signatures in an OCI registry, without losing concurrent signatures.

Storage (what cosign writes, and reads): the signatures of image ``sha256:<hex>`` live in the
same repository under the tag ``sha256-<hex>.sig``, an OCI image manifest whose config is a
go-containerregistry image config and which has **one layer per signature**: media type
``application/vnd.dev.cosign.simplesigning.v1+json``, the layer blob is the signed payload, the
layer annotations carry the signature (``dev.cosignproject.cosign/signature``) and whatever
else the signer adds. Existing ``.sig`` manifests in Docker media types are read and extended
in their own format.

The race cosign leaves open: adding a signature is read-modify-write of that tag, and the
registry has no compare-and-swap, so of two concurrent signers the second ``PUT`` silently
drops the first signer's layer. opkey closes it with a **journal** and a **verify-after-write
loop** (``spec/registry.md`` has the argument in full):

1. each signature is first stored on its own, under a journal tag
   ``sha256-<hex>.sig.journal-<id>`` (``<id>``: 32 hex digits identifying the layer), a
   one-layer manifest in the same format. Journal tags are never rewritten with other content,
   so no concurrent writer can destroy them;
2. the signer then checks ``.sig``: it lists the journal, then reads the tag. When something
   listed is missing, it writes back every layer it read plus every missing journal entry (its
   own included), never dropping one, and checks again; a check that still fails right after
   its own write means others are writing too, so it pauses (jittered) before competing;
3. it stops only when a check made after its last write finds nothing missing.

The signer whose write is the last one always finishes with a listing and a read made after
that write, and the journal entry of every other signer was stored before that signer's
first write; so the final ``.sig`` holds every signature, whatever the interleaving. A signer
that crashes after step 1 loses nothing either: its journal entry is merged by the next signer
or by :func:`repair_signatures`.

A ``.sig`` tag holding something that is not a cosign signature manifest (not a manifest, an
index, an image with other layers) is **never overwritten**: attaching fails with a
:class:`~opkey.errors.RegistryError` naming the tag and the way out.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from opkey.errors import ConfigError, FormatError, RegistryError
from opkey.jose import go_json
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import Descriptor, ImageManifest, Manifest, encode_go_json
from opkey.registry.mediatypes import (
    COSIGN_SIMPLESIGNING,
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
)
from opkey.registry.reference import ImageReference, parse_digest, sha256_digest
from opkey.remote_text import printable

__all__ = [
    "COSIGN_SIGNATURE_ANNOTATION",
    "MAX_SIGNATURE_BYTES",
    "MAX_SIGNATURE_LAYERS",
    "MAX_SIGNATURE_PAYLOAD_BYTES",
    "AttachResult",
    "SignatureLayer",
    "SignatureLayers",
    "attach_signature",
    "cosign_config",
    "journal_tag",
    "layer_identity",
    "list_signatures",
    "repair_signatures",
    "signature_layers",
    "signature_tag",
]

#: The layer annotation in which cosign stores the base64 signature.
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
#: Largest signature payload written or read. Simple-signing payloads are a few hundred bytes.
MAX_SIGNATURE_PAYLOAD_BYTES = 1024 * 1024
#: Signature layers of one image considered when reading (the first ones, in manifest order),
#: and the most a signer writes. One layer per signing of that digest: a sign-off with a few
#: stages, re-run many times, stays far below.
MAX_SIGNATURE_LAYERS = 256
#: Payload bytes downloaded in all for one image. Every opkey signer of an image signs the
#: same few hundred bytes (one blob), so this is hundreds of times what honest images need.
MAX_SIGNATURE_BYTES = 16 * 1024 * 1024

_JOURNAL_MARK = ".sig.journal-"
_IDENTITY_HEX = 32
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as go-containerregistry writes it
_CONFIG_FOR = {OCI_MANIFEST: OCI_CONFIG, DOCKER_MANIFEST: DOCKER_CONFIG}


def signature_tag(digest: str) -> str:
    """The cosign signature tag of the image ``digest``: ``sha256-<hex>.sig``."""
    parse_digest(digest)
    return digest.replace(":", "-") + ".sig"


def layer_identity(layer: Descriptor) -> str:
    """What makes a signature layer distinct: hash of media type, digest, size, annotations.

    Not the blob digest alone: every signer of an image signs the same simple-signing payload,
    so all their layers share one blob and differ only in annotations (the signatures).
    """
    canonical = go_json(
        {
            "annotations": dict(layer.annotations),
            "digest": layer.digest,
            "mediaType": layer.media_type,
            "size": layer.size,
        }
    )
    return hashlib.sha256(canonical).hexdigest()


def journal_tag(digest: str, layer: Descriptor) -> str:
    """The journal tag that records ``layer`` for the image ``digest``."""
    return digest.replace(":", "-") + _JOURNAL_MARK + layer_identity(layer)[:_IDENTITY_HEX]


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    """One signature as stored: the payload bytes (verified against the layer digest) and the
    layer descriptor with its annotations."""

    payload: bytes = field(repr=False)
    descriptor: Descriptor

    @property
    def annotations(self) -> Mapping[str, str]:
        """The layer annotations (cosign's signature, opkey's PK token…)."""
        return self.descriptor.annotations

    @property
    def digest(self) -> str:
        """The payload blob's digest."""
        return self.descriptor.digest

    @property
    def identity(self) -> str:
        """See :func:`layer_identity`."""
        return layer_identity(self.descriptor)


@dataclass(frozen=True, slots=True)
class AttachResult:
    """What :func:`attach_signature` did.

    ``signature_ref`` is the ``.sig`` tag, ``manifest_digest`` the digest of the ``.sig``
    manifest seen to contain the signature, ``writes`` how many times ``.sig`` was written
    (0 when the signature was already there), ``restored`` how many other signatures (from the
    journal) were merged back in.
    """

    signature_ref: ImageReference
    manifest_digest: str
    layer: Descriptor
    journal_ref: ImageReference
    writes: int
    restored: int


@dataclass(frozen=True, slots=True)
class _SigState:
    manifest: Manifest
    image: ImageManifest

    @property
    def identities(self) -> set[str]:
        return {layer_identity(layer) for layer in self.image.layers}


def _check_annotations(annotations: Mapping[str, object]) -> dict[str, str]:
    """Annotations as given by the caller: non-empty string names, string values, Unicode."""
    checked: dict[str, str] = {}
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise ConfigError(f"signature annotation {key!r} must be a string")
        if not key:
            raise ConfigError("signature annotation names must not be empty")
        try:
            key.encode("utf-8")
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(f"signature annotation {key!r} is not valid Unicode") from None
        checked[key] = value
    return checked


def cosign_config(layers: Sequence[Descriptor]) -> bytes:
    """The config blob cosign writes for a signature manifest with ``layers``.

    go-containerregistry's empty image with the layers appended: empty architecture and OS,
    Go's zero time, one empty history entry and one diff ID (the layer digest: signature
    layers are not compressed) per layer.
    """
    document: dict[str, object] = {"architecture": "", "created": _ZERO_TIME}
    if layers:
        document["history"] = [{"created": _ZERO_TIME} for _ in layers]
    document["os"] = ""
    document["rootfs"] = {"type": "layers", "diff_ids": [layer.digest for layer in layers]}
    document["config"] = {}
    return encode_go_json(document)


def _garbage(ref: ImageReference, detail: str) -> RegistryError:
    return RegistryError(
        f"the signature tag {ref} does not hold a cosign signature manifest ({detail}). "
        "opkey will not overwrite it, so no signature is lost; inspect the tag, and if it is "
        "not needed delete it (e.g. 'crane delete' or the registry's API), then sign again",
        found=detail,
    )


def _read_state(client: RegistryClient, sig_ref: ImageReference) -> _SigState | None:
    """The current ``.sig`` manifest, ``None`` when absent; garbage raises RegistryError."""
    found = client.find_manifest_bytes(sig_ref)
    if found is None:
        return None
    raw, content_type = found
    try:
        manifest = Manifest.from_bytes(raw, content_type=content_type, what=f"manifest {sig_ref}")
    except FormatError as exc:
        raise _garbage(sig_ref, str(exc)) from None
    return _SigState(manifest, _signature_manifest(manifest, sig_ref))


def _signature_manifest(manifest: Manifest, ref: ImageReference) -> ImageManifest:
    if manifest.media_type not in _CONFIG_FOR:
        raise _garbage(ref, f"its media type is {printable(manifest.media_type)}")
    try:
        image = ImageManifest.from_manifest(manifest, what=f"manifest {ref}")
    except FormatError as exc:
        raise _garbage(ref, str(exc)) from None
    if image.config.media_type not in _CONFIG_FOR.values():
        raise _garbage(ref, f"its config has media type {printable(image.config.media_type)}")
    for index, layer in enumerate(image.layers):
        if layer.media_type != COSIGN_SIMPLESIGNING:
            raise _garbage(ref, f"layer {index} has media type {printable(layer.media_type)}")
    return image


def _push_signature_manifest(
    client: RegistryClient,
    ref: ImageReference,
    media_type: str,
    layers: Sequence[Descriptor],
    annotations: Mapping[str, str],
) -> str:
    """Upload the config blob, then the manifest (blobs first: a crash leaves no dangling
    reference). Returns the manifest digest."""
    config = cosign_config(layers)
    client.push_blob(ref, config)
    config_descriptor = Descriptor(_CONFIG_FOR[media_type], sha256_digest(config), len(config))
    manifest = ImageManifest.build(media_type, config_descriptor, layers, annotations)
    return client.put_manifest(ref, manifest.encode(), media_type, blobs_pushed=True)


def _journal_tags(client: RegistryClient, image: ImageReference, digest: str) -> dict[str, str]:
    """The journal tags of ``digest`` now listed, each with the identity prefix it names."""
    prefix = digest.replace(":", "-") + _JOURNAL_MARK
    pattern = re.compile(re.escape(prefix) + f"([0-9a-f]{{{_IDENTITY_HEX}}})")
    tags: dict[str, str] = {}
    for tag in client.iter_tags(image):
        match = pattern.fullmatch(tag)
        if match is not None:
            tags[tag] = match.group(1)
    return tags


def _missing_entries(
    client: RegistryClient,
    image: ImageReference,
    tags: Mapping[str, str],
    present: set[str],
    cache: dict[str, Descriptor | None],
) -> list[Descriptor]:
    """Layers of the journal ``tags`` that are not in ``present``, in tag order.

    Entries whose layer is present are not fetched. An entry whose content does not match its
    tag (not written by opkey) is ignored: merging it would let anyone with push access inject
    layers under a name they did not earn.
    """
    present_prefixes = {identity[:_IDENTITY_HEX] for identity in present}
    missing: list[Descriptor] = []
    for tag in sorted(tags):
        if tags[tag] in present_prefixes:
            continue
        if tag not in cache:
            found, entry = _read_journal_entry(client, image.with_tag(tag), tags[tag])
            if not found:
                # Listed but not readable yet: its writer's PUT has not completed, so that
                # writer has not touched .sig yet and will merge its entry itself. Ask again
                # next time rather than remembering the absence.
                continue
            cache[tag] = entry
        entry = cache[tag]
        if entry is not None and layer_identity(entry) not in present:
            missing.append(entry)
    return missing


def _read_journal_entry(
    client: RegistryClient, ref: ImageReference, identity_prefix: str
) -> tuple[bool, Descriptor | None]:
    """``(found, layer)``: ``found`` is False when the tag cannot be read (yet); ``layer`` is
    None when the content is not a one-layer signature manifest matching the tag's name."""
    found = client.find_manifest_bytes(ref)
    if found is None:
        return False, None
    try:
        manifest = Manifest.from_bytes(found[0], content_type=found[1], what=f"manifest {ref}")
        image = _signature_manifest(manifest, ref)
    except (FormatError, RegistryError):
        return True, None
    if len(image.layers) != 1:
        return True, None
    layer = image.layers[0]
    return True, (layer if layer_identity(layer).startswith(identity_prefix) else None)


def _converge(
    client: RegistryClient,
    image: ImageReference,
    own: Descriptor | None,
    *,
    max_writes: int,
    deadline: float,
    sleep: Callable[[float], None],
    rng: random.Random,
) -> tuple[_SigState | None, int, int]:
    """Write ``.sig`` until a check made after our last write shows every journal entry (and
    ``own``) in it. Returns the final state, the number of writes and of restored layers.

    A check lists the journal *first* and reads ``.sig`` *second*, both after our last write:
    every entry whose owner could have written ``.sig`` before our write landed is in that
    listing, so a write of ours that dropped a layer is always seen and repaired.
    """
    digest = image.require_digest()
    sig_ref = image.with_tag(signature_tag(digest))
    own_identity = None if own is None else layer_identity(own)
    # Journal entries already known: our own (just written) needs no fetching.
    cache: dict[str, Descriptor | None] = {} if own is None else {journal_tag(digest, own): own}
    started = time.monotonic()
    writes = restored = 0
    pause = False
    while True:
        if pause:
            # Our last write did not settle it: others are writing too. Wait (jittered,
            # growing with our writes), then look again before competing.
            sleep(rng.uniform(0, min(1.0, 0.01 * 2**writes)))
        tags = _journal_tags(client, image, digest)
        state = _read_state(client, sig_ref)
        present = state.identities if state is not None else set()
        missing = _missing_entries(client, image, tags, present, cache)
        if own is not None and own_identity not in present | {layer_identity(m) for m in missing}:
            missing.insert(0, own)
        if not missing:
            return state, writes, restored
        if writes >= max_writes or time.monotonic() - started > deadline:
            break
        if writes > 0 and not pause:
            pause = True
            continue
        pause = False
        if state is None:
            media_type, layers, annotations = OCI_MANIFEST, [], {}
        else:
            media_type = state.image.media_type
            layers, annotations = list(state.image.layers), dict(state.image.annotations)
        seen: set[str] = set()
        additions = []
        for layer in missing:
            identity = layer_identity(layer)
            if identity not in seen:
                seen.add(identity)
                additions.append(layer)
        if len(layers) + len(additions) > MAX_SIGNATURE_LAYERS:
            raise RegistryError(
                f"{sig_ref} would hold {len(layers) + len(additions)} signature layers; "
                f"verifiers consider at most {MAX_SIGNATURE_LAYERS}, so the new ones would not "
                "be seen. Nothing was written to it (the journal keeps every signature)",
                expected=MAX_SIGNATURE_LAYERS,
                found=len(layers) + len(additions),
            )
        restored += sum(1 for layer in additions if layer_identity(layer) != own_identity)
        _push_signature_manifest(client, sig_ref, media_type, layers + additions, annotations)
        writes += 1
    what = "the signature" if own is not None else "the journal"
    raise RegistryError(
        f"could not confirm {what} in {sig_ref} after {writes} writes (other signers kept "
        "overwriting it, or the deadline passed). Nothing is lost: every signature is kept "
        f"under its journal tag ({digest.replace(':', '-')}{_JOURNAL_MARK}…); run the command "
        "again to merge them"
    )


def attach_signature(
    client: RegistryClient,
    image: ImageReference,
    payload: bytes,
    annotations: Mapping[str, str],
    *,
    max_writes: int = 16,
    deadline: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> AttachResult:
    """Add one signature layer (``payload`` + ``annotations``) to the image's ``.sig`` tag.

    ``image`` must carry a digest. Safe to call concurrently from many signers of one image,
    and idempotent: attaching the same payload and annotations again changes nothing.
    Fails (writing nothing) when ``.sig`` holds something other than a signature manifest.
    """
    digest = image.require_digest()
    if not isinstance(payload, bytes):
        raise ConfigError(f"the signature payload must be bytes, not {type(payload).__name__}")
    if not payload:
        raise ConfigError("the signature payload is empty")
    if len(payload) > MAX_SIGNATURE_PAYLOAD_BYTES:
        raise ConfigError(
            f"signature payload of {len(payload)} bytes exceeds {MAX_SIGNATURE_PAYLOAD_BYTES}"
        )
    layer = Descriptor(
        COSIGN_SIMPLESIGNING, sha256_digest(payload), len(payload), _check_annotations(annotations)
    )
    sig_ref = image.with_tag(signature_tag(digest))
    client.get_manifest(image)  # the image must exist (and hash to its digest)
    state = _read_state(client, sig_ref)  # garbage is refused before anything is written
    client.push_blob(image, payload)
    journal_ref = image.with_tag(journal_tag(digest, layer))
    media_type = state.image.media_type if state is not None else OCI_MANIFEST
    _push_signature_manifest(client, journal_ref, media_type, [layer], {})
    final, writes, restored = _converge(
        client,
        image,
        layer,
        max_writes=max_writes,
        deadline=deadline,
        sleep=sleep,
        rng=rng or random.Random(),  # noqa: S311 - jitter only
    )
    assert final is not None  # _converge returns only once our layer is present
    return AttachResult(sig_ref, final.manifest.digest, layer, journal_ref, writes, restored)


def repair_signatures(
    client: RegistryClient,
    image: ImageReference,
    *,
    max_writes: int = 16,
    deadline: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Merge every journal entry missing from ``.sig`` back into it; return how many.

    Needed only when a signer crashed after recording its signature, or when a tool that does
    not merge (cosign itself) overwrote ``.sig``; :func:`attach_signature` does the same as a
    side effect.
    """
    digest = image.require_digest()
    _read_state(client, image.with_tag(signature_tag(digest)))  # refuse garbage first
    _, _, restored = _converge(
        client,
        image,
        None,
        max_writes=max_writes,
        deadline=deadline,
        sleep=sleep,
        rng=random.Random(),  # noqa: S311 - jitter only
    )
    return restored


@dataclass(frozen=True)
class SignatureLayers:
    """The signature layers of one image, downloaded one at a time as they are iterated.

    ``descriptors`` are the layers considered: the first :data:`MAX_SIGNATURE_LAYERS` (or the
    caller's bound) of the ``.sig`` manifest, in order; ``total`` counts every layer it names.
    Iterating downloads each payload, checks it against the layer's digest and size, and
    yields it; nothing is kept afterwards but a small cache of payloads already seen (honest
    signers of one image share one payload blob). Downloading more than ``max_total_bytes``
    in all is a :class:`RegistryError`.
    """

    client: RegistryClient
    image: ImageReference
    signature_ref: ImageReference
    descriptors: tuple[Descriptor, ...]
    total: int
    max_payload_bytes: int = MAX_SIGNATURE_PAYLOAD_BYTES
    max_total_bytes: int = MAX_SIGNATURE_BYTES

    @property
    def skipped(self) -> int:
        """Layers of the manifest beyond the bound: never downloaded nor verified."""
        return self.total - len(self.descriptors)

    def __len__(self) -> int:
        return len(self.descriptors)

    def __iter__(self) -> Iterator[SignatureLayer]:
        cache: dict[str, bytes] = {}
        cached = downloaded = 0
        sig_ref = self.signature_ref
        for index, layer in enumerate(self.descriptors):
            if layer.size > self.max_payload_bytes:
                raise RegistryError(
                    f"{sig_ref} layer {index}: payload of {layer.size} bytes exceeds the "
                    f"{self.max_payload_bytes}-byte limit",
                    expected=self.max_payload_bytes,
                    found=layer.size,
                )
            payload = cache.get(layer.digest)
            if payload is None:
                if downloaded + layer.size > self.max_total_bytes:
                    raise RegistryError(
                        f"{sig_ref}: its signature payloads need more than "
                        f"{self.max_total_bytes} bytes in all (at layer {index})",
                        expected=self.max_total_bytes,
                    )
                payload = self.client.get_blob(
                    self.image, layer.digest, max_bytes=max(layer.size, 1)
                )
                downloaded += len(payload)
                if cached + len(payload) <= MAX_SIGNATURE_PAYLOAD_BYTES:
                    cache[layer.digest] = payload
                    cached += len(payload)
            if len(payload) != layer.size:
                raise RegistryError(
                    f"{sig_ref} layer {index}: payload is {len(payload)} bytes, the manifest "
                    f"says {layer.size}",
                    expected=layer.size,
                    found=len(payload),
                )
            yield SignatureLayer(payload, layer)


def signature_layers(
    client: RegistryClient,
    image: ImageReference,
    *,
    max_layers: int = MAX_SIGNATURE_LAYERS,
    max_payload_bytes: int = MAX_SIGNATURE_PAYLOAD_BYTES,
    max_total_bytes: int = MAX_SIGNATURE_BYTES,
) -> SignatureLayers:
    """The signatures in the image's ``.sig`` tag, to iterate (none when there is no tag).

    Only the ``.sig`` manifest is read here; payloads are downloaded during iteration (see
    :class:`SignatureLayers`). A ``.sig`` tag that is not a signature manifest raises
    :class:`RegistryError`.
    """
    digest = image.require_digest()
    sig_ref = image.with_tag(signature_tag(digest))
    state = _read_state(client, sig_ref)
    layers = state.image.layers if state is not None else ()
    return SignatureLayers(
        client,
        image,
        sig_ref,
        tuple(layers[:max_layers]),
        len(layers),
        max_payload_bytes,
        max_total_bytes,
    )


def list_signatures(
    client: RegistryClient,
    image: ImageReference,
    *,
    max_payload_bytes: int = MAX_SIGNATURE_PAYLOAD_BYTES,
) -> list[SignatureLayer]:
    """The signatures in the image's ``.sig`` tag, in manifest order ([] when none): the first
    :data:`MAX_SIGNATURE_LAYERS`, all downloaded (see :func:`signature_layers` to stream).

    Every payload is downloaded once per distinct blob and checked against the layer's digest
    and size. A ``.sig`` tag that is not a signature manifest raises :class:`RegistryError`.
    """
    return list(signature_layers(client, image, max_payload_bytes=max_payload_bytes))
