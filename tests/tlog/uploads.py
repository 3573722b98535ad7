"""hashedrekord entries as the tests upload them: an ECDSA P-256 key (or a self-signed
certificate for it) and a signature over some bytes, made with pyca/cryptography.

Rekor v1 takes ``hashedrekord`` v0.0.1 (``/api/v1/log/entries``): the key or certificate as
base64 of its PEM, the SHA-256 in hex, the DER signature in base64. Rekor v2 takes
``hashedRekordRequestV002`` (``/api/v2/log/entries``): the SHA-256 in base64, the key as DER
SubjectPublicKeyInfo or the certificate as DER, and ``keyDetails`` naming the algorithm.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.tlog.servers import b64

__all__ = ["SignedArtifact", "sign_artifact"]


@dataclass(frozen=True)
class SignedArtifact:
    """Bytes, their SHA-256, an ECDSA P-256 signature over them and the signer's key."""

    artifact: bytes
    key: ec.EllipticCurvePrivateKey
    signature: bytes
    certificate: x509.Certificate

    @property
    def digest(self) -> bytes:
        """SHA-256 of the artifact."""
        return hashlib.sha256(self.artifact).digest()

    @property
    def public_key_pem(self) -> bytes:
        """The signer's public key, PEM."""
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_key_der(self) -> bytes:
        """The signer's public key, DER SubjectPublicKeyInfo."""
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def v1_request(self, *, certificate: bool = False) -> dict[str, Any]:
        """A Rekor v1 hashedrekord v0.0.1 proposed entry."""
        verifier = (
            self.certificate.public_bytes(serialization.Encoding.PEM)
            if certificate
            else self.public_key_pem
        )
        return {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": self.digest.hex()}},
                "signature": {
                    "content": b64(self.signature),
                    "publicKey": {"content": b64(verifier)},
                },
            },
        }

    def v2_request(self, *, certificate: bool = False) -> dict[str, Any]:
        """A Rekor v2 hashedRekordRequestV002."""
        verifier: dict[str, Any] = {"keyDetails": "PKIX_ECDSA_P256_SHA_256"}
        if certificate:
            der = self.certificate.public_bytes(serialization.Encoding.DER)
            verifier["x509Certificate"] = {"rawBytes": b64(der)}
        else:
            verifier["publicKey"] = {"rawBytes": b64(self.public_key_der)}
        return {
            "hashedRekordRequestV002": {
                "digest": b64(self.digest),
                "signature": {"content": b64(self.signature), "verifier": verifier},
            }
        }


def sign_artifact(
    artifact: bytes | None = None, *, san: str = "https://github.com/opkey-test/repo"
) -> SignedArtifact:
    """A fresh P-256 key, a signature over ``artifact`` (random by default) and a self-signed
    certificate for the key with ``san`` as its URI SAN, valid for an hour."""
    data = artifact if artifact is not None else os.urandom(64)
    key = ec.generate_private_key(ec.SECP256R1())
    signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opkey test signer")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return SignedArtifact(data, key, signature, certificate)
