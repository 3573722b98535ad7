"""The real cosign (v2.6.5 and v3.1.3) verifies opkey's image signatures with the ephemeral key.

Images are signed by opkey with a PK token from the dev IdP, in a real registry; the ephemeral
public key is exported with the documented command (``opkey inspect IMAGE --public-key FILE``),
and ``cosign verify --key FILE --insecure-ignore-tlog=true IMAGE`` must accept the signature,
for each key type opkey signs images with: ES256, Ed25519 and RS256. cosign must reject the
same signature under another key, with a tampered payload, with a tampered signature
annotation, and copied onto another image.

Ed25519: cosign *signs* with Ed25519ph by default (``GetDefaultLoadOptions`` in
``pkg/cosign/keys.go``), but ``verify --key`` loads the public key with
``signature.LoadVerifier(key, hash)``, which for an Ed25519 key is a pure Ed25519 verifier
(Ed25519ph only with the ``WithED25519ph`` load option, which ``verify`` never passes). opkey's
EdDSA signatures are pure Ed25519 (RFC 8032, as JOSE's EdDSA is), so they verify; the test
below proves it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opkey.cli import main
from opkey.cosign import COSIGN_SIGNATURE, simple_signing_payload
from opkey.digest import Digest
from opkey.images import sign_image
from opkey.jwks.client import JwksClient
from opkey.keys import generate_signing_key
from opkey.providers import GitHubActionsProvider
from opkey.registry.client import RegistryClient
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import signature_tag
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.registry import seed_image
from opkey.signer import Signer
from tests.cosign import Cosign, cosign, session_tripwire
from tests.registries import RunningRegistry, each_registry, ggcr_registry_server

__all__ = ["cosign", "each_registry", "ggcr_registry_server", "session_tripwire"]

pytestmark = pytest.mark.registry


def _image(registry: RunningRegistry, client: RegistryClient, name: str) -> ImageReference:
    return seed_image(client, ImageReference.parse(f"{registry.host}/interop/{name}:v1"))


def _signer(idp: DevIdP, alg: str = "ES256") -> Signer:
    provider = GitHubActionsProvider.from_env(idp.env(), jwks=JwksClient([idp.issuer]))
    return Signer.from_provider(provider, alg=alg)


def export_public_key(image: ImageReference, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's first command: ``opkey inspect IMAGE --public-key FILE``."""
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-opkey-test")
    assert main(["inspect", str(image), "--public-key", str(out)]) == 0
    return out


def _payload_json(result: Any) -> list[dict[str, Any]]:
    """cosign verify prints one JSON array of the verified payloads on stdout."""
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_cosign_verifies_opkey_signature_with_the_ephemeral_key(
    cosign: Cosign,
    alg: str,
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = _image(registry_server, registry_client, f"verify-{alg.lower()}-{cosign.module}")
    signer = _signer(dev_idp, alg)
    sign_image(registry_client, image, signer)
    public_key = export_public_key(image, tmp_path / "ephemeral.pem", monkeypatch)
    assert public_key.read_bytes() == signer.pktoken.cic_claims.upk.to_pem()

    result = cosign.verify(public_key, str(image))
    assert result.returncode == 0, result.stderr
    (payload,) = _payload_json(result)
    assert payload["critical"]["image"]["docker-manifest-digest"] == str(image.digest)
    assert payload["critical"]["identity"]["docker-reference"] == image.cosign_name
    assert "verified against the specified public key" in result.stderr
    # By tag too: cosign resolves it to the digest opkey signed.
    by_tag = cosign.verify(public_key, str(image.with_tag("v1")))
    assert by_tag.returncode == 0, by_tag.stderr


def test_cosign_v3_finds_the_sig_tag_on_a_registry_with_referrers(
    each_registry: RunningRegistry,
    registry_client: RegistryClient,
    dev_idp: DevIdP,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    session_tripwire: Any,
) -> None:
    """v3 asks for OCI 1.1 referrers first: distribution answers 404, ggcr an empty index;
    either way it falls back to opkey's ``.sig`` tag, with no flag."""
    from tests.cosign import cosign_for

    v3 = cosign_for("cosign-v3", tmp_path / "home", session_tripwire)
    image = _image(each_registry, registry_client, "referrers-fallback")
    signer = _signer(dev_idp)
    sign_image(registry_client, image, signer)
    public_key = export_public_key(image, tmp_path / "key.pem", monkeypatch)
    default = v3.verify(public_key, str(image))
    assert default.returncode == 0, default.stderr
    legacy = v3.run(
        *v3.verify_key_args(public_key, str(image))[:-1], "--new-bundle-format=false", str(image)
    )
    assert legacy.returncode == 0, legacy.stderr


def _rewrite_sig(
    client: RegistryClient, image: ImageReference, mutate: Callable[[dict[str, Any]], None]
) -> None:
    """Change the ``.sig`` manifest in place, as an attacker with push access could."""
    sig = image.with_tag(signature_tag(image.require_digest()))
    document = json.loads(client.get_manifest(sig).raw)
    mutate(document)
    client.put_manifest(sig, json.dumps(document).encode(), document["mediaType"])


def _tamper_payload(client: RegistryClient, image: ImageReference) -> None:
    forged = simple_signing_payload("evil.example/other", image.require_digest())
    client.push_blob(image, forged)

    def mutate(document: dict[str, Any]) -> None:
        document["layers"][0]["digest"] = str(Digest.of_bytes(forged))
        document["layers"][0]["size"] = len(forged)

    _rewrite_sig(client, image, mutate)


def _tamper_signature(client: RegistryClient, image: ImageReference) -> None:
    def mutate(document: dict[str, Any]) -> None:
        annotations = document["layers"][0]["annotations"]
        raw = bytearray(base64.b64decode(annotations[COSIGN_SIGNATURE]))
        raw[-1] ^= 0x01
        annotations[COSIGN_SIGNATURE] = base64.b64encode(bytes(raw)).decode()

    _rewrite_sig(client, image, mutate)


@pytest.mark.parametrize(
    "tamper", [_tamper_payload, _tamper_signature], ids=["payload", "signature-annotation"]
)
def test_cosign_rejects_a_tampered_opkey_signature(
    cosign: Cosign,
    tamper: Callable[[RegistryClient, ImageReference], None],
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = _image(registry_server, registry_client, f"tamper-{cosign.module}")
    sign_image(registry_client, image, _signer(dev_idp))
    public_key = export_public_key(image, tmp_path / "key.pem", monkeypatch)
    assert cosign.verify(public_key, str(image)).returncode == 0
    tamper(registry_client, image)
    result = cosign.verify(public_key, str(image))
    assert result.returncode != 0
    assert "no matching signatures" in result.stderr, result.stderr


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_cosign_rejects_another_key(
    cosign: Cosign,
    alg: str,
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
) -> None:
    image = _image(registry_server, registry_client, f"wrong-key-{alg.lower()}-{cosign.module}")
    sign_image(registry_client, image, _signer(dev_idp, alg))
    other = tmp_path / "other.pem"
    other.write_bytes(generate_signing_key(alg).public_jwk.to_pem())
    result = cosign.verify(other, str(image))
    assert result.returncode != 0
    assert "no matching signatures" in result.stderr, result.stderr


def test_cosign_rejects_a_signature_copied_to_another_image(
    cosign: Cosign,
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = _image(registry_server, registry_client, f"copied-{cosign.module}")
    sign_image(registry_client, image, _signer(dev_idp))
    public_key = export_public_key(image, tmp_path / "key.pem", monkeypatch)
    other = seed_image(registry_client, image.with_tag("other"), content=b"another image")
    manifest = registry_client.get_manifest(image.with_tag(signature_tag(image.require_digest())))
    registry_client.put_manifest(
        other.with_tag(signature_tag(other.require_digest())), manifest.raw, manifest.media_type
    )
    result = cosign.verify(public_key, str(other))
    assert result.returncode != 0
    assert "no matching signatures" in result.stderr, result.stderr


def test_tripwire_catches_cosign_v2_reaching_out(
    dev_idp: DevIdP,
    registry_server: RunningRegistry,
    registry_client: RegistryClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the empty trusted root, cosign v2 asks Sigstore's TUF repository for one even
    with --key: the tripwire sees it, so a network request in the tests above would too."""
    from tests.cosign import cosign_for, tripwire

    image = _image(registry_server, registry_client, "tripwire")
    sign_image(registry_client, image, _signer(dev_idp))
    public_key = export_public_key(image, tmp_path / "key.pem", monkeypatch)
    with tripwire() as wire:
        v2 = cosign_for("cosign-v2", tmp_path / "home", wire)
        result = v2.run(
            "verify", "--key", str(public_key), "--insecure-ignore-tlog=true", str(image)
        )
        assert result.returncode == 0, result.stderr  # it warns and carries on
        assert wire.connections > 0
        assert "TUF" in result.stderr
