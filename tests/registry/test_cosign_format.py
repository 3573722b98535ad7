"""Byte-level compatibility with cosign: payloads, signature manifests, configs; strict parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from opkey.cosign import (
    parse_simple_signing_payload,
    simple_signing_payload,
)
from opkey.digest import Digest
from opkey.errors import ConfigError, FormatError
from opkey.registry.manifest import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageManifest,
    Manifest,
    parse_manifest_json,
)
from opkey.registry.mediatypes import (
    COSIGN_SIMPLESIGNING,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)
from opkey.registry.reference import ImageReference
from opkey.registry.signatures import (
    COSIGN_SIGNATURE_ANNOTATION,
    cosign_config,
    journal_tag,
    layer_identity,
    signature_tag,
)

DIGEST = "sha256:" + "ab" * 32


def _vectors(data_dir: Path) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(
        (data_dir / "cosign-simplesigning.json").read_text()
    )["vectors"]
    return vectors


def test_payload_builder_matches_cosign_bytes(data_dir: Path) -> None:
    for vector in _vectors(data_dir):
        built = simple_signing_payload(
            vector["docker_reference"], Digest(vector["manifest_digest"]), vector["optional"]
        )
        assert built == vector["payload"].encode()


def test_cosign_signatures_verify_over_the_built_payload(data_dir: Path) -> None:
    """The strongest check: the signatures cosign made verify over opkey's bytes."""
    checked = 0
    for vector in _vectors(data_dir):
        if "signature_b64" not in vector:
            continue
        payload = simple_signing_payload(
            vector["docker_reference"], Digest(vector["manifest_digest"]), vector["optional"]
        )
        key = serialization.load_pem_public_key(vector["public_key_pem"].encode())
        signature = base64.b64decode(vector["signature_b64"])
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        checked += 1
    assert checked == 2


def test_docker_hub_reference_is_spelled_like_cosign(data_dir: Path) -> None:
    vector = _vectors(data_dir)[2]
    ref = ImageReference.parse(vector["image_reference"])
    assert ref.cosign_name == vector["docker_reference"]


def test_payload_parser_round_trip(data_dir: Path) -> None:
    for vector in _vectors(data_dir):
        parsed = parse_simple_signing_payload(vector["payload"].encode())
        assert parsed.docker_reference == vector["docker_reference"]
        assert parsed.manifest_digest == Digest(vector["manifest_digest"])
        expected = vector["optional"]
        assert (dict(parsed.optional) if parsed.optional is not None else None) == expected


def _payload(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "critical": {
            "identity": {"docker-reference": "example.com/app"},
            "image": {"docker-manifest-digest": DIGEST},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    for path, value in changes.items():
        target = document
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[key.replace("_", "-")]
        last = keys[-1].replace("_", "-")
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return json.dumps(document).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_payload(critical__type="atomic container signature"), "not a cosign"),
        (_payload(critical__image__docker_manifest_digest="sha256:" + "AB" * 32), "lowercase"),
        (_payload(critical__image__docker_manifest_digest="sha512:" + "ab" * 64), "sha256"),
        (_payload(critical__image__docker_manifest_digest=7), "must be a string"),
        (_payload(critical__identity__docker_reference=""), "non-empty"),
        (_payload(critical__extra="x"), "exactly the members"),
        (_payload(critical__image=_DELETE), "exactly the members"),
        (_payload(critical__image__extra=1), "exactly the members"),
        (_payload(unknown=1), "expected members"),
        (_payload(critical=_DELETE), "expected members"),
        (_payload(optional=[1]), "object or null"),
        (b'{"critical":{},"critical":{}}', "duplicate"),
        (b"[]", "JSON object"),
        (b"\xff", "UTF-8"),
    ],
)
def test_payload_parser_rejects(payload: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_simple_signing_payload(payload)


def test_payload_builder_rejects_bad_digests_and_references() -> None:
    with pytest.raises(FormatError, match="lowercase"):
        simple_signing_payload("example.com/app", Digest(DIGEST.upper().replace("SHA", "sha")))
    with pytest.raises(ConfigError, match="empty"):
        simple_signing_payload("", Digest(DIGEST))


def test_signature_manifest_rebuilt_byte_for_byte_from_a_cosign_trace(data_dir: Path) -> None:
    trace = json.loads((data_dir / "cosign-sig-manifest.json").read_text())
    image_digest = Digest(trace["image_digest"])
    ref = ImageReference.parse(trace["image_reference"]).with_digest(image_digest)
    payload = simple_signing_payload(ref.cosign_name, image_digest)
    assert str(Digest.of_bytes(payload)) == trace["payload_digest"]
    assert len(payload) == trace["payload_size"]
    assert signature_tag(image_digest) == trace["signature_tag"]
    config = trace["config"].encode()
    assert str(Digest.of_bytes(config)) == trace["config_digest"]
    layer = Descriptor(
        COSIGN_SIMPLESIGNING,
        Digest.of_bytes(payload),
        len(payload),
        {COSIGN_SIGNATURE_ANNOTATION: trace["signature_annotation"]},
    )
    manifest = ImageManifest.build(
        OCI_MANIFEST, Descriptor(OCI_CONFIG, Digest.of_bytes(config), len(config)), [layer]
    )
    raw = manifest.encode()
    assert raw == trace["manifest"].encode()
    assert str(Digest.of_bytes(raw)) == trace["manifest_digest"]
    # And reading cosign's bytes gives the same value back.
    parsed = ImageManifest.from_manifest(Manifest.from_bytes(trace["manifest"].encode()))
    assert parsed == manifest


def test_config_has_cosign_shape(data_dir: Path) -> None:
    """Same document as cosign's, except the creation time, which cosign records only with
    --record-creation-timestamp (Go's zero time otherwise)."""
    trace = json.loads((data_dir / "cosign-sig-manifest.json").read_text())
    layer = Descriptor(COSIGN_SIMPLESIGNING, Digest(trace["payload_digest"]), trace["payload_size"])
    expected = trace["config"].replace("2023-02-17T09:25:33.91047962-08:00", "0001-01-01T00:00:00Z")
    assert cosign_config([layer]) == expected.encode()
    two = json.loads(cosign_config([layer, layer]))
    assert two["rootfs"]["diff_ids"] == [trace["payload_digest"]] * 2
    assert len(two["history"]) == 2


def test_layer_identity_distinguishes_signatures_over_one_payload() -> None:
    a = Descriptor(COSIGN_SIMPLESIGNING, Digest(DIGEST), 10, {COSIGN_SIGNATURE_ANNOTATION: "a"})
    b = Descriptor(COSIGN_SIMPLESIGNING, Digest(DIGEST), 10, {COSIGN_SIGNATURE_ANNOTATION: "b"})
    a_again = Descriptor(
        COSIGN_SIMPLESIGNING, Digest(DIGEST), 10, {COSIGN_SIGNATURE_ANNOTATION: "a"}
    )
    assert layer_identity(a) != layer_identity(b)
    assert layer_identity(a) == layer_identity(a_again)
    tag = journal_tag(Digest(DIGEST), a)
    assert tag.startswith(signature_tag(Digest(DIGEST)) + ".journal-")
    assert len(tag) <= 128  # the distribution spec's tag limit


def _manifest_bytes(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": 2, "digest": DIGEST},
        "layers": [],
    }
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("raw", "content_type", "message"),
    [
        (b"not json", None, "invalid JSON"),
        (b'{"schemaVersion":2,"schemaVersion":2}', None, "duplicate"),
        (b'{"schemaVersion":NaN}', None, "NaN"),
        (b"[1]", None, "JSON object"),
        (_manifest_bytes(mediaType="text/plain"), None, "unsupported manifest media type"),
        (_manifest_bytes(mediaType=None), None, "unsupported manifest media type"),
        (_manifest_bytes(), DOCKER_MANIFEST, "served as"),
        (_manifest_bytes(schemaVersion=1), None, "schemaVersion"),
        (b"[" * 40 + b"]" * 40, None, "nested deeper"),
        (b'{"a":' * 40 + b"1" + b"}" * 40, None, "nested"),
    ],
)
def test_manifest_parsing_is_strict(raw: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Manifest.from_bytes(raw, content_type=content_type)


def test_manifest_size_limit() -> None:
    with pytest.raises(FormatError, match="more than the 4194304 allowed"):
        parse_manifest_json(b" " * (MAX_MANIFEST_BYTES + 1))


def test_media_type_from_content_type_when_document_omits_it() -> None:
    raw = _manifest_bytes(mediaType=None).replace(b'"mediaType": null, ', b"")
    manifest = Manifest.from_bytes(raw, content_type=OCI_MANIFEST + "; charset=utf-8")
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.digest == Digest.of_bytes(raw)


@pytest.mark.parametrize(
    ("descriptor", "message"),
    [
        ({"mediaType": "x", "size": 1, "digest": "sha256:" + "A" * 64}, "lowercase"),
        ({"mediaType": "x", "size": -1, "digest": DIGEST}, "non-negative"),
        ({"mediaType": "x", "size": True, "digest": DIGEST}, "non-negative"),
        ({"mediaType": "", "size": 1, "digest": DIGEST}, "mediaType"),
        ({"mediaType": "x", "size": 1, "digest": DIGEST, "annotations": {"a": 1}}, "string"),
    ],
)
def test_descriptor_validation(descriptor: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Descriptor.from_json(descriptor)


def test_descriptor_keeps_members_it_does_not_interpret() -> None:
    original = {
        "mediaType": COSIGN_SIMPLESIGNING,
        "size": 3,
        "digest": DIGEST,
        "urls": ["https://example.com/x"],
        "annotations": {"b": "2", "a": "1"},
        "zzz": {"k": True},
    }
    descriptor = Descriptor.from_json(original)
    encoded = descriptor.to_json()
    assert list(encoded) == ["mediaType", "size", "digest", "urls", "annotations", "zzz"]
    assert list(encoded["annotations"]) == ["a", "b"]
    assert encoded["zzz"] == {"k": True}


def test_index_is_not_an_image_manifest() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(FormatError, match="not an image manifest"):
        ImageManifest.from_manifest(Manifest.from_bytes(raw))


def test_go_escaping_of_html_characters() -> None:
    layer = Descriptor(COSIGN_SIMPLESIGNING, Digest(DIGEST), 1, {"note": "<a&b>"})
    manifest = ImageManifest.build(OCI_MANIFEST, layer, [layer])
    assert b"\\u003ca\\u0026b\\u003e" in manifest.encode()
