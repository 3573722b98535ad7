"""cosign's attestation tag: ``sha256-<hex>.att``, one DSSE envelope layer per attestation.

The layout is cosign's (``cosign attest``, ``specs/ATTESTATION_SPEC.md``): an OCI image
manifest under the tag ``sha256-<hex>.att`` whose config is cosign's image config and whose
layers have media type ``application/vnd.dsse.envelope.v1+json``; each layer's blob is one
DSSE envelope and its annotations name the predicate type (``predicateType``) and whatever
else the attester adds (opkey: the PK token and the detached OSM, ``spec/attestations.md``).

Adding a layer goes through the same journal and merge loop as the ``.sig`` tag
(:mod:`opkey.registry.journal`), with journal tags ``sha256-<hex>.att.journal-<32 hex>``, so
concurrent attesters lose nothing. A ``.att`` tag holding anything else is never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping

from opkey.digest import Digest
from opkey.dsse import DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES
from opkey.registry.client import RegistryClient
from opkey.registry.journal import MAX_LAYER_BYTES, MAX_LAYERS, LayerCollection, Layers, read_layers
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import AttachResult, attach_layer

__all__ = [
    "ATTESTATIONS",
    "attach_attestation",
    "attestation_layers",
    "attestation_tag",
]

#: cosign's attestation tag: ``sha256-<hex>.att``, one DSSE envelope layer per attestation.
ATTESTATIONS = LayerCollection(
    kind="attestation",
    suffix=".att",
    layer_media_type=DSSE_MEDIA_TYPE,
    holds="a cosign attestation manifest",
)


def attestation_tag(digest: Digest) -> str:
    """The cosign attestation tag of the image ``digest``: ``sha256-<hex>.att``."""
    return ATTESTATIONS.tag(digest)


def attach_attestation(
    client: RegistryClient,
    image: ImageReference,
    envelope: bytes,
    annotations: Mapping[str, str],
) -> AttachResult:
    """Add one attestation layer (the DSSE ``envelope`` and its ``annotations``) to the image's
    ``.att`` tag; safe among concurrent attesters, idempotent."""
    return attach_layer(
        client,
        image,
        ATTESTATIONS,
        envelope,
        annotations,
        max_payload_bytes=MAX_ENVELOPE_BYTES,
    )


def attestation_layers(
    client: RegistryClient, image: ImageReference, *, max_layers: int = MAX_LAYERS
) -> Layers:
    """The attestation layers of the image's ``.att`` tag, streamed (none without the tag)."""
    return read_layers(
        client,
        image,
        ATTESTATIONS,
        max_layers=max_layers,
        max_payload_bytes=MAX_ENVELOPE_BYTES,
        max_total_bytes=MAX_LAYER_BYTES,
    )
