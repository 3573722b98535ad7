"""What opkey logs for a signature, and the check that a log entry is that signature's.

**Writing.** :class:`EntryRequest` is one signature to log, made by an ES256 ephemeral key,
with the PK-token certificate (:mod:`opkey.tlog.certificate`) as its verifier:

* ``hashedrekord``: the SHA-256 of exactly the bytes the key signed, and the DER signature.
  A bundle's OSM signs its JWS signing input (``header.payload``) and carries the signature as
  ``r || s``, so the entry holds ``SHA-256(signing input)`` and the same signature in DER; an
  image layer's cosign signature is already DER over the simple-signing payload.
* ``dsse`` (attestations): the envelope; on Rekor v1 a ``dsse`` v0.0.1 entry (Rekor checks
  the envelope's signature over its PAE), on Rekor v2, which has only hashedrekord, a
  hashedrekord over the PAE, as sigstore's clients do.

:meth:`EntryRequest.rekor_v1` and :meth:`EntryRequest.rekor_v2` are the proposed entries each
API takes (``spec/transparency-log.md`` §8).

**Reading.** :func:`read_entry_body` parses a canonicalized body (hashedrekord v0.0.1 and
v0.0.2, dsse v0.0.1) into a :class:`LoggedSignature`; :func:`check_entry_for` requires it to
be *this* signature: the same signed digest, the same signature, a PK-token certificate whose
key is the PK token's key and whose PK token is byte for byte the one being verified. Any
difference is a :class:`~opkey.errors.TransparencyLogError` that names it.

Pure: bytes in, values or errors out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from opkey.errors import FormatError, TransparencyLogError
from opkey.jose import parse_json_object
from opkey.pktoken import PKToken
from opkey.tlog._encoding import b64std_decode, b64std_encode, hex_decode, json_member, json_object
from opkey.tlog.certificate import MAX_CERTIFICATE_BYTES, PKTokenCertificate, read_certificate
from opkey.tlog.entry import MAX_BODY_LENGTH

__all__ = [
    "EntryKind",
    "EntryRequest",
    "ExpectedSignature",
    "LoggedSignature",
    "check_entry_for",
    "der_signature",
    "dsse_pae",
    "read_entry_body",
]

EntryKind = Literal["hashedrekord", "dsse"]
_KEY_DETAILS = "PKIX_ECDSA_P256_SHA_256"
_MAX_PEM = 2 * MAX_CERTIFICATE_BYTES
_MAX_B64 = 4 * ((_MAX_PEM + 2) // 3)
_MAX_SIGNATURE = 1024


def der_signature(raw: bytes) -> bytes:
    """An ES256 JWS signature (``r || s``, 64 bytes) as the DER ECDSA signature logs take."""
    if len(raw) != 64:
        raise FormatError(f"an ES256 signature is 64 bytes (r || s), found {len(raw)}")
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what an envelope's signature signs."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class EntryRequest:
    """One signature to log: ``signed`` is exactly what the key signed (for DSSE, the PAE),
    ``signature`` the DER signature, ``certificate`` the DER PK-token certificate, and for
    DSSE ``envelope`` the envelope's JSON bytes."""

    kind: EntryKind
    signed: bytes = field(repr=False)
    signature: bytes
    certificate: bytes = field(repr=False)
    envelope: bytes | None = field(default=None, repr=False)
    payload: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("hashedrekord", "dsse"):
            raise ValueError(f"unknown entry kind {self.kind!r}")
        if (self.kind == "dsse") != (self.envelope is not None and self.payload is not None):
            raise ValueError("a dsse entry needs its envelope and payload, and only it has them")

    @classmethod
    def hashedrekord(cls, signed: bytes, signature: bytes, certificate: bytes) -> EntryRequest:
        """The entry of a signature over ``signed``."""
        return cls("hashedrekord", signed, signature, certificate)

    @classmethod
    def dsse(
        cls,
        envelope: bytes,
        payload_type: str,
        payload: bytes,
        signature: bytes,
        certificate: bytes,
    ) -> EntryRequest:
        """The entry of a DSSE ``envelope`` (its JSON bytes) whose one signature is
        ``signature`` over the PAE of ``payload_type`` and ``payload``."""
        return cls(
            "dsse", dsse_pae(payload_type, payload), signature, certificate, envelope, payload
        )

    @property
    def digest(self) -> bytes:
        """SHA-256 of the signed bytes."""
        return hashlib.sha256(self.signed).digest()

    def recorded_digest(self, kind: EntryKind) -> bytes:
        """The digest an entry of ``kind`` records: of the payload for a dsse entry (Rekor
        v1), of the signed bytes for a hashedrekord (the PAE, for an envelope on Rekor v2)."""
        if kind == "dsse":
            assert self.payload is not None
            return hashlib.sha256(self.payload).digest()
        return self.digest

    def rekor_v1(self) -> dict[str, Any]:
        """The proposed entry for Rekor v1 (``POST /api/v1/log/entries``)."""
        pem = b64std_encode(_pem(self.certificate))
        if self.kind == "dsse":
            assert self.envelope is not None
            return {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "proposedContent": {
                        "envelope": self.envelope.decode("utf-8"),
                        "verifiers": [pem],
                    }
                },
            }
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": self.digest.hex()}},
                "signature": {
                    "content": b64std_encode(self.signature),
                    "publicKey": {"content": pem},
                },
            },
        }

    def rekor_v2(self) -> dict[str, Any]:
        """The proposed entry for Rekor v2 (``POST /api/v2/log/entries``): hashedrekord
        v0.0.2 over the signed bytes (the PAE for an envelope)."""
        return {
            "hashedRekordRequestV002": {
                "digest": b64std_encode(self.digest),
                "signature": {
                    "content": b64std_encode(self.signature),
                    "verifier": {
                        "keyDetails": _KEY_DETAILS,
                        "x509Certificate": {"rawBytes": b64std_encode(self.certificate)},
                    },
                },
            }
        }


@dataclass(frozen=True)
class LoggedSignature:
    """A canonicalized entry body, read: which signature it records and with which verifier.

    ``digest`` is the SHA-256 the signature is over (hashedrekord) or of the DSSE payload
    (dsse v0.0.1, which records the payload's and the envelope's hashes); ``certificate`` the
    DER certificate when the verifier is one, ``public_key`` the DER SPKI when it is a bare key.
    """

    kind: EntryKind
    version: str
    digest: bytes
    signature: bytes
    certificate: bytes | None = field(default=None, repr=False)
    public_key: bytes | None = field(default=None, repr=False)
    envelope_hash: bytes | None = None
    #: The certificate as loaded while reading the body (so it is parsed once).
    parsed: x509.Certificate | None = field(default=None, repr=False, compare=False)

    def read_certificate(self, *, parse_pktoken: bool = True) -> PKTokenCertificate | None:
        """The verifier certificate, parsed (:func:`~opkey.tlog.certificate.read_certificate`)."""
        if self.certificate is None:
            return None
        return read_certificate(self.certificate, parsed=self.parsed, parse_pktoken=parse_pktoken)


def _pem_verifier(
    text: object, what: str
) -> tuple[bytes | None, bytes | None, x509.Certificate | None]:
    """``(certificate DER, None, certificate)`` or ``(None, SPKI DER, None)`` from base64 of
    a PEM."""
    pem = b64std_decode(text, what=what, max_length=_MAX_B64)
    if pem.startswith(_PEM_BEGIN):
        der = _pem_der(pem, what)
        try:
            return der, None, x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion) as exc:
            raise FormatError(f"{what}: not a DER X.509 certificate ({exc})") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise FormatError(f"{what}: not a PEM certificate or public key ({exc})") from None
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return None, spki, None


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----\n"
_PEM_END = b"-----END CERTIFICATE-----"


def _pem_der(pem: bytes, what: str) -> bytes:
    """The DER of a one-certificate PEM as Go's ``pem.Encode`` and OpenSSL write it (base64
    lines, no headers). Decoded here: cryptography's PEM reader costs thirty times its DER
    reader on the large certificates that carry PK tokens."""
    lines = pem.rstrip(b"\n").split(b"\n")
    if lines[-1] != _PEM_END or len(lines) < 3:
        raise FormatError(f"{what}: not a PEM certificate")
    body = b"".join(lines[1:-1])
    try:
        return b64std_decode(body.decode("ascii"), what=what, max_length=_MAX_B64)
    except UnicodeDecodeError:
        raise FormatError(f"{what}: not a PEM certificate") from None


def _b64_member(obj: Mapping[str, Any], name: str, what: str, max_length: int) -> bytes:
    """The base64 member ``name`` of the object ``what`` (signatures, keys, certificates: the
    bodies' binary members), named ``<what>.<name>`` in errors."""
    return b64std_decode(json_member(obj, name, what), what=f"{what}.{name}", max_length=max_length)


def _raw_bytes(verifier: Mapping[str, Any], name: str, what: str) -> bytes:
    """The ``rawBytes`` of a hashedrekord v0.0.2 verifier's ``name`` member (certificate or
    public key)."""
    table = json_object(verifier[name], f"{what} {name}")
    return _b64_member(table, "rawBytes", f"{what} {name}", _MAX_B64)


def _hash_hex(obj: object, what: str) -> bytes:
    table = json_object(obj, what)
    if json_member(table, "algorithm", what) != "sha256":
        raise FormatError(f"{what}: only sha256 is read, found {table['algorithm']!r:.40}")
    return hex_decode(json_member(table, "value", what), what=f"{what} value", length=32)


def read_entry_body(body: bytes) -> LoggedSignature:
    """Parse a canonicalized entry body; raises :class:`FormatError` for any other shape."""
    document = parse_json_object(body, what="log entry body", max_length=MAX_BODY_LENGTH)
    kind, version = document.get("kind"), document.get("apiVersion")
    spec = json_object(document.get("spec"), "log entry body spec")
    entry_kind: EntryKind
    if (kind, version) == ("hashedrekord", "0.0.1"):
        what, entry_kind = "hashedrekord v0.0.1", "hashedrekord"
        data = json_object(json_member(spec, "data", what), f"{what} data")
        digest = _hash_hex(json_member(data, "hash", f"{what} data"), f"{what} data.hash")
        signature = json_object(json_member(spec, "signature", what), f"{what} signature")
        key = json_object(
            json_member(signature, "publicKey", f"{what} signature"), f"{what} publicKey"
        )
        certificate, public_key, parsed = _pem_verifier(
            json_member(key, "content", f"{what} publicKey"), f"{what} publicKey.content"
        )
        signed = _b64_member(signature, "content", f"{what} signature", _MAX_SIGNATURE)
        envelope_hash = None
    elif (kind, version) == ("hashedrekord", "0.0.2"):
        what, entry_kind = "hashedrekord v0.0.2", "hashedrekord"
        inner = json_object(json_member(spec, "hashedRekordV002", what), what)
        data = json_object(json_member(inner, "data", what), f"{what} data")
        if json_member(data, "algorithm", f"{what} data") != "SHA2_256":
            raise FormatError(f"{what}: only SHA2_256 is read, found {data['algorithm']!r:.40}")
        digest = b64std_decode(
            json_member(data, "digest", f"{what} data"), what=what, max_length=44
        )
        if len(digest) != 32:
            raise FormatError(f"{what}: a SHA-256 digest is 32 bytes, found {len(digest)}")
        signature = json_object(json_member(inner, "signature", what), f"{what} signature")
        verifier = json_object(
            json_member(signature, "verifier", f"{what} signature"), f"{what} verifier"
        )
        certificate = public_key = None
        if "x509Certificate" in verifier:
            certificate = _raw_bytes(verifier, "x509Certificate", what)
        elif "publicKey" in verifier:
            public_key = _raw_bytes(verifier, "publicKey", what)
        else:
            raise FormatError(f"{what}: the verifier is neither a certificate nor a key")
        signed = _b64_member(signature, "content", f"{what} signature", _MAX_SIGNATURE)
        envelope_hash = parsed = None
    elif (kind, version) == ("dsse", "0.0.1"):
        what, entry_kind = "dsse v0.0.1", "dsse"
        digest = _hash_hex(json_member(spec, "payloadHash", what), f"{what} payloadHash")
        envelope_hash = _hash_hex(json_member(spec, "envelopeHash", what), f"{what} envelopeHash")
        signatures = json_member(spec, "signatures", what)
        if not isinstance(signatures, list) or len(signatures) != 1:
            raise FormatError(f"{what}: opkey reads envelopes with exactly one signature")
        entry = json_object(signatures[0], f"{what} signatures[0]")
        certificate, public_key, parsed = _pem_verifier(
            json_member(entry, "verifier", f"{what} signatures[0]"),
            f"{what} signatures[0].verifier",
        )
        signed = _b64_member(entry, "signature", f"{what} signatures[0]", _MAX_SIGNATURE)
    else:
        raise FormatError(
            f"log entry body: kind {kind!r:.40} version {version!r:.20} is not one opkey reads "
            "(hashedrekord 0.0.1 or 0.0.2, dsse 0.0.1)",
            found=f"{kind} {version}",
        )
    return LoggedSignature(
        entry_kind, str(version), digest, signed, certificate, public_key, envelope_hash, parsed
    )


@dataclass(frozen=True)
class ExpectedSignature:
    """The signature a log entry must record: ``signed`` the exact bytes the key signed
    (for an envelope, the PAE), ``signature`` in DER, by ``pktoken``'s key; for an envelope,
    ``payload`` (its decoded payload), which a dsse v0.0.1 entry records the hash of."""

    signed: bytes = field(repr=False)
    signature: bytes
    pktoken: PKToken = field(repr=False)
    payload: bytes | None = field(default=None, repr=False)


def check_entry_for(body: bytes, expected: ExpectedSignature) -> LoggedSignature:
    """Require the entry ``body`` to record exactly ``expected``; raises
    :class:`TransparencyLogError` naming the first difference (:class:`FormatError` for a
    body opkey cannot read)."""
    logged = read_entry_body(body)
    if logged.kind == "dsse":
        if expected.payload is None:
            raise TransparencyLogError("the log entry records an envelope, not this signature")
        wanted = hashlib.sha256(expected.payload).digest()
        what = "payload"
    else:
        wanted = hashlib.sha256(expected.signed).digest()
        what = "signed bytes"
    if logged.digest != wanted:
        raise TransparencyLogError(
            f"the log entry is for other {what} (another artifact or statement)",
            expected=wanted.hex(),
            found=logged.digest.hex(),
        )
    if logged.signature != expected.signature:
        raise TransparencyLogError("the log entry records another signature")
    certificate = logged.read_certificate(parse_pktoken=False)
    if certificate is None:
        raise TransparencyLogError(
            "the log entry names a bare key, not a PK-token certificate: it proves no identity"
        )
    if not certificate.key_is(expected.pktoken.cic_claims.upk):
        raise TransparencyLogError("the log entry's certificate is for another key")
    if certificate.pktoken_json != expected.pktoken.to_json():
        raise TransparencyLogError(
            "the log entry's certificate carries another PK token (or none)"
            if certificate.pktoken_json is not None
            else "the log entry's certificate carries no PK token"
        )
    return logged
