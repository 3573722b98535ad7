"""Signing and verifying container images in OCI registries, where cosign keeps signatures.

An image signature is one layer of the ``sha256-<hex>.sig`` manifest (see ``spec/registry.md``):
the blob is cosign's simple-signing payload naming the manifest digest, and the layer
annotations carry

* ``dev.cosignproject.cosign/signature``: base64 of the ephemeral key's raw signature over the
  payload (DER ECDSA for ES256), so ``cosign verify --key <ephemeral public key>`` accepts it;
* ``dev.opkey/pktoken``: the PK token, compact form;
* ``dev.opkey/osm``: the OpenPubkey signed message over the payload, detached
  (``header..signature``: the payload is the blob itself), which binds the signature to that
  PK token.

A tag is resolved to its manifest digest before signing: what is signed is always a digest.
Verification checks every layer on its own (payload names exactly this digest, OSM against the
PK token, the cosign signature under the same key, PK token against the trusted issuer) and
then applies the policy, or the policy file's multi-signer sign-off, to the layers that verified.
Layers are downloaded and verified one at a time, and only each one's outcome is kept; at most
:data:`~opkey.registry.signatures.MAX_SIGNATURE_LAYERS` are considered. Signing and verifying
each run under one :class:`~opkey.http.Deadline` (by default :data:`DEFAULT_SIGN_TIMEOUT` and
:data:`DEFAULT_VERIFY_TIMEOUT`) that bounds every registry request, retry and wait.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from opkey.errors import DeadlineError, FormatError, OpkeyError, PolicyError, SignatureError
from opkey.http import Deadline
from opkey.jose import b64url_encode
from opkey.keys import verify_cosign_signature
from opkey.pktoken import PKToken
from opkey.policy import UnsafeNoPolicy
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import SignatureLayer, attach_signature, signature_layers
from opkey.registry.simplesigning import parse_simple_signing_payload, simple_signing_payload
from opkey.remote_text import printable

if TYPE_CHECKING:
    from opkey.policyfile import PolicyFile
    from opkey.registry.client import RegistryClient
    from opkey.signer import Signer
    from opkey.verifier import ClaimsPolicy, VerifiedIdentity, Verifier

__all__ = [
    "COSIGN_SIGNATURE",
    "DEFAULT_SIGN_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "OPKEY_OSM",
    "OPKEY_PKTOKEN",
    "ImageSignature",
    "ImageVerification",
    "sign_image",
    "verify_image",
]

COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
OPKEY_PKTOKEN = "dev.opkey/pktoken"
OPKEY_OSM = "dev.opkey/osm"

#: Seconds one image signing may take in all: resolving the tag, uploading the payload and the
#: journal entry, and the merge loop (itself bounded at 120 s), with room to ride out a
#: registry restart or a rate limit's Retry-After.
DEFAULT_SIGN_TIMEOUT = 300.0
#: Seconds one image verification may take in all. A healthy registry answers in well under a
#: second (a handful of requests); this leaves room for a couple of rate-limit waits and slow
#: links, and is still short enough for a deploy gate.
DEFAULT_VERIFY_TIMEOUT = 120.0
#: Rejected signatures whose reason goes into the error message (all are in the result).
_MAX_REASONS = 10


def sign_image(
    client: RegistryClient,
    image: str | ImageReference,
    signer: Signer,
    *,
    deadline: Deadline | None = None,
) -> ImageReference:
    """Sign the manifest ``image`` names (a tag is resolved first); return ``image@digest``.

    Everything is done within ``deadline`` (default: :data:`DEFAULT_SIGN_TIMEOUT` from now).
    """
    client = client.within(deadline or Deadline.after(DEFAULT_SIGN_TIMEOUT))
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = resolved.require_digest()
    payload = simple_signing_payload(resolved.cosign_name, digest)
    header, _, signature = signer.sign(payload).split(".")
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(signer.signing_key.sign_der(payload)).decode("ascii"),
        OPKEY_PKTOKEN: signer.pktoken.to_compact(),
        OPKEY_OSM: f"{header}..{signature}",
    }
    attach_signature(client, resolved, payload, annotations)
    return resolved


@dataclass(frozen=True)
class ImageSignature:
    """One signature layer and what verifying it established."""

    index: int
    identity: VerifiedIdentity | None
    error: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class ImageVerification:
    """The result of verifying an image: the digest and every signature layer's outcome.

    ``skipped`` counts the layers beyond the bound, which were not considered.
    """

    image: ImageReference
    signatures: tuple[ImageSignature, ...] = field(default_factory=tuple)
    skipped: int = 0

    @property
    def valid(self) -> list[VerifiedIdentity]:
        """The identities whose signatures verified (and, with a single policy, matched it)."""
        return [s.identity for s in self.signatures if s.identity is not None]


def _verify_layer(
    layer: SignatureLayer,
    digest: str,
    verifier: Verifier,
    policy: ClaimsPolicy,
    at: datetime | None,
) -> VerifiedIdentity:
    annotations = layer.annotations
    if OPKEY_PKTOKEN not in annotations or OPKEY_OSM not in annotations:
        raise FormatError("not an opkey signature (no PK token annotation); ignored")
    payload = parse_simple_signing_payload(layer.payload)
    if payload.manifest_digest != digest:
        raise SignatureError(
            f"the signature is for {payload.manifest_digest}, not {digest}",
            expected=digest,
            found=payload.manifest_digest,
        )
    pktoken = PKToken.from_compact(annotations[OPKEY_PKTOKEN])
    parts = annotations[OPKEY_OSM].split(".")
    if len(parts) != 3 or parts[1] or not parts[0] or not parts[2]:
        raise FormatError("dev.opkey/osm must be a detached JWS 'header..signature'")
    osm = f"{parts[0]}.{b64url_encode(layer.payload)}.{parts[2]}"
    identity, _ = verifier.verify_message(pktoken, osm, policy=policy, at=at)
    cosign = annotations.get(COSIGN_SIGNATURE)
    if cosign is None:
        raise FormatError(f"missing {COSIGN_SIGNATURE} annotation")
    try:
        raw = base64.b64decode(cosign, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{COSIGN_SIGNATURE} is not base64") from None
    verify_cosign_signature(pktoken.cic_claims.upk, layer.payload, raw)
    return identity


def verify_image(
    client: RegistryClient,
    image: str | ImageReference,
    verifier: Verifier,
    *,
    policy: ClaimsPolicy | None = None,
    policy_file: PolicyFile | None = None,
    at: datetime | None = None,
    deadline: Deadline | None = None,
) -> ImageVerification:
    """Verify every signature of ``image``; raise unless the policy (or sign-off) is met.

    With ``policy``, at least one signature must verify *and* satisfy it. With ``policy_file``,
    every required signer must be matched by a distinct valid signature. Layers are fetched and
    verified one at a time; everything is done within ``deadline`` (default:
    :data:`DEFAULT_VERIFY_TIMEOUT` from now), registry requests and waits included.
    """
    if (policy is None) == (policy_file is None):
        raise ValueError("give exactly one of policy or policy_file")
    client = client.within(deadline or Deadline.after(DEFAULT_VERIFY_TIMEOUT))
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = resolved.require_digest()
    layers = signature_layers(client, resolved)
    if not layers.total:
        raise SignatureError(f"{resolved} has no signatures (no {digest.replace(':', '-')}.sig)")
    layer_policy: ClaimsPolicy = policy if policy is not None else UnsafeNoPolicy()
    results = []
    for index, layer in enumerate(layers):
        try:
            identity = _verify_layer(layer, digest, verifier, layer_policy, at)
        except DeadlineError:
            raise
        except OpkeyError as exc:
            # Everything in a layer is remote text: never let it reach a terminal raw.
            message = printable(str(exc), limit=500)
            results.append(ImageSignature(index, None, message, type(exc).__name__))
        else:
            results.append(ImageSignature(index, identity))
    verification = ImageVerification(resolved, tuple(results), layers.skipped)
    skipped = (
        f"; {layers.skipped} more signature layers were not considered (at most {len(layers)} are)"
        if layers.skipped
        else ""
    )
    if policy_file is not None:
        try:
            policy_file.evaluate([i.claims for i in verification.valid]).raise_for_unmet()
        except PolicyError as exc:
            if not skipped:
                raise
            raise PolicyError(f"{exc}{skipped}") from None
        return verification
    if not verification.valid:
        reasons = "; ".join(f"signature {s.index}: {s.error}" for s in results[:_MAX_REASONS])
        if len(results) > _MAX_REASONS:
            reasons += f"; and {len(results) - _MAX_REASONS} more"
        kinds = {s.kind for s in results}
        error = PolicyError if kinds == {"PolicyError"} else SignatureError
        raise error(f"no signature of {resolved} satisfies the policy ({reasons}){skipped}")
    return verification
