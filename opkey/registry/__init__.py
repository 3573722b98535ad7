"""OCI registries: image references, the distribution API client, cosign-style signatures.

* :mod:`~opkey.registry.reference`: :class:`ImageReference`, strict parsing of references and
  digest text (into :class:`~opkey.digest.Digest`).
* :mod:`~opkey.registry.client`: :class:`RegistryClient` (manifests, blobs, tags, auth, retries).
* :mod:`~opkey.registry.signatures`: :func:`attach_signature` / :func:`list_signatures` /
  :func:`signature_layers` (streamed) on the cosign ``sha256-<hex>.sig`` tag, safe for
  concurrent signers.
* :mod:`~opkey.registry.auth`: credentials (docker config, credential helpers, environment)
  and challenges; :mod:`~opkey.registry.responses`: parsers of registry answers.
* :mod:`~opkey.registry.attestations` (the ``.att`` tag) and :mod:`~opkey.registry.referrers`
  (OCI 1.1 referrers), both written through :mod:`~opkey.registry.journal`, the lost-update-safe
  merge of collection tags.

The payload cosign signs for an image is in :mod:`opkey.cosign`; a real registry process on
loopback for tests and demos is in :mod:`opkey.sandbox.registry`, outside what a verifier runs.

``spec/registry.md`` describes the storage layout and the concurrency design.
"""

from __future__ import annotations

from opkey.cosign import (
    SimpleSigningPayload,
    parse_simple_signing_payload,
    simple_signing_payload,
)
from opkey.registry.auth import Credentials, DockerCredentialStore
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import Descriptor, ImageManifest, Manifest
from opkey.registry.reference import ImageReference, parse_digest
from opkey.registry.retry import RetryPolicy
from opkey.registry.signatures import (
    COSIGN_SIGNATURE_ANNOTATION,
    AttachResult,
    SignatureLayer,
    SignatureLayers,
    attach_signature,
    list_signatures,
    repair_signatures,
    signature_layers,
    signature_tag,
)

__all__ = [
    "COSIGN_SIGNATURE_ANNOTATION",
    "AttachResult",
    "Credentials",
    "Descriptor",
    "DockerCredentialStore",
    "ImageManifest",
    "ImageReference",
    "Manifest",
    "RegistryClient",
    "RetryPolicy",
    "SignatureLayer",
    "SignatureLayers",
    "SimpleSigningPayload",
    "attach_signature",
    "list_signatures",
    "parse_digest",
    "parse_simple_signing_payload",
    "repair_signatures",
    "signature_layers",
    "signature_tag",
    "simple_signing_payload",
]
