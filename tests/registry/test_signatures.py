"""Cosign-compatible signature storage on the real registry: layout, round trip, concurrency
without lost signatures, refusing garbage, and the journal that repairs overwrites."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from opkey.cosign import parse_simple_signing_payload, simple_signing_payload
from opkey.digest import Digest
from opkey.errors import ConfigError, OpkeyError, RegistryError
from opkey.keys import generate_signing_key
from opkey.registry.client import RegistryClient
from opkey.registry.manifest import Descriptor, ImageManifest, Manifest
from opkey.registry.mediatypes import (
    COSIGN_SIMPLESIGNING,
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import (
    COSIGN_SIGNATURE_ANNOTATION,
    AttachResult,
    attach_signature,
    cosign_config,
    journal_tag,
    layer_identity,
    list_signatures,
    repair_signatures,
    signature_tag,
)
from opkey.sandbox.registry import seed_image

pytestmark = pytest.mark.registry


def payload_for(image: ImageReference) -> bytes:
    return simple_signing_payload(image.cosign_name, image.require_digest())


def signer_annotations(n: int) -> dict[str, str]:
    return {COSIGN_SIGNATURE_ANNOTATION: f"signature-{n}", "dev.opkey/signer": f"signer-{n}"}


def sig_ref(image: ImageReference) -> ImageReference:
    return image.with_tag(signature_tag(image.require_digest()))


@pytest.mark.both_registries
def test_attach_and_list_round_trip_in_cosign_layout(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    key = generate_signing_key("ES256")
    payload = payload_for(registry_image)
    import base64

    signature = base64.b64encode(key.sign_der(payload)).decode()
    extra = {COSIGN_SIGNATURE_ANNOTATION: signature, "dev.opkey/pktoken": "eyJ..."}
    result = attach_signature(registry_client, registry_image, payload, extra)
    assert result.writes == 1
    assert result.signature_ref.tag == "sha256-" + registry_image.require_digest().hex + ".sig"

    [stored] = list_signatures(registry_client, registry_image)
    assert stored.payload == payload
    assert dict(stored.annotations) == extra
    assert stored.digest == Digest.of_bytes(payload)
    parsed = parse_simple_signing_payload(stored.payload)
    assert parsed.manifest_digest == registry_image.require_digest()

    # What cosign would read: an OCI manifest, the cosign config, one simplesigning layer.
    manifest = registry_client.get_manifest(sig_ref(registry_image))
    assert manifest.digest == result.manifest_digest
    image = ImageManifest.from_manifest(manifest)
    assert image.media_type == OCI_MANIFEST
    assert image.config.media_type == OCI_CONFIG
    [layer] = image.layers
    assert layer.media_type == COSIGN_SIMPLESIGNING
    assert layer.size == len(payload)
    config = registry_client.get_blob(registry_image, image.config.digest)
    assert config == cosign_config([layer])
    assert json.loads(manifest.raw)["layers"][0]["annotations"] == extra


@pytest.mark.both_registries
def test_no_signatures_is_an_empty_list(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    assert list_signatures(registry_client, registry_image) == []


@pytest.mark.both_registries
def test_attach_is_idempotent_and_keeps_order(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    payload = payload_for(registry_image)
    for n in range(3):
        attach_signature(registry_client, registry_image, payload, signer_annotations(n))
    again = attach_signature(registry_client, registry_image, payload, signer_annotations(1))
    assert again.writes == 0
    stored = list_signatures(registry_client, registry_image)
    assert [s.annotations["dev.opkey/signer"] for s in stored] == [
        "signer-0",
        "signer-1",
        "signer-2",
    ]


@pytest.mark.both_registries
def test_attach_needs_a_digest_and_an_existing_image(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    payload = payload_for(registry_image)
    with pytest.raises(ConfigError, match="digest reference"):
        attach_signature(
            registry_client, registry_image.with_tag("v1"), payload, signer_annotations(0)
        )
    missing = registry_image.with_digest(Digest.of_bytes(b"no such manifest"))
    with pytest.raises(RegistryError, match="not found"):
        attach_signature(registry_client, missing, payload, signer_annotations(0))
    with pytest.raises(ConfigError, match="must be a string"):
        attach_signature(registry_client, registry_image, payload, {"k": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="empty"):
        attach_signature(registry_client, registry_image, b"", signer_annotations(0))


def _identities(client: RegistryClient, image: ImageReference) -> list[str]:
    return [layer_identity(s.descriptor) for s in list_signatures(client, image)]


@pytest.mark.both_registries
def test_16_concurrent_signers_lose_nothing(
    registry_client_factory: Callable[..., RegistryClient], registry_image: ImageReference
) -> None:
    payload = payload_for(registry_image)
    results: list[AttachResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def sign(n: int) -> None:
        client = registry_client_factory()  # separate clients: separate signers
        barrier.wait()
        try:
            results.append(attach_signature(client, registry_image, payload, signer_annotations(n)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = _identities(registry_client_factory(), registry_image)
    assert len(stored) == 16
    assert len(set(stored)) == 16
    assert set(stored) == {layer_identity(r.layer) for r in results}
    # The race really happened: some signer had to write more than once or restore others.
    assert sum(r.writes for r in results) > 16 or any(r.restored for r in results)


@pytest.mark.both_registries
def test_16_signers_in_separate_processes_lose_nothing(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    script = Path(__file__).with_name("signer_process.py")
    start_at = time.time() + 1.5  # all four processes have imported opkey by then
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(registry_image), str(4 * p), "4", str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for p in range(4)
    ]
    reported: set[str] = set()
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode() + out.decode()
        reported.update(json.loads(out)["identities"])
    stored = _identities(registry_client, registry_image)
    assert len(reported) == 16
    assert set(stored) == reported
    assert len(stored) == 16


@pytest.mark.both_registries
def test_journal_repairs_an_overwrite_by_a_non_merging_writer(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    """cosign itself does read-modify-write without merging: simulate it losing a layer."""
    payload = payload_for(registry_image)
    first = attach_signature(registry_client, registry_image, payload, signer_annotations(0))
    attach_signature(registry_client, registry_image, payload, signer_annotations(1))
    # A racing writer that read .sig before signature 1 was added puts back only signature 0.
    config = cosign_config([first.layer])
    registry_client.push_blob(registry_image, config)
    stale = ImageManifest.build(
        OCI_MANIFEST, Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)), [first.layer]
    )
    registry_client.put_manifest(sig_ref(registry_image), stale.encode(), OCI_MANIFEST)
    assert len(list_signatures(registry_client, registry_image)) == 1

    assert repair_signatures(registry_client, registry_image) == 1
    assert len(list_signatures(registry_client, registry_image)) == 2
    assert repair_signatures(registry_client, registry_image) == 0


@pytest.mark.both_registries
def test_signer_that_crashed_after_its_journal_entry_is_merged_by_the_next(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    payload = payload_for(registry_image)
    crashed = Descriptor(
        COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload), signer_annotations(7)
    )
    registry_client.push_blob(registry_image, payload)
    config = cosign_config([crashed])
    registry_client.push_blob(registry_image, config)
    entry = ImageManifest.build(
        OCI_MANIFEST, Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)), [crashed]
    )
    journal = registry_image.with_tag(journal_tag(registry_image.require_digest(), crashed))
    registry_client.put_manifest(journal, entry.encode(), OCI_MANIFEST)
    # ...and then crashed before writing .sig.
    result = attach_signature(registry_client, registry_image, payload, signer_annotations(8))
    assert result.restored == 1
    assert {
        s.annotations["dev.opkey/signer"] for s in list_signatures(registry_client, registry_image)
    } == {
        "signer-7",
        "signer-8",
    }


def test_journal_entry_that_does_not_match_its_name_is_not_merged(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    payload = payload_for(registry_image)
    honest = Descriptor(
        COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload), signer_annotations(1)
    )
    forged = Descriptor(
        COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload), signer_annotations(2)
    )
    registry_client.push_blob(registry_image, payload)
    config = cosign_config([forged])
    registry_client.push_blob(registry_image, config)
    entry = ImageManifest.build(
        OCI_MANIFEST, Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)), [forged]
    )
    name = registry_image.with_tag(journal_tag(registry_image.require_digest(), honest))
    registry_client.put_manifest(name, entry.encode(), OCI_MANIFEST)
    attach_signature(registry_client, registry_image, payload, signer_annotations(3))
    signers = [
        s.annotations["dev.opkey/signer"] for s in list_signatures(registry_client, registry_image)
    ]
    assert signers == ["signer-3"]


def test_existing_docker_media_type_signatures_keep_their_format(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    """COSIGN_DOCKER_MEDIA_TYPES=1 writes .sig in Docker media types; opkey extends it as is."""
    payload = payload_for(registry_image)
    cosign_layer = Descriptor(
        COSIGN_SIMPLESIGNING, Digest.of_bytes(payload), len(payload), signer_annotations(0)
    )
    registry_client.push_blob(registry_image, payload)
    config = cosign_config([cosign_layer])
    registry_client.push_blob(registry_image, config)
    docker = ImageManifest.build(
        DOCKER_MANIFEST,
        Descriptor(DOCKER_CONFIG, Digest.of_bytes(config), len(config)),
        [cosign_layer],
    )
    registry_client.put_manifest(sig_ref(registry_image), docker.encode(), DOCKER_MANIFEST)
    attach_signature(registry_client, registry_image, payload, signer_annotations(1))
    manifest = ImageManifest.from_manifest(registry_client.get_manifest(sig_ref(registry_image)))
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.config.media_type == DOCKER_CONFIG
    assert len(manifest.layers) == 2
    assert manifest.layers[0] == cosign_layer


def _journal_tags(client: RegistryClient, image: ImageReference) -> list[str]:
    return [t for t in client.list_tags(image) if ".sig.journal-" in t]


@pytest.mark.both_registries
def test_sig_tag_on_an_ordinary_image_is_refused_and_kept(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    # Someone tagged a normal image (gzip layer, not simplesigning) as the signature tag.
    other = seed_image(registry_client, registry_image.with_tag("unrelated"))
    raw = registry_client.get_manifest(other).raw
    registry_client.put_manifest(sig_ref(registry_image), raw, OCI_MANIFEST)
    payload = payload_for(registry_image)
    with pytest.raises(RegistryError, match="does not hold a cosign signature manifest") as caught:
        attach_signature(registry_client, registry_image, payload, signer_annotations(0))
    assert "delete it" in str(caught.value)
    assert registry_client.get_manifest(sig_ref(registry_image)).raw == raw  # untouched
    assert _journal_tags(registry_client, registry_image) == []  # nothing written at all
    with pytest.raises(RegistryError, match="layer 0 has media type"):
        list_signatures(registry_client, registry_image)


def test_sig_tag_on_an_index_is_refused_and_kept(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    manifest = registry_client.get_manifest(registry_image)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "size": manifest.size, "digest": str(manifest.digest)}
            ],
        }
    ).encode()
    registry_client.put_manifest(sig_ref(registry_image), index, OCI_INDEX)
    with pytest.raises(RegistryError, match=re.escape(f"its media type is {OCI_INDEX}")):
        attach_signature(
            registry_client, registry_image, payload_for(registry_image), signer_annotations(0)
        )
    assert registry_client.get_manifest(sig_ref(registry_image)).raw == index


def test_sig_tag_holding_non_manifest_content_is_refused_without_writing(
    httpserver: HTTPServer, registry_client_factory: Callable[..., RegistryClient]
) -> None:
    """A real registry will not store non-manifest bytes; a broken or hostile one may serve
    them. The stand-in serves the image, and garbage at the signature tag."""
    image_raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": str(Digest.of_bytes(b"{}"))},
            "layers": [],
        }
    ).encode()
    digest = Digest.of_bytes(image_raw)
    image = ImageReference.parse(f"{httpserver.host}:{httpserver.port}/team/app@{digest}")
    httpserver.expect_request(f"/v2/team/app/manifests/{digest}").respond_with_data(
        image_raw, 200, {"Content-Type": OCI_MANIFEST}
    )
    garbage = b"\x00\x01 definitely not a manifest"
    httpserver.expect_request(f"/v2/team/app/manifests/{signature_tag(digest)}").respond_with_data(
        garbage, 200, {"Content-Type": OCI_MANIFEST}
    )
    client = registry_client_factory()
    with pytest.raises(RegistryError, match="does not hold a cosign signature manifest"):
        attach_signature(client, image, payload_for(image), signer_annotations(0))
    assert {request.method for request, _ in httpserver.log} == {"GET"}
    with pytest.raises(RegistryError, match=r"not valid UTF-8|invalid JSON"):
        list_signatures(client, image)


def test_list_rejects_a_layer_whose_size_lies(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    payload = payload_for(registry_image)
    result = attach_signature(registry_client, registry_image, payload, signer_annotations(0))
    lying = Descriptor(
        COSIGN_SIMPLESIGNING, result.layer.digest, result.layer.size + 5, signer_annotations(0)
    )
    config = cosign_config([lying])
    registry_client.push_blob(registry_image, config)
    manifest = ImageManifest.build(
        OCI_MANIFEST, Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)), [lying]
    )
    registry_client.put_manifest(sig_ref(registry_image), manifest.encode(), OCI_MANIFEST)
    with pytest.raises(OpkeyError, match=r"manifest says|size"):
        list_signatures(registry_client, registry_image)


def test_manifest_value_round_trip(
    registry_client: RegistryClient, registry_image: ImageReference
) -> None:
    attach_signature(
        registry_client, registry_image, payload_for(registry_image), signer_annotations(0)
    )
    manifest = registry_client.get_manifest(sig_ref(registry_image))
    again = Manifest.from_bytes(manifest.raw)
    assert ImageManifest.from_manifest(again).encode() == manifest.raw
