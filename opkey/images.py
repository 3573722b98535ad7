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
  can check it too (``spec/timestamps.md``);
* when the signer logs its signatures (``spec/transparency-log.md``): ``dev.opkey/tlog``, the
  log entry of cosign's signature with its inclusion proof and checkpoint (a Sigstore
  ``TransparencyLogEntry``); ``dev.sigstore.cosign/certificate``, the PK-token certificate
  the entry names; and, from a Rekor v1 log, ``dev.sigstore.cosign/bundle``, cosign's own
  record of the entry and its signed entry timestamp, so ``cosign verify`` checks it too.

A tag is resolved to its manifest digest before signing or verifying: what is signed and
verified is always a digest. Verification hands every signature layer to the verifier as
:class:`~opkey.verification.evidence.CosignLayerEvidence` and returns its verdict. Layers are
downloaded and verified one at a time, and only each one's outcome is kept; at most
:data:`~opkey.registry.signatures.MAX_SIGNATURE_LAYERS` are considered. Layers that carry
neither opkey annotation (cosign's own signatures, made with a key or a certificate, which
share the ``.sig`` manifest) are *ignored* with a note, not rejected: they name no OpenID
identity for a policy to judge, and they must not make an image that opkey signers signed fail
verification.

Signing and verifying each run under one :class:`~opkey.http.Deadline` (by default
:data:`DEFAULT_SIGN_TIMEOUT` and :data:`DEFAULT_VERIFY_TIMEOUT`) that bounds every registry
request, retry and wait.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from opkey.cosign import (
    COSIGN_BUNDLE_ANNOTATION,
    COSIGN_CERTIFICATE,
    COSIGN_SIGNATURE,
    COSIGN_TIMESTAMP_ANNOTATION,
    OPKEY_OSM,
    OPKEY_PKTOKEN,
    OPKEY_TLOG,
    signature_tag,
    simple_signing_payload,
)
from opkey.digest import Digest
from opkey.errors import ConfigError, SignatureError, VerificationError
from opkey.http import Deadline
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import SignatureLayer, attach_signature, signature_layers
from opkey.verification.evidence import CosignLayerEvidence

if TYPE_CHECKING:
    from opkey.policy.signoff import Requirement
    from opkey.registry.client import RegistryClient
    from opkey.signer import Signer
    from opkey.verification.verdict import Verdict
    from opkey.verification.verifier import Verifier

__all__ = [
    "DEFAULT_SIGN_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "ImageVerdict",
    "sign_image",
    "verify_image",
]

#: Seconds one image signing may take in all: uploads, the journal entry and the merge loop,
#: with room to ride out a registry restart or a rate limit.
DEFAULT_SIGN_TIMEOUT = 300.0
#: Seconds one image verification may take in all: a handful of requests when healthy, with
#: room for a couple of rate-limit waits; still short enough for a deploy gate.
DEFAULT_VERIFY_TIMEOUT = 120.0


def sign_image(
    client: RegistryClient,
    image: str | ImageReference,
    signer: Signer,
    *,
    deadline: Deadline | None = None,
) -> ImageReference:
    """Sign the manifest ``image`` names (a tag is resolved first); return ``image@digest``.

    With a time-stamping authority on ``signer``, the layer carries its token over cosign's
    signature; the token is obtained before anything is written, so a failing authority
    leaves the registry untouched. A layer holds one token (cosign's annotation), so at most
    one authority may be asked. With a transparency log on ``signer``, cosign's signature is
    logged before anything is written, likewise. Everything is done within ``deadline`` (default:
    :data:`DEFAULT_SIGN_TIMEOUT` from now).
    """
    if len(signer.timestamp_clients) > 1:
        raise ConfigError(
            f"an image signature carries one RFC 3161 timestamp (cosign's "
            f"{COSIGN_TIMESTAMP_ANNOTATION} annotation); {len(signer.timestamp_clients)} "
            "time-stamping authorities were given",
            expected=1,
            found=len(signer.timestamp_clients),
        )
    client = client.within(deadline or Deadline.after(DEFAULT_SIGN_TIMEOUT))
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
    if signer.tlog is not None:
        annotations.update(_tlog_annotations(signer, payload, cosign_signature))
    attach_signature(client, resolved, payload, annotations)
    return resolved


def _tlog_annotations(signer: Signer, payload: bytes, signature: bytes) -> dict[str, str]:
    """Log cosign's signature; the annotations that carry the entry (module documentation)."""
    import json

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from opkey.tlog.rekor import cosign_rekor_bundle, transparency_log_entry

    entry = signer.log_signature("hashedrekord", payload, signature)
    certificate = x509.load_der_x509_certificate(signer.certificate())
    annotations = {
        OPKEY_TLOG: json.dumps(transparency_log_entry(entry), separators=(",", ":")),
        COSIGN_CERTIFICATE: certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }
    if entry.signed_entry_timestamp is not None:
        annotations[COSIGN_BUNDLE_ANNOTATION] = cosign_rekor_bundle(entry)
    return annotations


@dataclass(frozen=True)
class ImageVerdict:
    """The verdict over an image's signatures, and the digest the image reference named.

    ``skipped`` counts the signature layers beyond the bound, which were not considered.
    """

    image: ImageReference
    verdict: Verdict
    skipped: int = 0


def _evidence(layers: Iterable[SignatureLayer]) -> Iterator[CosignLayerEvidence]:
    for index, layer in enumerate(layers):
        yield CosignLayerEvidence(layer.payload, layer.annotations, label=f"layer {index}")


def verify_image(
    client: RegistryClient,
    image: str | ImageReference,
    verifier: Verifier,
    requirement: Requirement,
    *,
    at: datetime | None = None,
    deadline: Deadline | None = None,
) -> ImageVerdict:
    """Verify every signature of ``image`` and decide ``requirement``; raise unless it is met.

    The tag (if any) is resolved to a digest first; the digest is what is verified. The
    returned :class:`ImageVerdict` says which layer met which requirement and why each other
    layer did not. Everything is done within ``deadline`` (default:
    :data:`DEFAULT_VERIFY_TIMEOUT` from now), registry requests and waits included.
    """
    client = client.within(deadline or Deadline.after(DEFAULT_VERIFY_TIMEOUT))
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = Digest(resolved.require_digest())
    layers = signature_layers(client, resolved)
    if not layers.total:
        raise SignatureError(f"{resolved} has no signatures (no {signature_tag(digest)})")
    verdict = verifier.verdict(requirement, digest, _evidence(layers), at=at)
    try:
        verdict.raise_if_rejected()
    except VerificationError as exc:
        if not layers.skipped:
            raise
        raise type(exc)(
            f"{exc}; {layers.skipped} more signature layers were not considered "
            f"(at most {len(layers)} are)",
            expected=exc.expected,
            found=exc.found,
        ) from None
    return ImageVerdict(resolved, verdict, layers.skipped)
