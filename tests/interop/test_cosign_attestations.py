"""Third parties read opkey's attestations: the real cosign (v2.6.5, v3.1.3) verifies the
``.att`` layers with the ephemeral key, and oras (v1.3.6) lists opkey's referrers.

``cosign verify-attestation --key <ephemeral PEM> --insecure-ignore-tlog=true --type T``
checks the DSSE signature over the PAE with the key, the payload type, and the statement's
predicate type; it must accept opkey's provenance and scan attestations, refuse a type the
image has no attestation of, refuse another key, and refuse a tampered envelope. ``oras
discover`` must list opkey's referrers with their artifact types, on go-containerregistry's
registry (the referrers API) and on distribution 2.8 (the referrers tag schema, which oras
falls back to as the spec says).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opkey.cli import main
from opkey.digest import Digest
from opkey.images import attest_image, sign_image
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.provenance import provenance_for
from opkey.providers import GitHubActionsProvider
from opkey.registry.attestations import attestation_tag
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import seed_image
from opkey.signer import Signer
from tests.cosign import Cosign, Tripwire, cosign, session_tripwire
from tests.registries import RunningRegistry, each_registry, ggcr_registry_server
from tests.toolchain import go_tool

__all__ = ["cosign", "each_registry", "ggcr_registry_server", "session_tripwire"]

pytestmark = pytest.mark.registry

VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"


def _signer(idp: DevIdP, alg: str = "ES256") -> Signer:
    provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
    return Signer.from_provider(provider, alg=alg)


def _verify_attestation(
    cosign: Cosign, key: Path, image: str, predicate_type: str
) -> subprocess.CompletedProcess[str]:
    args = cosign.verify_key_args(key, image)
    args[0] = "verify-attestation"
    return cosign.run(*args[:-1], "--type", predicate_type, image)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_cosign_verifies_opkeys_att_attestations(
    cosign: Cosign,
    alg: str,
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = seed_image(
        registry_client,
        ImageReference.parse(
            f"{registry_server.host}/interop/att-{alg.lower()}-{cosign.module}:v1"
        ),
    )
    signer = _signer(dev_idp, alg)
    provenance = provenance_for(signer.pktoken.claims, server_url=None)
    attest_image(registry_client, image, signer, "slsaprovenance1", provenance)
    attest_image(registry_client, image, signer, "vuln", {"scanner": {"result": "PASSED"}})
    # The ephemeral key, exported as a user would: opkey inspect IMAGE --attestation N.
    key = tmp_path / "ephemeral.pem"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    assert main(["inspect", str(image), "--attestation", "1", "--public-key", str(key)]) == 0
    assert key.read_bytes() == signer.pktoken.cic_claims.upk.to_pem()

    for short, uri in (("slsaprovenance1", "https://slsa.dev/provenance/v1"), ("vuln", VULN)):
        result = _verify_attestation(cosign, key, str(image), short)
        assert result.returncode == 0, result.stderr
        assert "verified against the specified public key" in result.stderr
        envelopes = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        statements = [json.loads(base64.b64decode(e["payload"])) for e in envelopes]
        assert uri in {s["predicateType"] for s in statements}
        assert all(
            s["subject"][0]["digest"]["sha256"] == image.require_digest().hex for s in statements
        )
    by_uri = _verify_attestation(cosign, key, str(image.with_tag("v1")), VULN)
    assert by_uri.returncode == 0, by_uri.stderr

    missing = _verify_attestation(cosign, key, str(image), "spdxjson")
    assert missing.returncode != 0
    assert "none of the attestations matched the predicate type" in missing.stderr

    other = tmp_path / "other.pem"
    other.write_bytes(generate_signing_key(alg).public_jwk.to_pem())
    refused = _verify_attestation(cosign, other, str(image), "vuln")
    assert refused.returncode != 0


def test_cosign_rejects_a_tampered_opkey_attestation(
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
    session_tripwire: Tripwire,
) -> None:
    from tests.cosign import cosign_for

    cosign = cosign_for("cosign-v2", tmp_path / "home", session_tripwire)
    image = seed_image(
        registry_client, ImageReference.parse(f"{registry_server.host}/interop/att-tamper:v1")
    )
    signer = _signer(dev_idp)
    attest_image(registry_client, image, signer, "vuln", {"scanner": {"result": "FAILED"}})
    key = tmp_path / "ephemeral.pem"
    key.write_bytes(signer.pktoken.cic_claims.upk.to_pem())
    assert _verify_attestation(cosign, key, str(image), "vuln").returncode == 0
    # Rewrite the statement inside the envelope (FAILED -> PASSED), keeping the signature.
    att = image.with_tag(attestation_tag(image.require_digest()))
    manifest: dict[str, Any] = json.loads(registry_client.get_manifest(att).raw)
    layer = manifest["layers"][0]
    envelope = json.loads(registry_client.get_blob(image, Digest(layer["digest"])))
    statement = base64.b64decode(envelope["payload"]).replace(b"FAILED", b"PASSED")
    envelope["payload"] = base64.b64encode(statement).decode()
    forged = json.dumps(envelope).encode()
    registry_client.push_blob(image, forged)
    layer.update(digest=str(Digest.of_bytes(forged)), size=len(forged))
    registry_client.put_manifest(att, json.dumps(manifest).encode(), manifest["mediaType"])
    result = _verify_attestation(cosign, key, str(image), "vuln")
    assert result.returncode != 0, result.stdout


def test_oras_discover_lists_opkeys_referrers(
    each_registry: RunningRegistry,
    registry_client: RegistryClient,
    dev_idp: DevIdP,
    tmp_path: Path,
) -> None:
    oras = go_tool("oras")
    image = seed_image(
        registry_client, ImageReference.parse(f"{each_registry.host}/interop/oras-discover:v1")
    )
    signer = _signer(dev_idp)
    attest_image(
        registry_client,
        image,
        signer,
        "vuln",
        {"scanner": {"result": "PASSED"}},
        storage="referrers",
    )
    sign_image(registry_client, image, signer, storage="referrers")
    result = subprocess.run(
        [str(oras), "discover", "--plain-http", "--format", "json", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "DOCKER_CONFIG": str(tmp_path / "docker"),
        },
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["digest"] == str(image.require_digest())
    found = {
        (r["artifactType"], r.get("annotations", {}).get("in-toto.io/predicate-type"))
        for r in listed["referrers"]
    }
    assert found == {
        ("application/vnd.in-toto+json", VULN),
        ("application/vnd.dev.cosign.artifact.sig.v1+json", None),
    }
