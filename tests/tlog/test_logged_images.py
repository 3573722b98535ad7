"""Image signatures logged in real Rekor logs, checked by opkey offline and by the real cosign
and rekor-cli.

With a transparency log, ``sign_image`` logs cosign's signature over the simple-signing payload
(a hashedrekord whose verifier is the PK-token certificate) before anything is written, and the
layer carries the entry three ways: ``dev.opkey/tlog`` (the whole entry with its proof, what
opkey verifies), and cosign's own ``dev.sigstore.cosign/certificate`` and
``dev.sigstore.cosign/bundle`` (the SET), which ``cosign verify --key`` checks against the
log's key, with the certificate's validity (the ID token's ``iat`` to ``exp``) checked at the
log's integrated time.
"""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from opkey import (
    CommitmentType,
    ExpiredError,
    Requirement,
    Signer,
    TransparencyLogError,
    sign_image,
    verify_image,
)
from opkey.cosign import (
    COSIGN_BUNDLE_ANNOTATION,
    COSIGN_CERTIFICATE,
    COSIGN_SIGNATURE,
    OPKEY_OSM,
    OPKEY_PKTOKEN,
    OPKEY_TLOG,
    simple_signing_payload,
)
from opkey.policy.claims import UnsafeNoPolicy
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import attach_signature, list_signatures
from opkey.tlog import TrustedLog, entry_from_transparency_log_entry
from opkey.tlog.rekor import cosign_rekor_bundle, transparency_log_entry
from tests.cosign import Cosign, Tripwire, cosign, cosign_for, session_tripwire
from tests.tlog.servers import RekorV1, RekorV2
from tests.tlog.signing import LOG_OP, fresh_signer, log_verifier

pytestmark = [pytest.mark.rekor, pytest.mark.registry]
__all__ = ["cosign", "session_tripwire"]  # fixtures

REQUIREMENT = Requirement.of(UnsafeNoPolicy())


def _layer_annotations(client: RegistryClient, image: ImageReference) -> dict[str, str]:
    (layer,) = list_signatures(client, image)
    return dict(layer.annotations)


def test_a_logged_image_signature_verifies_offline(
    rekor_v1: RekorV1, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    signed = sign_image(registry_client, registry_image, fresh_signer(rekor_v1.url))
    annotations = _layer_annotations(registry_client, signed)
    assert {OPKEY_TLOG, COSIGN_CERTIFICATE, COSIGN_BUNDLE_ANNOTATION} <= set(annotations)
    entry = entry_from_transparency_log_entry(json.loads(annotations[OPKEY_TLOG]))
    assert annotations[COSIGN_BUNDLE_ANNOTATION] == cosign_rekor_bundle(entry)
    verifier = log_verifier([rekor_v1.trusted_log], require_tlog=True, require_signing_time=True)
    result = verify_image(registry_client, signed, verifier, REQUIREMENT)
    (identity,) = result.verdict.identities
    assert identity.signed_at is not None
    assert identity.signed_at.kind == "tlog"
    assert [e.log_index for e in identity.log_entries] == [entry.log_index]


def test_a_rekor_v2_image_signature_verifies(
    rekor_v2: RekorV2, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    signed = sign_image(registry_client, registry_image, fresh_signer(rekor_v2.url))
    annotations = _layer_annotations(registry_client, signed)
    assert OPKEY_TLOG in annotations
    assert COSIGN_BUNDLE_ANNOTATION not in annotations  # no SET on Rekor v2
    verifier = log_verifier([rekor_v2.trusted_log], require_tlog=True)
    result = verify_image(registry_client, signed, verifier, REQUIREMENT)
    assert result.verdict.identities[0].log_entries


def test_a_layer_whose_entry_names_another_pk_token_is_rejected(
    rekor_v1: RekorV1, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    """cosign's signature does not bind a PK token; the entry's certificate does. The same key
    with a second genuine PK token and the first token's entry is refused."""
    signer = fresh_signer(rekor_v1.url)
    digest = registry_image.require_digest()
    payload = simple_signing_payload(registry_image.cosign_name, digest)
    signature = signer.signing_key.sign_der(payload)
    entry = signer.log_signature("hashedrekord", payload, signature)
    now = int(datetime.now(timezone.utc).timestamp())
    second, _ = LOG_OP.pktoken(
        CommitmentType.GQ_BOUND,
        signing_key=signer.signing_key,
        iat=now - 10,
        nbf=now - 15,
        exp=now + 200,
    )
    other = Signer(second, signer.signing_key)
    header, _, osm = other.sign(payload).split(".")
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(signature).decode(),
        OPKEY_PKTOKEN: second.to_compact(),
        OPKEY_OSM: f"{header}..{osm}",
        OPKEY_TLOG: json.dumps(transparency_log_entry(entry)),
    }
    attach_signature(registry_client, registry_image, payload, annotations)
    verifier = log_verifier([rekor_v1.trusted_log])
    with pytest.raises(TransparencyLogError, match="another PK token"):
        verify_image(registry_client, registry_image, verifier, REQUIREMENT)


# -- the real cosign and rekor-cli ---------------------------------------------------------------


def _trusted_root(log: TrustedLog, url: str, path: Path) -> Path:
    """A Sigstore trusted root whose one transparency log is ``log``."""
    spki = log.key.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    start = datetime.now(timezone.utc) - timedelta(days=1)
    document = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(spki).decode(),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ")},
                },
                "logId": {"keyId": base64.b64encode(log.log_id).decode()},
            }
        ],
    }
    path.write_text(json.dumps(document))
    return path


def _cosign_verify(
    cosign: Cosign, rekor: RekorV1, public: Path, image: str
) -> subprocess.CompletedProcess[str]:
    root = _trusted_root(rekor.trusted_log, rekor.url, cosign.home / "trusted_root_tlog.json")
    args = ["verify", "--key", str(public), "--trusted-root", str(root), "--offline=true"]
    if cosign.major >= 3:
        args += ["--new-bundle-format=false"]
    return cosign.run(*args, image)


def _public_key(signer: Signer, directory: Path) -> Path:
    path = directory / "ephemeral.pub"
    path.write_bytes(signer.pktoken.cic_claims.upk.to_pem())
    return path


def test_cosign_checks_the_entry_opkey_logged(
    cosign: Cosign,
    rekor_v1: RekorV1,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
) -> None:
    signer = fresh_signer(rekor_v1.url)
    signed = sign_image(registry_client, registry_image, signer)
    result = _cosign_verify(cosign, rekor_v1, _public_key(signer, tmp_path), str(signed))
    assert result.returncode == 0, result.stderr[-3000:]
    # Under another log's key, cosign rejects the same layer.
    impostor = ec.generate_private_key(ec.SECP256R1()).public_key()
    other = TrustedLog.rekor_v1(rekor_v1.hostname, rekor_v1.tree_id, impostor)
    root = _trusted_root(other, rekor_v1.url, cosign.home / "other_root.json")
    args = ["verify", "--key", str(_public_key(signer, tmp_path)), "--trusted-root", str(root)]
    args += ["--offline=true"]
    if cosign.major >= 3:
        args += ["--new-bundle-format=false"]
    wrong = cosign.run(*args, str(signed))
    assert wrong.returncode != 0


def test_rekor_cli_verifies_the_entry_opkey_logged(
    rekor_v1: RekorV1, registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    signed = sign_image(registry_client, registry_image, fresh_signer(rekor_v1.url))
    entry = entry_from_transparency_log_entry(
        json.loads(_layer_annotations(registry_client, signed)[OPKEY_TLOG])
    )
    uuid = f"{rekor_v1.tree_id:016x}{entry.leaf_hash.hex()}"
    result = subprocess.run(
        [str(rekor_v1.cli), "verify", f"--rekor_server={rekor_v1.url}", f"--uuid={uuid}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert str(entry.log_index) in result.stdout


def test_cosign_v2_takes_the_log_key_from_its_environment(
    session_tripwire: Tripwire,
    rekor_v1: RekorV1,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
) -> None:
    """SIGSTORE_REKOR_PUBLIC_KEY is cosign v2's way to name the log key (v3 reads a trusted
    root, above)."""
    before = session_tripwire.connections
    cosign = cosign_for("cosign-v2", tmp_path / "cosign-v2", session_tripwire)
    signer = fresh_signer(rekor_v1.url)
    signed = sign_image(registry_client, registry_image, signer)
    key = tmp_path / "rekor.pub"
    key.write_bytes(rekor_v1.public_key_pem)
    args = ["verify", "--key", str(_public_key(signer, tmp_path)), "--offline=true", str(signed)]
    result = subprocess.run(
        [str(cosign.binary), *args],
        capture_output=True,
        text=True,
        env=cosign.environment({"SIGSTORE_REKOR_PUBLIC_KEY": str(key)}),
        cwd=cosign.home,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert session_tripwire.connections == before, "cosign tried to reach the network"


def test_a_log_time_after_exp_is_rejected_by_cosign_and_opkey(
    cosign: Cosign,
    rekor_v1: RekorV1,
    registry_client: RegistryClient,
    registry_image: ImageReference,
    tmp_path: Path,
) -> None:
    """The SET re-signed by the log over a time after the token's exp (Trillian's stored time
    moved): cosign's certificate check at the integrated time and opkey's time rule agree."""
    from tests.tlog.test_logged_bundles import _moved_entry

    signer = fresh_signer(rekor_v1.url)
    digest = registry_image.require_digest()
    payload = simple_signing_payload(registry_image.cosign_name, digest)
    signature = signer.signing_key.sign_der(payload)
    late = _moved_entry(rekor_v1, signer.log_signature("hashedrekord", payload, signature), 3600)
    header, _, osm = signer.sign(payload).split(".")
    certificate = x509.load_der_x509_certificate(signer.certificate())
    annotations = {
        COSIGN_SIGNATURE: base64.b64encode(signature).decode(),
        OPKEY_PKTOKEN: signer.pktoken.to_compact(),
        OPKEY_OSM: f"{header}..{osm}",
        OPKEY_TLOG: json.dumps(transparency_log_entry(late)),
        COSIGN_CERTIFICATE: certificate.public_bytes(serialization.Encoding.PEM).decode(),
        COSIGN_BUNDLE_ANNOTATION: cosign_rekor_bundle(late),
    }
    attach_signature(registry_client, registry_image, payload, annotations)
    result = _cosign_verify(cosign, rekor_v1, _public_key(signer, tmp_path), str(registry_image))
    assert result.returncode != 0
    assert "expir" in result.stderr.lower(), result.stderr[-2000:]
    verifier = log_verifier([rekor_v1.trusted_log])
    with pytest.raises(ExpiredError, match="signed after the ID token expired"):
        verify_image(registry_client, registry_image, verifier, REQUIREMENT)
