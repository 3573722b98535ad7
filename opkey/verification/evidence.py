"""Evidence: the signatures a verdict is decided over, whatever carries them.

Every kind of signature opkey reads is an :class:`Evidence`: it knows how to check itself
against the subject digest with a :class:`~opkey.verification.Verifier` and says who made it,
or raises the :class:`~opkey.errors.OpkeyError` that explains why not. Deciding *who must*
have signed is not its job; that is the requirement's, in the verdict.

* :class:`BundleEvidence`: a bundle document (``spec/bundle.md``) for a file or a digest;
* :class:`CosignLayerEvidence`: one layer of an image's cosign signature manifest
  (``spec/registry.md``): the simple-signing payload naming the image digest, with the PK
  token, the detached OSM and cosign's own signature in the layer annotations. A layer that
  carries no opkey signature (cosign's own key-signed layers, for instance) raises
  :class:`~opkey.errors.ForeignSignatureError`: the verdict reports it as ignored.

Both read the RFC 3161 timestamps they carry (the bundle's ``timestamps`` member; cosign's
``dev.sigstore.cosign/rfc3161timestamp`` layer annotation, over the raw bytes of cosign's
signature) and the transparency log entries (the bundle's ``tlogEntries``; the layer's
``dev.opkey/tlog``, the entry of cosign's signature) and hand them to the verifier, which
proves the signing time and the log entries from them
(:meth:`~opkey.verification.verifier.Verifier.prove`) and applies the time rule.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

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
from opkey.errors import ForeignSignatureError, FormatError, SignatureError
from opkey.jose import b64url_encode
from opkey.keys import verify_cosign_signature
from opkey.pktoken import PKToken

if TYPE_CHECKING:
    from opkey.timestamp import TimestampToken
    from opkey.tlog.entry import LogEntry
    from opkey.tlog.signature_entry import ExpectedSignature
    from opkey.verification.identity import VerifiedIdentity, VerifiedMessage
    from opkey.verification.signing_time import SignatureProof, SigningTime

__all__ = [
    "BundleEvidence",
    "CosignLayerEvidence",
    "Evidence",
    "SignatureChecker",
    "foreign_signature_note",
]


class SignatureChecker(Protocol):
    """What evidence needs of a verifier (:class:`opkey.verification.verifier.Verifier`)."""

    def open_message(
        self,
        pktoken: PKToken,
        signature: str,
        *,
        at: datetime | None = None,
        signed_at: SigningTime | None = None,
    ) -> VerifiedMessage:
        """Verify an OSM made with ``pktoken``'s key under the trust; who signed and what,
        with the time rule for ``signed_at`` (a time :meth:`signing_time` proved)."""
        ...

    def signing_time(
        self, signature: bytes, tokens: Sequence[TimestampToken | bytes]
    ) -> SigningTime | None:
        """The signing time the RFC 3161 ``tokens`` prove for the raw ``signature`` bytes."""
        ...

    def prove(
        self,
        signature: bytes,
        tokens: Sequence[TimestampToken | bytes],
        entries: Sequence[LogEntry] = (),
        expected: ExpectedSignature | None = None,
    ) -> SignatureProof:
        """What the RFC 3161 ``tokens`` and the log ``entries`` prove for a signature."""
        ...

    def open_bundle(
        self, bundle: Bundle, digest: Digest, *, at: datetime | None = None
    ) -> VerifiedIdentity:
        """Verify that ``bundle`` is a genuine signature of exactly ``digest``; who made it."""
        ...


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


class Evidence(Protocol):
    """A signature over some subject digest, as it was found."""

    @property
    def label(self) -> str:
        """Where the signature came from, for reports (``app.tar.gz.opkey.json``, ``layer 2``)."""
        ...

    def verify(
        self, verifier: SignatureChecker, subject: Digest, *, at: datetime | None
    ) -> VerifiedIdentity:
        """Who made this genuine signature of exactly ``subject``; raises otherwise."""
        ...


@dataclass(frozen=True)
class BundleEvidence:
    """A bundle: a PK token and one OSM over the artifact statement of a digest."""

    bundle: Bundle
    label: str = "bundle"

    def verify(
        self, verifier: SignatureChecker, subject: Digest, *, at: datetime | None
    ) -> VerifiedIdentity:
        """See :class:`Evidence`."""
        return verifier.open_bundle(self.bundle, subject, at=at)


@dataclass(frozen=True)
class CosignLayerEvidence:
    """One signature layer of a cosign signature manifest: its payload and its annotations."""

    payload: bytes
    annotations: Mapping[str, str]
    label: str = "layer"

    def verify(
        self, verifier: SignatureChecker, subject: Digest, *, at: datetime | None
    ) -> VerifiedIdentity:
        """See :class:`Evidence`. Checks the payload names ``subject``, the OSM against the PK
        token, the PK token under the trust, and cosign's signature under the same key."""
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
        entries = self._entries()
        expected = None
        if entries:
            from opkey.tlog.signature_entry import ExpectedSignature

            expected = ExpectedSignature(self.payload, raw, pktoken)
        proof = verifier.prove(raw, self._timestamps(), entries, expected)
        message = verifier.open_message(pktoken, osm, at=at, signed_at=proof.signed_at)
        verify_cosign_signature(pktoken.cic_claims.upk, self.payload, raw)
        if proof.log_entries:
            return dataclasses.replace(message.identity, log_entries=proof.log_entries)
        return message.identity

    def _entries(self) -> tuple[LogEntry, ...]:
        """The log entry in opkey's ``dev.opkey/tlog`` annotation (none without it)."""
        value = self.annotations.get(OPKEY_TLOG)
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

    def _timestamps(self) -> tuple[bytes, ...]:
        """The DER token in cosign's RFC 3161 annotation (none without it); the verifier
        parses it strictly unless it verified the same bytes before."""
        value = self.annotations.get(COSIGN_TIMESTAMP_ANNOTATION)
        if value is None:
            return ()
        from opkey.timestamp import cosign_annotation_der

        return (cosign_annotation_der(value),)
