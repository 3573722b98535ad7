"""Third-party registry clients read opkey's signature tags as cosign's.

crane (go-containerregistry v0.22.1) lists the ``.sig`` tag and the journal tags, and returns
byte for byte the manifest, config and payload blob that opkey wrote; cosign's own discovery
(``triangulate``, ``tree``) names opkey's tag and its layers. On both registry
implementations.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from opkey.cosign import simple_signing_payload
from opkey.images import sign_image
from opkey.jwks.client import JwksClient
from opkey.providers import GitHubActionsProvider
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import ImageManifest
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import cosign_config, journal_tag, signature_tag
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import seed_image
from opkey.signer import Signer
from tests.cosign import Cosign, cosign, session_tripwire
from tests.registries import RunningRegistry, each_registry, ggcr_registry_server
from tests.toolchain import go_tool

__all__ = ["cosign", "each_registry", "ggcr_registry_server", "session_tripwire"]

pytestmark = pytest.mark.registry


def _signed_image(
    registry: RunningRegistry, client: RegistryClient, idp: DevIdP, name: str, signers: int
) -> ImageReference:
    image = seed_image(client, ImageReference.parse(f"{registry.host}/clients/{name}:v1"))
    for _ in range(signers):
        provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
        sign_image(client, image, Signer.from_provider(provider))
    return image


def _crane(home: Path, *args: str) -> bytes:
    """``crane ARGS``'s standard output; loopback registries are spoken to over plain http."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    env["DOCKER_CONFIG"] = str(home / "docker")
    result = subprocess.run(
        [str(go_tool("crane")), *args], capture_output=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, f"crane {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout


def test_crane_reads_what_opkey_wrote(
    each_registry: RunningRegistry,
    registry_client: RegistryClient,
    dev_idp: DevIdP,
    tmp_path: Path,
) -> None:
    image = _signed_image(each_registry, registry_client, dev_idp, "crane", signers=2)
    digest = image.require_digest()
    sig = image.with_tag(signature_tag(digest))
    written = registry_client.get_manifest(sig)
    manifest = ImageManifest.from_manifest(written)

    tags = _crane(tmp_path, "ls", image.name).decode().split()
    assert signature_tag(digest) in tags
    assert sorted(t for t in tags if ".sig.journal-" in t) == sorted(
        journal_tag(digest, layer) for layer in manifest.layers
    )

    raw = _crane(tmp_path, "manifest", str(sig))
    assert raw == written.raw
    assert _crane(tmp_path, "digest", str(sig)).decode().strip() == (
        "sha256:" + hashlib.sha256(written.raw).hexdigest()
    )
    crane_view = json.loads(raw)
    assert [layer["annotations"] for layer in crane_view["layers"]] == [
        dict(layer.annotations) for layer in manifest.layers
    ]

    config = _crane(tmp_path, "config", str(sig))
    assert config == cosign_config(manifest.layers)
    assert json.loads(config)["rootfs"]["diff_ids"] == [
        str(layer.digest) for layer in manifest.layers
    ]

    (payload_digest,) = {layer.digest for layer in manifest.layers}  # one payload, two signers
    blob = _crane(tmp_path, "blob", f"{image.name}@{payload_digest}")
    assert blob == simple_signing_payload(image.cosign_name, digest)


def test_cosign_discovery_names_opkey_tag_and_layers(
    cosign: Cosign,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    dev_idp: DevIdP,
) -> None:
    image = _signed_image(registry_server, registry_client, dev_idp, f"tree-{cosign.module}", 2)
    sig = image.with_tag(signature_tag(image.require_digest()))
    triangulated = cosign.check(["triangulate", str(image)])
    assert triangulated.stdout.strip() == str(sig)
    tree = cosign.check(["tree", str(image)])
    assert f"Signatures for an image tag: {sig}" in tree.stdout
    manifest = ImageManifest.from_manifest(registry_client.get_manifest(sig))
    last_words = [line.split()[-1] for line in tree.stdout.splitlines() if line.strip()]
    listed = [word for word in last_words if word.startswith("sha256:")]
    assert listed == [str(layer.digest) for layer in manifest.layers]
