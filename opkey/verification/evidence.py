"""Evidence: the signatures a verdict is decided over, whatever carries them.

Every kind of signature opkey reads is an :class:`Evidence`. It parses what it carries and
binds it to the subject digest (:meth:`Evidence.claim`), or raises the
:class:`~opkey.errors.OpkeyError` that explains why it cannot be a signature of that subject;
checking the claim is the verifier's job (:meth:`~opkey.verification.verifier.Verifier.check`),
and deciding *who must* have signed is the requirement's, in the verdict. Evidence holds no
trust and does no cryptography, so a new kind of evidence cannot check less than the others.

* :class:`BundleEvidence`: a bundle document (``spec/bundle.md``) for a file or a digest;
* :class:`CosignLayerEvidence`: one layer of an image's cosign signature manifest
  (``spec/registry.md``): the simple-signing payload naming the image digest, with the PK
  token, the detached OSM and cosign's own signature in the layer annotations. A layer that
  carries no opkey signature (cosign's own key-signed layers, for instance) raises
  :class:`~opkey.errors.ForeignSignatureError`: the verdict reports it as ignored;
* :class:`AttestationEvidence`: an attestation (``spec/attestations.md``), a DSSE envelope
  with an in-toto statement about the subject, from an ``.att`` layer or an OCI 1.1 referrer
  (the envelope is the blob, the PK token and the detached OSM over the envelope's PAE are
  annotations) or from an attestation bundle. Its identity carries the verified statement,
  which requirements with a predicate type judge.

A layer and an attestation both claim a :class:`ClaimedSignature`: a signature made with the
PK token's key, with the RFC 3161 timestamps it carries (cosign's
``dev.sigstore.cosign/rfc3161timestamp`` layer annotation, over the raw bytes of cosign's
signature) and its transparency log entries (the layer's ``dev.opkey/tlog``, the entry of
cosign's signature), from which the verifier proves the signing time and applies the time
rule (:meth:`~opkey.verification.verifier.Verifier.prove`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from opkey.attestation import (
    OPKEY_TIMESTAMP_ANNOTATION,
    PREDICATE_TYPE_ANNOTATION,
    SignedAttestation,
    split_detached,
)
from opkey.bundle import Bundle
from opkey.cosign import (
    COSIGN_CERTIFICATE,
    COSIGN_SIGNATURE,
    COSIGN_TIMESTAMP_ANNOTATION,
    OPKEY_OSM,
    OPKEY_PKTOKEN,
    OPKEY_TLOG,
    parse_simple_signing_payload,
)
from opkey.digest import Digest
from opkey.dsse import Envelope
from opkey.errors import ForeignSignatureError, FormatError, SignatureError
from opkey.intoto import INTOTO_PAYLOAD_TYPE, Statement
from opkey.jose import b64url_encode
from opkey.pktoken import PKToken

if TYPE_CHECKING:
    from opkey.timestamp import TimestampToken
    from opkey.tlog.entry import LogEntry
    from opkey.tlog.signature_entry import ExpectedSignature

__all__ = [
    "AttestationEvidence",
    "BundleEvidence",
    "ClaimedSignature",
    "CosignLayerEvidence",
    "Evidence",
    "foreign_signature_note",
]


@dataclass(frozen=True, slots=True)
class ClaimedSignature:
    """A signature made with a PK token's key, as a layer or an attestation claims it.

    Parsed strictly and bound to the subject, but nothing here is checked yet: the verifier
    proves its time from ``timestamps`` and ``log_entries``, verifies ``osm`` and the PK token
    under its trust, and ``signature`` over ``signed`` under the PK token's key
    (:meth:`~opkey.verification.verifier.Verifier.open_signature`). Keeping the checks out of
    evidence means every kind of evidence is judged by the same code.
    """

    pktoken: PKToken
    #: The OSM with its payload attached (a compact JWS).
    osm: str = field(repr=False)
    #: The bytes ``signature`` covers: cosign's payload, or an envelope's PAE.
    signed: bytes = field(repr=False)
    #: The raw signature (DER for ECDSA), the bytes RFC 3161 tokens stamp.
    signature: bytes = field(repr=False)
    #: What ``signature`` is, for the error when it does not verify.
    what: str = "cosign signature"
    timestamps: tuple[TimestampToken | bytes, ...] = ()
    log_entries: tuple[LogEntry, ...] = ()
    #: What a log entry must record (the signed bytes, the signature, the PK token).
    expected: ExpectedSignature | None = None
    #: The in-toto statement an attestation makes (``None`` for a plain signature).
    statement: Statement | None = None


def foreign_signature_note(
    annotations: Mapping[str, str], *, kind: str = "signature"
) -> str | None:
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
    if kind != "signature":
        what = "an attestation made with a key or a certificate"
    check = "cosign verify" if kind == "signature" else "cosign verify-attestation"
    return (
        f"not an opkey {kind} ({what}, no {OPKEY_PKTOKEN} annotation): ignored; "
        f"check it with {check} if it matters"
    )


class Evidence(Protocol):
    """A signature over some subject digest, as it was found."""

    @property
    def label(self) -> str:
        """Where the signature came from, for reports (``app.tar.gz.opkey.json``, ``layer 2``)."""
        ...

    def claim(self, subject: Digest) -> Bundle | ClaimedSignature:
        """What this evidence claims as a signature of ``subject``, parsed but not checked.

        Raises when it is malformed, about another subject, or no opkey signature at all
        (:class:`~opkey.errors.ForeignSignatureError`). A bundle's subject is checked with its
        signature, by :meth:`~opkey.verification.verifier.Verifier.open_bundle`.
        """
        ...


@dataclass(frozen=True)
class BundleEvidence:
    """A bundle: a PK token and one OSM over the artifact statement of a digest."""

    bundle: Bundle
    label: str = "bundle"

    def claim(self, subject: Digest) -> Bundle:
        """See :class:`Evidence`."""
        return self.bundle


@dataclass(frozen=True)
class CosignLayerEvidence:
    """One signature layer of a cosign signature manifest: its payload and its annotations."""

    payload: bytes
    annotations: Mapping[str, str]
    label: str = "layer"

    def claim(self, subject: Digest) -> ClaimedSignature:
        """See :class:`Evidence`. The payload must name ``subject``; the PK token, the OSM
        (its payload is the layer's) and cosign's signature come from the annotations."""
        annotations = self.annotations
        note = foreign_signature_note(annotations)
        if note is not None:
            raise ForeignSignatureError(note, found=sorted(annotations))
        missing = [name for name in (OPKEY_PKTOKEN, OPKEY_OSM) if name not in annotations]
        if missing:
            raise FormatError(f"incomplete opkey signature: no {missing[0]} annotation")
        payload = parse_simple_signing_payload(self.payload)
        if payload.manifest_digest != subject:
            raise SignatureError(
                f"the signature is for {payload.manifest_digest}, not {subject}",
                expected=str(subject),
                found=str(payload.manifest_digest),
            )
        pktoken = PKToken.from_compact(annotations[OPKEY_PKTOKEN])
        parts = annotations[OPKEY_OSM].split(".")
        if len(parts) != 3 or parts[1] or not parts[0] or not parts[2]:
            raise FormatError(f"{OPKEY_OSM} must be a detached JWS 'header..signature'")
        osm = f"{parts[0]}.{b64url_encode(self.payload)}.{parts[2]}"
        cosign = annotations.get(COSIGN_SIGNATURE)
        if cosign is None:
            raise FormatError(f"missing {COSIGN_SIGNATURE} annotation")
        try:
            raw = base64.b64decode(cosign, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"{COSIGN_SIGNATURE} is not base64") from None
        entries = _annotated_entries(annotations)
        expected = None
        if entries:
            from opkey.tlog.signature_entry import ExpectedSignature

            expected = ExpectedSignature(self.payload, raw, pktoken)
        return ClaimedSignature(
            pktoken,
            osm,
            self.payload,
            raw,
            timestamps=self._timestamps(),
            log_entries=entries,
            expected=expected,
        )

    def _timestamps(self) -> tuple[bytes, ...]:
        """The DER token in cosign's RFC 3161 annotation (none without it); the verifier
        parses it strictly unless it verified the same bytes before."""
        value = self.annotations.get(COSIGN_TIMESTAMP_ANNOTATION)
        if value is None:
            return ()
        from opkey.timestamp import cosign_annotation_der

        return (cosign_annotation_der(value),)


def _annotated_entries(annotations: Mapping[str, str]) -> tuple[LogEntry, ...]:
    """The log entry in opkey's ``dev.opkey/tlog`` layer annotation (none without it)."""
    value = annotations.get(OPKEY_TLOG)
    if value is None:
        return ()
    from opkey.jose import parse_json_object
    from opkey.tlog.rekor import entry_from_transparency_log_entry

    try:
        return (
            entry_from_transparency_log_entry(
                parse_json_object(value, what=f"{OPKEY_TLOG} annotation")
            ),
        )
    except FormatError as exc:
        raise FormatError(f"{OPKEY_TLOG} annotation: {exc.message}") from None


@dataclass(frozen=True)
class AttestationEvidence:
    """An attestation about the subject: a DSSE envelope and what binds it to a PK token.

    Made from a layer (:meth:`from_layer`: the envelope blob and the layer's annotations) or
    from an attestation bundle (:meth:`from_bundle`); parsing happens in :meth:`verify`, so a
    malformed one is a rejected outcome, not an error of the whole verdict.
    """

    label: str = "attestation"
    envelope: bytes | None = field(default=None, repr=False)
    annotations: Mapping[str, str] | None = None
    attestation: SignedAttestation | None = None

    @classmethod
    def from_layer(
        cls, payload: bytes, annotations: Mapping[str, str], *, label: str = "attestation layer"
    ) -> AttestationEvidence:
        """An ``.att`` layer or a referrer's layer: the envelope and its annotations."""
        return cls(label=label, envelope=payload, annotations=annotations)

    @classmethod
    def from_bundle(
        cls, attestation: SignedAttestation, *, label: str = "attestation bundle"
    ) -> AttestationEvidence:
        """An attestation bundle, already parsed."""
        return cls(label=label, attestation=attestation)

    def _read(self) -> tuple[SignedAttestation, str | None]:
        if self.attestation is not None:
            return self.attestation, None
        annotations = self.annotations or {}
        note = foreign_signature_note(annotations, kind="attestation")
        if note is not None:
            raise ForeignSignatureError(note, found=sorted(annotations))
        missing = [name for name in (OPKEY_PKTOKEN, OPKEY_OSM) if name not in annotations]
        if missing:
            raise FormatError(f"incomplete opkey attestation: no {missing[0]} annotation")
        split_detached(annotations[OPKEY_OSM], what=OPKEY_OSM)
        assert self.envelope is not None
        stamps: tuple[bytes, ...] = ()
        if OPKEY_TIMESTAMP_ANNOTATION in annotations:
            from opkey.timestamp import cosign_annotation_der

            stamps = (cosign_annotation_der(annotations[OPKEY_TIMESTAMP_ANNOTATION]),)
        attestation = SignedAttestation(
            Envelope.from_json(self.envelope),
            PKToken.from_compact(annotations[OPKEY_PKTOKEN]),
            annotations[OPKEY_OSM],
            stamps,
            envelope_json=self.envelope,
            tlog_entries=_annotated_entries(annotations),
        )
        return attestation, annotations.get(PREDICATE_TYPE_ANNOTATION)

    def claim(self, subject: Digest) -> ClaimedSignature:
        """See :class:`Evidence`. The envelope must hold an in-toto statement about
        ``subject`` (of the predicate type a layer names); the OSM is over its PAE, and so is
        the envelope's signature."""
        attestation, annotated = self._read()
        envelope = attestation.envelope
        if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            raise FormatError(
                f"the envelope's payloadType is {envelope.payload_type[:100]!r}, not an in-toto "
                "statement",
                expected=INTOTO_PAYLOAD_TYPE,
                found=envelope.payload_type,
            )
        statement = Statement.from_json(envelope.payload)
        if annotated is not None and annotated != statement.predicate_type:
            raise FormatError(
                f"the layer says predicate type {annotated[:200]!r}, the signed statement "
                f"{statement.predicate_type!r}",
                expected=statement.predicate_type,
                found=annotated,
            )
        if not statement.names(subject):
            named = ", ".join(
                f"sha256:{s.digest.get('sha256', '?')}" for s in statement.subjects[:3]
            )
            raise SignatureError(
                f"the attestation is about {named}, not {subject}",
                expected=str(subject),
                found=named,
            )
        pktoken = attestation.pktoken
        expected = None
        if attestation.tlog_entries:
            from opkey.tlog.signature_entry import ExpectedSignature

            expected = ExpectedSignature(
                envelope.pae, attestation.signature, pktoken, payload=envelope.payload
            )
        return ClaimedSignature(
            pktoken,
            attestation.attached_osm,
            envelope.pae,
            attestation.signature,
            what="envelope's signature",
            timestamps=tuple(attestation.timestamps),
            log_entries=tuple(attestation.tlog_entries),
            expected=expected,
            statement=statement,
        )
