"""Signing and verifying container images in OCI registries, where cosign keeps signatures.

An image signature is one layer of the ``sha256-<hex>.sig`` manifest (see ``spec/registry.md``
and :mod:`opkey.cosign`): the blob is cosign's simple-signing payload naming the manifest
digest, and the layer annotations carry

* ``dev.cosignproject.cosign/signature``: base64 of the ephemeral key's raw signature over the
  payload (DER ECDSA for ES256), so ``cosign verify --key <ephemeral public key>`` accepts it;
* ``dev.opkey/pktoken``: the PK token, compact form;
* ``dev.opkey/osm``: the OpenPubkey signed message over the payload, detached
  (``header..signature``: the payload is the blob itself), which binds the signature to that
  PK token;
* ``dev.sigstore.cosign/rfc3161timestamp``, when the signer asks a time-stamping authority:
  an RFC 3161 token over the raw bytes of cosign's signature, in cosign's format, so cosign
  can check it too (``spec/timestamps.md``).

A tag is resolved to its manifest digest before signing or verifying: what is signed and
verified is always a digest. Verification hands every signature layer to the verifier as
:class:`~opkey.verification.evidence.CosignLayerEvidence` and returns its verdict.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from opkey.cosign import (
    COSIGN_SIGNATURE,
    COSIGN_TIMESTAMP_ANNOTATION,
    OPKEY_OSM,
    OPKEY_PKTOKEN,
    signature_tag,
    simple_signing_payload,
)
from opkey.digest import Digest
from opkey.errors import ConfigError, SignatureError
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import SignatureLayer, attach_signature, list_signatures
from opkey.verification.evidence import CosignLayerEvidence

if TYPE_CHECKING:
    from opkey.policy.signoff import Requirement
    from opkey.registry.client import RegistryClient
    from opkey.signer import Signer
    from opkey.verification.verdict import Verdict
    from opkey.verification.verifier import Verifier

__all__ = ["ImageVerdict", "sign_image", "verify_image"]


def sign_image(
    client: RegistryClient, image: str | ImageReference, signer: Signer
) -> ImageReference:
    """Sign the manifest ``image`` names (a tag is resolved first); return ``image@digest``.

    With a time-stamping authority on ``signer``, the layer carries its token over cosign's
    signature; the token is obtained before anything is written, so a failing authority
    leaves the registry untouched. A layer holds one token (cosign's annotation), so at most
    one authority may be asked.
    """
    if len(signer.timestamp_clients) > 1:
        raise ConfigError(
            f"an image signature carries one RFC 3161 timestamp (cosign's "
            f"{COSIGN_TIMESTAMP_ANNOTATION} annotation); {len(signer.timestamp_clients)} "
            "time-stamping authorities were given",
            expected=1,
            found=len(signer.timestamp_clients),
        )
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = Digest(resolved.require_digest())
    payload = simple_signing_payload(resolved.cosign_name, digest)
    header, _, signature = signer.sign(payload).split(".")
    cosign_signature = signer.signing_key.sign_der(payload)
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(cosign_signature).decode("ascii"),
        OPKEY_PKTOKEN: signer.pktoken.to_compact(),
        OPKEY_OSM: f"{header}..{signature}",
    }
    for token in signer.stamp(cosign_signature):
        annotations[COSIGN_TIMESTAMP_ANNOTATION] = token.to_cosign_annotation()
    attach_signature(client, resolved, payload, annotations)
    return resolved


@dataclass(frozen=True)
class ImageVerdict:
    """The verdict over an image's signatures, and the digest the image reference named."""

    image: ImageReference
    verdict: Verdict


def _evidence(layers: list[SignatureLayer]) -> Iterator[CosignLayerEvidence]:
    for index, layer in enumerate(layers):
        yield CosignLayerEvidence(layer.payload, layer.annotations, label=f"layer {index}")


def verify_image(
    client: RegistryClient,
    image: str | ImageReference,
    verifier: Verifier,
    requirement: Requirement,
    *,
    at: datetime | None = None,
) -> ImageVerdict:
    """Verify every signature of ``image`` and decide ``requirement``; raise unless it is met.

    The tag (if any) is resolved to a digest first; the digest is what is verified. The
    returned :class:`ImageVerdict` says which layer met which requirement and why each other
    layer did not.
    """
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = Digest(resolved.require_digest())
    layers = list_signatures(client, resolved)
    if not layers:
        raise SignatureError(f"{resolved} has no signatures (no {signature_tag(digest)})")
    verdict = verifier.verdict(requirement, digest, _evidence(layers), at=at)
    verdict.raise_if_rejected()
    return ImageVerdict(resolved, verdict)
