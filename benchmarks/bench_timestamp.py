"""Timestamp verification against the signature verification it protects.

A verifier that requires signing time proven by an RFC 3161 authority verifies one timestamp
token per signature on top of the signature itself. This section measures that token, from its
DER bytes to the :class:`~opkey.timestamp.VerifiedTimestamp` (``TimestampToken.from_der`` and
``verify_timestamp`` against one configured authority: root → intermediate → TSA certificate,
P-256 keys), next to

* one ES256 verify (the signature a timestamp stamps);
* opkey's verification of one GQ256 bundle from its JSON (cold and cached, as the core section
  measures them; taken from its figures when it ran first in the same process run);
* its floor: the cryptography a token verification cannot skip, timed with pyca/cryptography on
  the same token: the TSA's ECDSA signature over the signed attributes, the two certificate
  signatures of the chain, and the SHA-256 of the stamped signature and of the TSTInfo.

Then whole signatures with and without a timestamp, each verified by the same
:class:`~opkey.verification.Verifier` path (GQ256 PK tokens, ES256 keys, one trusted
authority): a bundle from its JSON, and an image signature layer (cosign's annotation), cold
(a fresh verifier: the PK token and the timestamp are verified) and cached (a warm verifier:
both come from its caches, the token is still parsed and the time rule applied). The ratio
stamped/plain is what requiring a proven signing time costs.

Tokens come from ``openssl ts -reply`` (Debian package ``openssl``) with a chain made here;
without openssl the figures are reported as skipped. Run alone with
``python -m benchmarks.bench_timestamp`` or through ``benchmarks/run.py --only timestamp``.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_core, fixtures
from benchmarks.harness import Figure, best_time
from opkey.bundle import Bundle
from opkey.cosign import COSIGN_SIGNATURE
from opkey.digest import Digest
from opkey.jwks.sources import PinnedKeys
from opkey.registry.signatures import SignatureLayer
from opkey.signer import Signer
from opkey.timestamp import (
    COSIGN_TIMESTAMP_ANNOTATION,
    TimestampAuthority,
    TimestampRequest,
    TimestampToken,
    verify_timestamp,
)
from opkey.verification.evidence import CosignLayerEvidence
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier

__all__ = ["run"]

_ECDSA = ec.ECDSA(hashes.SHA256())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    issuer: x509.Certificate | None,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return builder.sign(issuer_key, hashes.SHA256())


class _Chain:
    """Root → intermediate → TSA certificate, and the TSA's key on disk for openssl."""

    def __init__(self, directory: Path) -> None:
        self.root_key, self.middle_key, self.leaf_key = (
            ec.generate_private_key(ec.SECP256R1()) for _ in range(3)
        )
        self.root = _certificate("bench TSA root", None, self.root_key, self.root_key, ca=True)
        self.middle = _certificate(
            "bench TSA intermediate", self.root, self.middle_key, self.root_key, ca=True
        )
        self.leaf = _certificate("bench TSA", self.middle, self.leaf_key, self.middle_key, ca=False)
        self.leaf_path = directory / "tsa.pem"
        self.key_path = directory / "tsa.key"
        self.leaf_path.write_bytes(self.leaf.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(
            self.leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def pem(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.root, self.middle, self.leaf)
        )


def _openssl_token(openssl: str, directory: Path, chain: _Chain, signature: bytes) -> bytes:
    config = directory / "tsa.cnf"
    if not (directory / "serial").exists():
        (directory / "serial").write_text("01\n")
    config.write_text(
        "[ tsa ]\ndefault_tsa = bench\n[ bench ]\n"
        f"serial = {directory / 'serial'}\ncrypto_device = builtin\n"
        f"signer_cert = {chain.leaf_path}\nsigner_key = {chain.key_path}\n"
        "signer_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\n"
        "other_policies = 1.3.6.1.4.1.99999.2\ndigests = sha256\naccuracy = secs:1\n"
        "ordering = no\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n"
    )
    query, reply = directory / "q.tsq", directory / "r.tsr"
    query.write_bytes(TimestampRequest.for_signature(signature).der)
    argv = [openssl, "ts", "-reply", "-config", str(config), "-queryfile", str(query)]
    subprocess.run(
        [*argv, "-out", str(reply)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return reply.read_bytes()


def _floor(token: TimestampToken, chain: _Chain, signature: bytes) -> float:
    """Seconds for the cryptography a token verification cannot skip (see the module doc)."""
    from rfc3161_client import decode_timestamp_response

    response = decode_timestamp_response(token.der)
    tst_info = response.tst_info
    # The TSA's signature covers the DER of the signed attributes; sign the same amount of data
    # with the TSA key to time a verify of it (the attributes are not exposed by the parser).
    signed_attributes = hashlib.sha256(response.time_stamp_token()).digest() * 4
    tsa_signature = chain.leaf_key.sign(signed_attributes, _ECDSA)
    tsa_public = chain.leaf_key.public_key()
    leaf, middle, root = chain.leaf, chain.middle, chain.root
    tst_der = response.time_stamp_token()
    message = tst_info.message_imprint.message

    def floor() -> None:
        assert hashlib.sha256(signature).digest() == message
        hashlib.sha256(tst_der).digest()
        tsa_public.verify(tsa_signature, signed_attributes, _ECDSA)
        leaf.verify_directly_issued_by(middle)
        middle.verify_directly_issued_by(root)

    return best_time(floor, number=300)


def _es256_verify() -> tuple[float, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"x" * 900
    der = key.sign(data, _ECDSA)
    public = key.public_key()
    return best_time(lambda: public.verify(der, data, _ECDSA), number=300), der


_POOL = 20


def _fresh_signers() -> tuple[fixtures.Provider, list[Signer]]:
    """GQ256 signers whose ID tokens are valid now (the tokens are stamped now)."""
    provider = fixtures.Provider.create()
    now = int(datetime.now(timezone.utc).timestamp())

    def mint(claims: dict[str, object]) -> str:
        return provider.mint({**claims, "iat": now - 30, "nbf": now - 35, "exp": now + 270})

    signers = [
        fixtures.make_signer(provider.jwk, mint, use_gq=True, identity=i)  # type: ignore[arg-type]
        for i in range(_POOL)
    ]
    return provider, signers


def _whole_signatures(
    openssl: str, directory: Path, chain: _Chain, authority: TimestampAuthority
) -> list[Figure]:
    """Bundles and image layers with and without a timestamp through the same verifier."""
    provider, signers = _fresh_signers()
    config = fixtures.issuer_config(use_gq=True)
    keys = PinnedKeys({fixtures.ISSUER: provider.keys})

    def verifier(stamped: bool) -> Verifier:
        trusted = [TrustedIssuer(config, [keys])]
        return Verifier(Trust(trusted, [authority] if stamped else (), stamped))

    bundles = [s.sign_digest(fixtures.DIGEST) for s in signers]
    plain_docs = [b.to_json() for b in bundles]
    stamped_docs = [
        b.with_timestamps(
            [_openssl_token(openssl, directory, chain, b.signature_jws.signature)]
        ).to_json()
        for b in bundles
    ]
    plain_layers = [fixtures.image_layer(s) for s in signers]
    stamped_layers = []
    for layer in plain_layers:
        raw = base64.b64decode(layer.annotations[COSIGN_SIGNATURE])
        token = TimestampToken.from_der(_openssl_token(openssl, directory, chain, raw))
        annotations = {
            **layer.annotations,
            COSIGN_TIMESTAMP_ANNOTATION: token.to_cosign_annotation(),
        }
        stamped_layers.append(
            SignatureLayer(layer.payload, replace(layer.descriptor, annotations=annotations))
        )
    policy = fixtures.policy()
    image_digest = Digest(fixtures.IMAGE_DIGEST)

    def bundle_check(v: Verifier, stamped: bool) -> Callable[[bytes], object]:
        def check(document: bytes) -> object:
            identity = v.verify_bundle(Bundle.from_json(document), fixtures.DIGEST, policy=policy)
            assert (identity.signed_at is not None) == stamped
            return identity

        return check

    def layer_check(v: Verifier, stamped: bool) -> Callable[[SignatureLayer], object]:
        def check(layer: SignatureLayer) -> object:
            evidence = CosignLayerEvidence(layer.payload, layer.annotations)
            identity = v.check(evidence, image_digest)
            policy.check(identity.claims)
            assert (identity.signed_at is not None) == stamped
            return identity

        return check

    return [
        *_compare("bundle", plain_docs, stamped_docs, verifier, bundle_check),
        *_compare("image", plain_layers, stamped_layers, verifier, layer_check),
    ]


T = TypeVar("T")


def _compare(
    kind: str,
    plain_items: Sequence[T],
    stamped_items: Sequence[T],
    verifier: Callable[[bool], Verifier],
    make_check: Callable[[Verifier, bool], Callable[[T], object]],
) -> list[Figure]:
    """Per-signature times with and without a timestamp, cold and cached, as ratios."""
    times: dict[tuple[bool, bool], float] = {}
    for stamped, items in ((False, plain_items), (True, stamped_items)):
        check = make_check(verifier(stamped), stamped)
        for item in items:  # every item verifies (and warms the caches) before any timing
            check(item)

        def cold(stamped: bool = stamped) -> Callable[[T], object]:
            bench_core._clear_parse_caches()
            return make_check(verifier(stamped), stamped)

        times[(stamped, False)] = bench_core._per_item(items, cold)

        def warm(check: Callable[[T], object] = check) -> Callable[[T], object]:
            return check

        times[(stamped, True)] = bench_core._per_item(items, warm)
    figures = []
    for cached in (False, True):
        state = "cached" if cached else "cold"
        plain, stamped_time = times[(False, cached)], times[(True, cached)]
        figures.append(
            Figure(
                f"{kind}_timestamped_{state}_vs_plain",
                round(stamped_time / plain, 3),
                "ratio",
                sides={
                    f"{kind}_timestamped_{state}_us": round(stamped_time * 1e6, 1),
                    f"{kind}_plain_{state}_us": round(plain * 1e6, 1),
                    "op": "GQ256 OP, ES256 key, one trusted TSA",
                },
            )
        )
    return figures


def run(context: dict[str, float] | None = None) -> list[Figure]:
    """The timestamp figures (reuses the core section's bundle times when present)."""
    context = context if context is not None else {}
    openssl = shutil.which("openssl")
    if openssl is None:
        return [
            Figure(
                "timestamp_verify_us",
                0,
                "skipped",
                sides={"note": "openssl is not installed (apt-get install openssl)"},
            )
        ]
    es256, signature = _es256_verify()
    with tempfile.TemporaryDirectory(prefix="opkey-bench-tsa-") as tmp:
        directory = Path(tmp)
        chain = _Chain(directory)
        der = _openssl_token(openssl, directory, chain, signature)
        authority = TimestampAuthority.from_pem(chain.pem())
        whole = _whole_signatures(openssl, directory, chain, authority)
    token = TimestampToken.from_der(der)
    stamp = verify_timestamp(token, signature, [authority])
    assert stamp.certificate == chain.leaf

    verify = best_time(
        lambda: verify_timestamp(TimestampToken.from_der(der), signature, [authority]),
        number=200,
    )
    parse = best_time(lambda: TimestampToken.from_der(der), number=300)
    floor = _floor(token, chain, signature)

    if "bundle_gq256_cold" not in context:
        times = bench_core._pipeline(
            fixtures.Provider.create(), use_gq=True, image=False, pool=50, figures=[]
        )
        context["bundle_gq256_cold"] = times.cold
        context["bundle_gq256_cached"] = times.cached
    bundle_cold, bundle_cached = context["bundle_gq256_cold"], context["bundle_gq256_cached"]

    def versus(name: str, other: float, label: str) -> Figure:
        return Figure(
            name,
            round(verify / other, 3),
            "ratio",
            sides={
                "timestamp_verify_us": round(verify * 1e6, 1),
                f"{label}_us": round(other * 1e6, 1),
            },
        )

    return [
        Figure(
            "timestamp_verify_us",
            round(verify * 1e6, 1),
            "us",
            sides={
                "token_bytes": len(der),
                "parse_us": round(parse * 1e6, 1),
                "chain": "root -> intermediate -> TSA, P-256",
            },
        ),
        versus("timestamp_verify_vs_primitives", floor, "floor"),
        versus("timestamp_verify_vs_es256_verify", es256, "es256_verify"),
        versus("timestamp_verify_vs_bundle_gq256_cold", bundle_cold, "bundle_gq256_cold"),
        versus("timestamp_verify_vs_bundle_gq256_cached", bundle_cached, "bundle_gq256_cached"),
        *whole,
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
    sys.exit(0)
