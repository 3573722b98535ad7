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
Layers that carry neither opkey annotation (cosign's own signatures, made with a key or a
certificate, which share the ``.sig`` manifest) are *ignored* with a note, not rejected: they
name no OpenID identity for a policy to judge, and they must not make an image that opkey
signers signed fail verification.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from opkey.errors import FormatError, OpkeyError, PolicyError, SignatureError
from opkey.jose import b64url_encode
from opkey.keys import verify_cosign_signature
from opkey.pktoken import PKToken
from opkey.policy import UnsafeNoPolicy
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import SignatureLayer, attach_signature, list_signatures
from opkey.registry.simplesigning import parse_simple_signing_payload, simple_signing_payload

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opkey.policyfile import PolicyFile
    from opkey.registry.client import RegistryClient
    from opkey.signer import Signer
    from opkey.verifier import ClaimsPolicy, VerifiedIdentity, Verifier

__all__ = [
    "COSIGN_SIGNATURE",
    "OPKEY_OSM",
    "OPKEY_PKTOKEN",
    "ImageSignature",
    "ImageVerification",
    "foreign_signature_note",
    "sign_image",
    "verify_image",
]

COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
COSIGN_CERTIFICATE = "dev.sigstore.cosign/certificate"
OPKEY_PKTOKEN = "dev.opkey/pktoken"
OPKEY_OSM = "dev.opkey/osm"


def sign_image(
    client: RegistryClient, image: str | ImageReference, signer: Signer
) -> ImageReference:
    """Sign the manifest ``image`` names (a tag is resolved first); return ``image@digest``."""
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
    """One signature layer and what verifying it established.

    Exactly one of ``identity`` (verified), ``error`` (rejected, with the error class name in
    ``kind``) and ``ignored`` (not an opkey signature: a note saying what it is) is set.
    """

    index: int
    identity: VerifiedIdentity | None
    error: str | None = None
    kind: str | None = None
    ignored: str | None = None


@dataclass(frozen=True)
class ImageVerification:
    """The result of verifying an image: the digest and every signature layer's outcome."""

    image: ImageReference
    signatures: tuple[ImageSignature, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> list[VerifiedIdentity]:
        """The identities whose signatures verified (and, with a single policy, matched it)."""
        return [s.identity for s in self.signatures if s.identity is not None]

    @property
    def rejected(self) -> list[ImageSignature]:
        """The opkey signatures that did not verify (or did not match the single policy)."""
        return [s for s in self.signatures if s.error is not None]

    @property
    def ignored(self) -> list[ImageSignature]:
        """The layers that are not opkey signatures (cosign's own, for example)."""
        return [s for s in self.signatures if s.ignored is not None]


def foreign_signature_note(annotations: Mapping[str, str]) -> str | None:
    """Why a ``.sig`` layer is not an opkey signature, or ``None`` when it claims to be one.

    A layer with either opkey annotation is judged as an opkey signature (a missing half is an
    error); a layer with neither is somebody else's and is described, not judged.
    """
    if OPKEY_PKTOKEN in annotations or OPKEY_OSM in annotations:
        return None
    if COSIGN_CERTIFICATE in annotations:
        what = "a cosign signature with a certificate"
    elif COSIGN_SIGNATURE in annotations:
        what = "a cosign signature made with a key"
    else:
        what = "a layer without a signature annotation"
    return (
        f"not an opkey signature ({what}, no {OPKEY_PKTOKEN} annotation): ignored; "
        "check it with cosign verify if it matters"
    )


def _verify_layer(
    layer: SignatureLayer,
    digest: str,
    verifier: Verifier,
    policy: ClaimsPolicy,
    at: datetime | None,
) -> VerifiedIdentity:
    annotations = layer.annotations
    missing = [name for name in (OPKEY_PKTOKEN, OPKEY_OSM) if name not in annotations]
    if missing:
        raise FormatError(f"incomplete opkey signature: no {missing[0]} annotation")
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
) -> ImageVerification:
    """Verify every signature of ``image``; raise unless the policy (or sign-off) is met.

    With ``policy``, at least one signature must verify *and* satisfy it. With ``policy_file``,
    every required signer must be matched by a distinct valid signature.
    """
    if (policy is None) == (policy_file is None):
        raise ValueError("give exactly one of policy or policy_file")
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = resolved.require_digest()
    layers = list_signatures(client, resolved)
    if not layers:
        raise SignatureError(f"{resolved} has no signatures (no {digest.replace(':', '-')}.sig)")
    layer_policy: ClaimsPolicy = policy if policy is not None else UnsafeNoPolicy()
    results = []
    for index, layer in enumerate(layers):
        note = foreign_signature_note(layer.annotations)
        if note is not None:
            results.append(ImageSignature(index, None, ignored=note))
            continue
        try:
            identity = _verify_layer(layer, digest, verifier, layer_policy, at)
        except OpkeyError as exc:
            results.append(ImageSignature(index, None, str(exc), type(exc).__name__))
        else:
            results.append(ImageSignature(index, identity))
    verification = ImageVerification(resolved, tuple(results))
    if policy_file is not None:
        policy_file.evaluate([i.claims for i in verification.valid]).raise_for_unmet()
        return verification
    if not verification.valid:
        rejected = verification.rejected
        ignored = len(verification.ignored)
        if not rejected:
            raise SignatureError(
                f"{resolved} has no opkey signatures: its {ignored} signature layer(s) carry "
                f"no PK token (cosign's own signatures, for example)"
            )
        reasons = "; ".join(f"signature {s.index}: {s.error}" for s in rejected)
        if ignored:
            reasons += f"; {ignored} other layer(s) ignored: not opkey signatures"
        kinds = {s.kind for s in rejected}
        error = PolicyError if kinds == {"PolicyError"} else SignatureError
        raise error(f"no signature of {resolved} satisfies the policy ({reasons})")
    return verification
