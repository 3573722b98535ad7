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
or by :func:`repair_signatures`. The loop itself is :mod:`opkey.registry.journal`'s, shared
with the attestation tag (:mod:`opkey.registry.attestations`) and the referrers tag.

A ``.sig`` tag holding something that is not a cosign signature manifest (not a manifest, an
index, an image with other layers) is **never overwritten**: attaching fails with a
:class:`~opkey.errors.RegistryError` naming the tag and the way out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opkey.cosign import SIGNATURE_TAG_SUFFIX, signature_tag
from opkey.digest import Digest
from opkey.errors import ConfigError
from opkey.registry.client import RegistryClient
from opkey.registry.journal import (
    MAX_LAYER_BYTES,
    MAX_LAYERS,
    MAX_PAYLOAD_BYTES,
    CollectionState,
    Layer,
    LayerCollection,
    Layers,
    attach_entry,
    check_annotations,
    cosign_config,
    layer_identity,
    read_layers,
    repair_entries,
)
from opkey.registry.journal import journal_tag as _journal_tag
from opkey.registry.manifest import Descriptor
from opkey.registry.mediatypes import COSIGN_SIMPLESIGNING
from opkey.registry.reference import ImageReference

__all__ = [
    "COSIGN_SIGNATURE_ANNOTATION",
    "MAX_SIGNATURE_BYTES",
    "MAX_SIGNATURE_LAYERS",
    "MAX_SIGNATURE_PAYLOAD_BYTES",
    "SIGNATURES",
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
MAX_SIGNATURE_PAYLOAD_BYTES = MAX_PAYLOAD_BYTES
#: Signature layers of one image considered when reading (the first ones, in manifest order),
#: and the most a signer writes.
MAX_SIGNATURE_LAYERS = MAX_LAYERS
#: Payload bytes downloaded in all for one image.
MAX_SIGNATURE_BYTES = MAX_LAYER_BYTES

#: cosign's signature tag: ``sha256-<hex>.sig``, one simple-signing layer per signature.
SIGNATURES = LayerCollection(
    kind="signature",
    suffix=SIGNATURE_TAG_SUFFIX,
    layer_media_type=COSIGN_SIMPLESIGNING,
    holds="a cosign signature manifest",
)

#: One signature layer (the payload, verified against the layer digest, and the descriptor).
SignatureLayer = Layer
#: The signature layers of one image, streamed (see :class:`opkey.registry.journal.Layers`).
SignatureLayers = Layers


def journal_tag(digest: Digest, layer: Descriptor) -> str:
    """The journal tag that records ``layer`` for the image ``digest``."""
    return _journal_tag(SIGNATURES, digest, layer)


@dataclass(frozen=True, slots=True)
class AttachResult:
    """What :func:`attach_signature` (or :func:`attach_layer`) did.

    ``signature_ref`` is the collection tag (``.sig``), ``manifest_digest`` the digest of its
    manifest seen to contain the layer, ``writes`` how many times it was written (0 when the
    layer was already there), ``restored`` how many other entries (from the journal) were
    merged back in.
    """

    signature_ref: ImageReference
    manifest_digest: Digest
    layer: Descriptor
    journal_ref: ImageReference
    writes: int
    restored: int


def attach_layer(
    client: RegistryClient,
    image: ImageReference,
    collection: LayerCollection,
    payload: bytes,
    annotations: Mapping[str, str],
    *,
    max_payload_bytes: int = MAX_SIGNATURE_PAYLOAD_BYTES,
    max_writes: int = 16,
    deadline: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> AttachResult:
    """Add one layer (``payload`` + ``annotations``) to ``image``'s ``collection`` tag."""
    image.require_digest()
    what = collection.kind
    if not isinstance(payload, bytes):
        raise ConfigError(f"the {what} payload must be bytes, not {type(payload).__name__}")
    if not payload:
        raise ConfigError(f"the {what} payload is empty")
    if len(payload) > max_payload_bytes:
        raise ConfigError(f"{what} payload of {len(payload)} bytes exceeds {max_payload_bytes}")
    layer = Descriptor(
        collection.layer_media_type,
        Digest.of_bytes(payload),
        len(payload),
        check_annotations(annotations),
    )

    def record(journal_ref: ImageReference, state: CollectionState | None) -> None:
        client.push_blob(image, payload)
        collection.write(client, journal_ref, state, [layer])

    attached = attach_entry(
        client,
        image,
        collection,
        layer,
        record,
        max_writes=max_writes,
        deadline=deadline,
        sleep=sleep,
        rng=rng,
    )
    return AttachResult(
        attached.ref,
        attached.manifest_digest,
        layer,
        attached.journal_ref,
        attached.writes,
        attached.restored,
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
    return attach_layer(
        client,
        image,
        SIGNATURES,
        payload,
        annotations,
        max_writes=max_writes,
        deadline=deadline,
        sleep=sleep,
        rng=rng,
    )


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
    return repair_entries(
        client, image, SIGNATURES, max_writes=max_writes, deadline=deadline, sleep=sleep
    )


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
    :class:`~opkey.registry.journal.Layers`). A ``.sig`` tag that is not a signature manifest
    raises :class:`~opkey.errors.RegistryError`.
    """
    return read_layers(
        client,
        image,
        SIGNATURES,
        max_layers=max_layers,
        max_payload_bytes=max_payload_bytes,
        max_total_bytes=max_total_bytes,
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
    and size. A ``.sig`` tag that is not a signature manifest raises
    :class:`~opkey.errors.RegistryError`.
    """
    return list(signature_layers(client, image, max_payload_bytes=max_payload_bytes))
