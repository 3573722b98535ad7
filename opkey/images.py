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

**Attestations** (:func:`attest_image`, ``spec/attestations.md``) are in-toto statements about
the digest in DSSE envelopes, stored as cosign stores them (a layer of the ``sha256-<hex>.att``
tag) or as OCI 1.1 referrers; signatures can be stored as referrers too (``storage``).
Verification reads every layout: the ``.sig`` tag, the ``.att`` tag when the requirement asks
for attestations, and the image's referrers (the referrers API, else the referrers tag).

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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

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
from opkey.dsse import DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES
from opkey.errors import ConfigError, FormatError, SignatureError, VerificationError
from opkey.http import Deadline
from opkey.intoto import Statement, Subject
from opkey.registry.attestations import attach_attestation, attestation_layers, attestation_tag
from opkey.registry.mediatypes import (
    COSIGN_SIGNATURE_ARTIFACT,
    COSIGN_SIMPLESIGNING,
    INTOTO_ARTIFACT,
)
from opkey.registry.reference import ImageReference
from opkey.registry.referrers import (
    MAX_REFERRERS,
    PREDICATE_TYPE_ANNOTATION,
    attach_referrer,
    list_referrers,
)
from opkey.registry.signatures import (
    MAX_SIGNATURE_LAYERS,
    SignatureLayer,
    attach_signature,
    signature_layers,
)
from opkey.verification.evidence import AttestationEvidence, CosignLayerEvidence, Evidence

if TYPE_CHECKING:
    from opkey.policy.signoff import Requirement
    from opkey.registry.client import RegistryClient
    from opkey.signer import Signer
    from opkey.verification.verdict import Verdict
    from opkey.verification.verifier import Verifier

__all__ = [
    "DEFAULT_SIGN_TIMEOUT",
    "DEFAULT_VERIFY_TIMEOUT",
    "STORAGES",
    "ImageTree",
    "ImageVerdict",
    "Storage",
    "TreeEntry",
    "attest_image",
    "image_tree",
    "sign_image",
    "verify_image",
]

#: Where a signature or attestation is stored: cosign's tag layout (``.sig``/``.att``), an
#: OCI 1.1 referrer (the referrers API, else the referrers tag schema), or a referrer when
#: the registry serves the referrers API and the tag layout when it does not.
Storage = Literal["tag", "referrers", "auto"]
STORAGES: tuple[Storage, ...] = ("tag", "referrers", "auto")

#: Seconds one image signing may take in all: uploads, the journal entry and the merge loop,
#: with room to ride out a registry restart or a rate limit.
DEFAULT_SIGN_TIMEOUT = 300.0
#: Seconds one image verification may take in all: a handful of requests when healthy, with
#: room for a couple of rate-limit waits; still short enough for a deploy gate.
DEFAULT_VERIFY_TIMEOUT = 120.0


def _check_storage(storage: str) -> None:
    if storage not in STORAGES:
        raise ConfigError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")


def _use_referrers(client: RegistryClient, image: ImageReference, storage: str) -> bool | None:
    """Whether to store a referrer (``None``: a referrer, registry API support unknown)."""
    if storage == "tag":
        return False
    if storage == "referrers":
        return True
    return client.find_referrers(image) is not None


def sign_image(
    client: RegistryClient,
    image: str | ImageReference,
    signer: Signer,
    *,
    deadline: Deadline | None = None,
    storage: Storage = "tag",
) -> ImageReference:
    """Sign the manifest ``image`` names (a tag is resolved first); return ``image@digest``.

    With a time-stamping authority on ``signer``, the layer carries its token over cosign's
    signature; the token is obtained before anything is written, so a failing authority
    leaves the registry untouched. A layer holds one token (cosign's annotation), so at most
    one authority may be asked. With a transparency log on ``signer``, cosign's signature is
    logged before anything is written, likewise. Everything is done within ``deadline``
    (default: :data:`DEFAULT_SIGN_TIMEOUT` from now). ``storage`` says where the signature goes
    (:data:`Storage`; cosign's ``.sig`` tag by default).
    """
    _check_storage(storage)
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
    digest = resolved.require_digest()
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
    if _use_referrers(client, resolved, storage):
        attach_referrer(
            client,
            resolved,
            COSIGN_SIGNATURE_ARTIFACT,
            payload,
            COSIGN_SIMPLESIGNING,
            annotations,
            registry_api=None if storage == "referrers" else True,
        )
    else:
        attach_signature(client, resolved, payload, annotations)
    return resolved


def attest_image(
    client: RegistryClient,
    image: str | ImageReference,
    signer: Signer,
    predicate_type: str,
    predicate: Mapping[str, Any],
    *,
    deadline: Deadline | None = None,
    storage: Storage = "tag",
) -> ImageReference:
    """Attest ``predicate`` (of ``predicate_type``, a URI or cosign's short name) about the
    manifest ``image`` names (a tag is resolved first); return ``image@digest``.

    The statement's subject is the image's repository (as cosign names it) with the manifest
    digest. Stored as ``storage`` says: a layer of cosign's ``.att`` tag by default (lost-update
    safe among concurrent attesters), or an OCI 1.1 referrer. With a time-stamping authority
    on ``signer`` (one at most: a layer holds one token), its token over the DSSE signature is
    obtained before anything is written.
    """
    _check_storage(storage)
    if len(signer.timestamp_clients) > 1:
        raise ConfigError("an attestation layer carries one RFC 3161 timestamp")
    client = client.within(deadline or Deadline.after(DEFAULT_SIGN_TIMEOUT))
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = resolved.require_digest()
    statement = Statement.about(
        [Subject.of(resolved.cosign_name, digest)], predicate_type, predicate
    )
    attestation = signer.attest(statement)
    envelope = attestation.envelope_bytes()
    annotations = attestation.layer_annotations(statement.predicate_type)
    if _use_referrers(client, resolved, storage):
        attach_referrer(
            client,
            resolved,
            INTOTO_ARTIFACT,
            envelope,
            DSSE_MEDIA_TYPE,
            annotations,
            annotations={PREDICATE_TYPE_ANNOTATION: statement.predicate_type},
            registry_api=None if storage == "referrers" else True,
        )
    else:
        attach_attestation(client, resolved, envelope, annotations)
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


def _attestation_evidence(layers: Iterable[SignatureLayer]) -> Iterator[AttestationEvidence]:
    for index, layer in enumerate(layers):
        yield AttestationEvidence.from_layer(
            layer.payload, layer.annotations, label=f"attestation layer {index}"
        )


@dataclass
class _Found:
    """The evidence of every layout, streamed, and how much there is.

    The referrers are listed after the tag layout's layers were streamed, unless the tags hold
    nothing (then they are all there is): an image signed in the tag layout costs the same
    requests, in the same order, as before referrers existed, plus one listing at the end.
    ``skipped`` is complete once ``evidence`` is consumed.
    """

    evidence: Iterator[Evidence]
    total: int
    skipped: int
    where: str


def _image_evidence(
    client: RegistryClient, image: ImageReference, requirement: Requirement
) -> _Found:
    digest = image.require_digest()
    wanted_signatures = requirement.needs_signatures
    wanted_attestations = bool(requirement.predicate_types)
    signatures = signature_layers(client, image) if wanted_signatures else None
    attestations = attestation_layers(client, image) if wanted_attestations else None
    kinds: set[str] = set()
    if wanted_signatures:
        kinds.add(COSIGN_SIGNATURE_ARTIFACT)
    if wanted_attestations:
        kinds.add(INTOTO_ARTIFACT)
    parts = [p for p in (signatures, attestations) if p is not None]
    total = sum(p.total for p in parts)
    listed = list_referrers(client, image) if not total else None
    places = []
    if wanted_signatures:
        places.append(signature_tag(digest))
    if wanted_attestations:
        places.append(attestation_tag(digest))

    def stream() -> Iterator[Evidence]:
        if signatures is not None:
            yield from _evidence(signatures)
        if attestations is not None:
            yield from _attestation_evidence(attestations)
        referrers = listed if listed is not None else list_referrers(client, image)
        found.skipped += referrers.total - len(referrers.entries)
        for referrer, kind, layer in referrers.layers(
            max_bytes=MAX_ENVELOPE_BYTES, artifact_types=frozenset(kinds)
        ):
            label = f"referrer {str(referrer.digest)[:19]}"
            if kind == COSIGN_SIGNATURE_ARTIFACT:
                yield CosignLayerEvidence(layer.payload, layer.annotations, label=label)
            else:
                yield AttestationEvidence.from_layer(layer.payload, layer.annotations, label=label)

    if listed is not None:
        total = sum(
            1 for r in listed.entries if r.artifact_type in kinds or r.artifact_type is None
        )
        places.append("no referrers" if listed.source != "none" else "no referrers tag")
    found = _Found(stream(), total, sum(p.skipped for p in parts), ", ".join(places))
    return found


def verify_image(
    client: RegistryClient,
    image: str | ImageReference,
    verifier: Verifier,
    requirement: Requirement,
    *,
    at: datetime | None = None,
    deadline: Deadline | None = None,
    until_met: bool = False,
) -> ImageVerdict:
    """Verify every signature of ``image`` and decide ``requirement``; raise unless it is met.

    The tag (if any) is resolved to a digest first; the digest is what is verified. Evidence
    comes from every layout: the ``.sig`` tag (when some requirement is met by signatures),
    the ``.att`` tag (when some requirement names a predicate type) and the image's OCI 1.1
    referrers. The returned :class:`ImageVerdict` says which signature or attestation met
    which requirement and why each other one did not. Everything is done within ``deadline``
    (default: :data:`DEFAULT_VERIFY_TIMEOUT` from now), registry requests and waits included.
    ``until_met`` stops once the requirement is met (:meth:`Verifier.verdict`): the referrers
    are then not listed when the ``.sig`` tag's signatures suffice.
    """
    client = client.within(deadline or Deadline.after(DEFAULT_VERIFY_TIMEOUT))
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    digest = resolved.require_digest()
    found = _image_evidence(client, resolved, requirement)
    if not found.total:
        kind = "signatures" if requirement.needs_signatures else "attestations"
        raise SignatureError(f"{resolved} has no {kind} ({found.where})")
    verdict = verifier.verdict(requirement, digest, found.evidence, at=at, until_met=until_met)
    try:
        verdict.raise_if_rejected()
    except VerificationError as exc:
        if not found.skipped:
            raise
        raise type(exc)(
            f"{exc}; {found.skipped} more signature layers were not considered (at most "
            f"{MAX_SIGNATURE_LAYERS} per tag and {MAX_REFERRERS} referrers are)",
            expected=exc.expected,
            found=exc.found,
        ) from None
    return ImageVerdict(resolved, verdict, found.skipped)


# -- what an image carries -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One signature or attestation of an image, as stored (nothing here is verified).

    ``layout`` is ``.sig``, ``.att`` or ``referrer``; ``kind`` ``signature``,
    ``attestation`` or ``other`` (a referrer of another kind: an SBOM, a Sigstore bundle);
    ``signer`` the issuer and subject the PK token *claims* (``None`` for signatures that
    carry none); ``where`` the layer index or the referrer's manifest digest.
    """

    layout: str
    kind: str
    where: str
    digest: Digest
    artifact_type: str | None = None
    predicate_type: str | None = None
    signer: str | None = None


@dataclass(frozen=True)
class ImageTree:
    """Every signature and attestation of ``image``, from the tag layout and the referrers
    (``referrers_source``: ``api``, ``tag`` or ``none``)."""

    image: ImageReference
    entries: tuple[TreeEntry, ...]
    referrers_source: str


def _claimed_signer(annotations: Mapping[str, str]) -> str | None:
    from opkey.pktoken import PKToken

    compact = annotations.get(OPKEY_PKTOKEN)
    if compact is None:
        return None
    try:
        claims = PKToken.from_compact(compact).claims
    except FormatError:
        return "(unreadable PK token)"
    return f"{claims.get('sub')} (issuer {claims.get('iss')})"


def image_tree(
    client: RegistryClient, image: str | ImageReference, *, deadline: Deadline | None = None
) -> ImageTree:
    """List every signature and attestation of ``image``: the ``.sig`` and ``.att`` layers
    and the referrers. Nothing is verified (use :func:`verify_image`); signers are as
    claimed."""
    client = client.within(deadline or Deadline.after(DEFAULT_VERIFY_TIMEOUT))
    ref = image if isinstance(image, ImageReference) else ImageReference.parse(image)
    resolved = client.resolve(ref)
    entries: list[TreeEntry] = []
    for index, layer in enumerate(signature_layers(client, resolved).descriptors):
        entries.append(
            TreeEntry(
                ".sig",
                "signature",
                f"layer {index}",
                layer.digest,
                layer.media_type,
                None,
                _claimed_signer(layer.annotations),
            )
        )
    for index, layer in enumerate(attestation_layers(client, resolved).descriptors):
        entries.append(
            TreeEntry(
                ".att",
                "attestation",
                f"layer {index}",
                layer.digest,
                layer.media_type,
                layer.annotations.get("predicateType"),
                _claimed_signer(layer.annotations),
            )
        )
    referrers = list_referrers(client, resolved)
    fetched = {
        r.digest: (kind, layer) for r, kind, layer in referrers.layers(max_bytes=MAX_ENVELOPE_BYTES)
    }
    for referrer in referrers.entries:
        got = fetched.get(referrer.digest)
        if got is None:
            entries.append(
                TreeEntry(
                    "referrer",
                    "other",
                    str(referrer.digest),
                    referrer.digest,
                    referrer.artifact_type,
                )
            )
            continue
        kind, found = got
        attested = kind == INTOTO_ARTIFACT
        entries.append(
            TreeEntry(
                "referrer",
                "attestation" if attested else "signature",
                str(referrer.digest),
                referrer.digest,
                kind,
                found.annotations.get("predicateType") if attested else None,
                _claimed_signer(found.annotations),
            )
        )
    return ImageTree(resolved, tuple(entries), referrers.source)
