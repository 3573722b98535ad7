"""The registry client against the real distribution registry (and, for the tests marked
``both_registries``, go-containerregistry's too)."""

from __future__ import annotations

import json

import pytest

from opkey.digest import Digest
from opkey.errors import RegistryError
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import Descriptor, ImageManifest
from opkey.registry.mediatypes import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST
from opkey.registry.reference import ImageReference
from opkey.sandbox.registry import seed_image
from tests.registries import RunningRegistry

pytestmark = pytest.mark.registry


@pytest.mark.both_registries
def test_ping(registry_client: RegistryClient, registry_image: ImageReference) -> None:
    registry_client.ping(registry_image)


@pytest.mark.both_registries
def test_tag_resolves_to_the_sha256_of_the_manifest_bytes(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    tagged = registry_image.with_tag("v1")
    manifest = registry_client.get_manifest(tagged)
    assert manifest.digest == Digest.of_bytes(manifest.raw)
    assert manifest.media_type == OCI_MANIFEST
    resolved = registry_client.resolve(tagged)
    assert resolved.digest == registry_image.digest == manifest.digest
    by_digest = registry_client.get_manifest(resolved)
    assert by_digest.raw == manifest.raw


@pytest.mark.both_registries
def test_missing_tag_and_repository(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    assert registry_client.find_manifest(registry_image.with_tag("nope")) is None
    unknown = ImageReference(registry_image.registry, "no/such/repo", tag="v1")
    assert registry_client.find_manifest(unknown) is None
    assert registry_client.list_tags(unknown) == []
    with pytest.raises(RegistryError, match="not found"):
        registry_client.resolve(unknown)


@pytest.mark.both_registries
def test_blobs_round_trip(registry_client: RegistryClient, registry_image: ImageReference) -> None:
    data = b"some bytes " * 100
    digest = Digest.of_bytes(data)
    assert not registry_client.blob_exists(registry_image, digest)
    assert registry_client.push_blob(registry_image, data) == digest
    assert registry_client.blob_exists(registry_image, digest)
    assert registry_client.get_blob(registry_image, digest) == data
    with pytest.raises(RegistryError, match="limit"):
        registry_client.get_blob(registry_image, digest, max_bytes=10)


def test_tags_and_delete(registry_client: RegistryClient, registry_image: ImageReference) -> None:
    manifest = registry_client.get_manifest(registry_image)
    for tag in ("b", "a", "v2"):
        registry_client.put_manifest(registry_image.with_tag(tag), manifest.raw, OCI_MANIFEST)
    assert sorted(registry_client.list_tags(registry_image)) == ["a", "b", "v1", "v2"]
    other = seed_image(registry_client, registry_image.with_tag("other"))
    registry_client.delete_manifest(other)
    assert registry_client.find_manifest(other) is None
    assert "other" not in registry_client.list_tags(registry_image)


def test_manifest_referencing_a_missing_blob_is_refused_clearly(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    registry_client.push_blob(registry_image, config)
    manifest = ImageManifest.build(
        OCI_MANIFEST,
        Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)),
        [Descriptor(OCI_LAYER, Digest.of_bytes(b"never uploaded"), 14)],
    )
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN"):
        registry_client.put_manifest(
            registry_image.with_tag("broken"), manifest.encode(), OCI_MANIFEST
        )


@pytest.mark.both_registries
def test_registry_fixture_is_loopback_only(registry_server: RunningRegistry) -> None:
    assert registry_server.host.startswith("127.0.0.1:")
    assert registry_server.running
