"""The PK-token certificate: how a log entry carries the PK token that vouches for its key.

Rekor checks a signature against a public key or an X.509 certificate and nothing more: it
verifies no chain and reads no validity. opkey logs each signature with a certificate
**self-signed by the ephemeral key** whose SubjectKeyIdentifier holds the whole PK token
(OpenPubkey's layout, from its signed-attestation experiment), so anyone reading the log can
verify the PK token against the provider's keys and tell a genuine use of an identity from an
entry that only claims it. ``spec/transparency-log.md`` §8 has the layout byte for byte:

* version 3; serial ``int(SHA-256(PK token JSON)[:16]) | 1``; subject and issuer
  ``CN=opkey PK token``;
* validity from the ID token's ``iat`` to its ``exp``, so cosign's own check of a certificate
  against the log's integrated time is the "signed while the ID token was valid" rule;
* the ephemeral key as SubjectPublicKeyInfo;
* extensions, in order: basic constraints (critical, not a CA), key usage (critical,
  digitalSignature), extended key usage codeSigning, subject key identifier = the PK token's
  JSON serialization (:meth:`~opkey.pktoken.PKToken.to_json`, byte for byte), subject
  alternative name DNS ``sub`` (as OpenPubkey writes it), and ``1.3.6.1.4.1.57264.1.1``
  (Fulcio's issuer extension) = the raw bytes of ``iss``;
* signed ECDSA-SHA256 with deterministic nonces (RFC 6979), so one PK token and key always
  give the same certificate, and re-uploading a signature is a duplicate the log recognises.

Only **GQ256** PK tokens are published: with the provider's own RS256 signature, a PK token is
a bearer ID token that anyone reading the log could replay until it expires. Only ES256
ephemeral keys: Rekor's hashedrekord verifies a signature over a SHA-256 digest, which an
Ed25519 key cannot make, and opkey's logs speak ECDSA P-256.

Pure: no clock (the validity comes from the token), no network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from opkey.errors import ConfigError, FormatError
from opkey.keys import PublicJWK, SigningKey
from opkey.pktoken import PKToken

__all__ = [
    "CERTIFICATE_NAME",
    "FULCIO_ISSUER_V1",
    "MAX_CERTIFICATE_BYTES",
    "PKTokenCertificate",
    "check_publishable",
    "pktoken_certificate",
    "read_certificate",
]

#: The subject and issuer common name of every PK-token certificate.
CERTIFICATE_NAME = "opkey PK token"
#: Fulcio's (deprecated, raw-bytes) OIDC issuer extension, which OpenPubkey also writes.
FULCIO_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
#: Largest certificate read from a log entry (a PK token is a few KiB).
MAX_CERTIFICATE_BYTES = 64 * 1024
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTIFICATE_NAME)])


def check_publishable(pktoken: PKToken, signing_key: SigningKey | None = None) -> None:
    """Raise :class:`ConfigError` unless ``pktoken`` (and its key) may go into a public log."""
    if pktoken.op.alg != "GQ256":
        raise ConfigError(
            f"only GQ256 PK tokens may be published in a transparency log: this one carries "
            f"the provider's {pktoken.op.alg} signature, so it is the ID token itself, "
            "replayable by anyone who reads the log until it expires (CI providers, GitHub "
            "Actions and GitLab CI, give GQ256 PK tokens)",
            expected="GQ256",
            found=pktoken.op.alg,
        )
    alg = pktoken.cic_claims.alg if signing_key is None else signing_key.alg
    if alg != "ES256":
        raise ConfigError(
            f"a transparency log entry needs an ES256 ephemeral key, not {alg} (Rekor's "
            "hashedrekord verifies an ECDSA P-256 signature over a SHA-256 digest)",
            expected="ES256",
            found=alg,
        )


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _serial(pktoken_json: bytes) -> int:
    return int.from_bytes(hashlib.sha256(pktoken_json).digest()[:16], "big") | 1


def pktoken_certificate(pktoken: PKToken, signing_key: SigningKey) -> bytes:
    """The DER PK-token certificate for ``pktoken``, self-signed by ``signing_key``.

    Raises :class:`ConfigError` for a PK token that must not be published
    (:func:`check_publishable`) or a key that is not the PK token's.
    """
    check_publishable(pktoken, signing_key)
    if signing_key.public_jwk.members != pktoken.cic_claims.upk.members:
        raise ConfigError("the signing key is not the PK token's committed key")
    private = signing_key.private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)  # ES256, checked above
    claims = pktoken.claims
    pktoken_json = pktoken.to_json()
    try:
        san = x509.SubjectAlternativeName([x509.DNSName(claims["sub"])])
    except ValueError:
        raise ConfigError(
            f"the ID token's sub {claims['sub']!r:.80} cannot be written as a certificate "
            "name (ASCII only)"
        ) from None
    builder = (
        x509.CertificateBuilder()
        .serial_number(_serial(pktoken_json))
        .subject_name(_NAME)
        .issuer_name(_NAME)
        .not_valid_before(_utc(claims["iat"]))
        .not_valid_after(_utc(claims["exp"]))
        .public_key(private.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier(pktoken_json), critical=False)
        .add_extension(san, critical=False)
        .add_extension(
            x509.UnrecognizedExtension(FULCIO_ISSUER_V1, claims["iss"].encode("utf-8")),
            critical=False,
        )
    )
    certificate = builder.sign(private, hashes.SHA256(), ecdsa_deterministic=True)
    return certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class PKTokenCertificate:
    """A certificate read from a log entry: its key, and what it says about an identity.

    ``pktoken`` is the PK token its SubjectKeyIdentifier carries (parsed, *not verified*), or
    ``None`` when it carries none; ``pktoken_json`` the identifier's raw bytes then.
    ``claimed_issuer`` and ``claimed_names`` are what the certificate asserts without proof
    (the issuer extension, the SAN values): a monitor uses them to find entries that claim an
    identity they cannot prove.
    """

    der: bytes = field(repr=False)
    public_key_der: bytes = field(repr=False)
    pktoken: PKToken | None
    pktoken_json: bytes | None = field(repr=False)
    claimed_issuer: str | None
    claimed_names: tuple[str, ...]
    certificate: x509.Certificate = field(repr=False, compare=False)

    def key_is(self, jwk: PublicJWK) -> bool:
        """Whether the certified key is ``jwk``'s."""
        return self.public_key_der == _spki(jwk)

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey | None:
        """The certified key when it is ECDSA P-256 (what opkey's entries carry)."""
        key = self.certificate.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        return None


def _spki(jwk: PublicJWK) -> bytes:
    return jwk.key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def read_certificate(
    der: bytes,
    *,
    what: str = "log entry certificate",
    parsed: x509.Certificate | None = None,
    parse_pktoken: bool = True,
) -> PKTokenCertificate:
    """Parse a certificate from a log entry strictly (DER, bounded); the PK token it carries
    is parsed (unless ``parse_pktoken`` is false: a verifier compares its bytes) but not
    verified. ``parsed`` is the same certificate already loaded. Raises :class:`FormatError`."""
    if not der:
        raise FormatError(f"{what}: expected DER bytes")
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise FormatError(f"{what}: {len(der)} bytes is more than {MAX_CERTIFICATE_BYTES}")
    try:
        certificate = parsed or x509.load_der_x509_certificate(der)
        public_key_der = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        raise FormatError(f"{what}: not a DER X.509 certificate ({exc})") from None
    try:
        extensions = certificate.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise FormatError(f"{what}: unreadable extensions ({exc})") from None
    pktoken_json = pktoken = None
    try:
        ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = None
    if ski is not None and ski.digest.startswith(b"{"):
        pktoken_json = ski.digest
        if parse_pktoken:
            try:
                pktoken = PKToken.from_json(pktoken_json)
            except FormatError:
                pktoken = None
    issuer = None
    try:
        raw = extensions.get_extension_for_oid(FULCIO_ISSUER_V1).value
    except x509.ExtensionNotFound:
        raw = None
    if isinstance(raw, x509.UnrecognizedExtension):
        try:
            issuer = raw.value.decode("utf-8")
        except UnicodeDecodeError:
            issuer = None
    names: list[str] = []
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for general in san:
            value = general.value
            if isinstance(value, str):
                names.append(value)
    return PKTokenCertificate(
        der=der,
        public_key_der=public_key_der,
        pktoken=pktoken,
        pktoken_json=pktoken_json,
        claimed_issuer=issuer,
        claimed_names=tuple(names),
        certificate=certificate,
    )
