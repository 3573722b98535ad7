"""Media types of the OCI and Docker formats opkey reads and writes, and of cosign signatures."""

from __future__ import annotations

__all__ = [
    "COSIGN_SIGNATURE_ARTIFACT",
    "COSIGN_SIMPLESIGNING",
    "DOCKER_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "IMAGE_MANIFESTS",
    "INTOTO_ARTIFACT",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
#: The layer media type of a cosign signature (``pkg/types/media.go`` in cosign).
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

#: The ``artifactType`` of a cosign signature stored as an OCI 1.1 referrer (cosign's
#: ``WriteSignaturesExperimentalOCI``): the simple-signing layer of a ``.sig`` entry.
COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
#: The ``artifactType`` of an attestation stored as an OCI 1.1 referrer (cosign's
#: ``WriteAttestationsReferrer``): a DSSE envelope holding an in-toto statement.
INTOTO_ARTIFACT = "application/vnd.in-toto+json"

#: Manifests that describe one image (config + layers).
IMAGE_MANIFESTS: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Every manifest media type opkey accepts from a registry.
MANIFEST_TYPES: frozenset[str] = frozenset(
    {OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}
)
#: The ``Accept`` header for manifest requests: without it, registries may convert an image to
#: an older format, whose digest is not the one that was pushed.
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
