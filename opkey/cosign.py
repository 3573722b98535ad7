"""cosign's formats, defined once: annotation names, tags, and the payload it signs for an image.

Image signatures are stored where and how cosign stores them (``spec/registry.md``), so that
cosign can check opkey's signatures and opkey can read cosign's layout. Everything about that
format that is not generic OCI lives here: the layer annotation names (cosign's own and the
ones opkey adds beside them), the signature tag of a digest, and the simple-signing payload.

**The simple-signing payload.** What a cosign image signature covers is not the manifest but
this small JSON document naming it (sigstore ``pkg/signature/payload``)::

    {"critical":{"identity":{"docker-reference":"<registry/repository>"},
                 "image":{"docker-manifest-digest":"sha256:<hex>"},
                 "type":"cosign container image signature"},
     "optional":null}

written compactly by Go's ``json.Marshal`` (struct fields in declaration order, which here is
also alphabetical; ``optional`` is a map, so its keys are sorted; ``<``, ``>``, ``&`` escaped).
The builder reproduces those bytes exactly, because the signature is over the bytes, and a
cosign verifier recomputes nothing: it parses what was signed.

The parser is strict: exactly the members above, a ``sha256`` digest in canonical form, and the
cosign type string. It runs before anything trusts the payload, so verifiers can compare the
digest in it with the image they were asked about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opkey.digest import Digest
from opkey.errors import ConfigError, FormatError
from opkey.jose import freeze_json, go_json, parse_json_object

__all__ = [
    "COSIGN_BUNDLE_ANNOTATION",
    "COSIGN_CERTIFICATE",
    "COSIGN_SIGNATURE",
    "COSIGN_SIGNATURE_TYPE",
    "COSIGN_TIMESTAMP_ANNOTATION",
    "OPKEY_OSM",
    "OPKEY_PKTOKEN",
    "OPKEY_TLOG",
    "SIGNATURE_TAG_SUFFIX",
    "SimpleSigningPayload",
    "parse_simple_signing_payload",
    "signature_tag",
    "simple_signing_payload",
]

#: The ``critical.type`` cosign writes and checks.
COSIGN_SIGNATURE_TYPE = "cosign container image signature"

#: Layer annotation holding the standard-base64 signature over the layer's payload (cosign's).
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
#: Layer annotation holding the certificate of a cosign signature made with a certificate.
COSIGN_CERTIFICATE = "dev.sigstore.cosign/certificate"
#: Layer annotation in which cosign keeps an RFC 3161 timestamp over the raw bytes of the
#: signature (``pkg/oci/static``); the value's format is in :mod:`opkey.timestamp`.
COSIGN_TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
#: Layer annotation holding cosign's Rekor bundle: the signed entry timestamp and the entry
#: it signs (``pkg/cosign/bundle/rekor.go``), which ``cosign verify`` checks offline.
COSIGN_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
#: Layer annotation holding the transparency log entry of the layer's signature with its
#: inclusion proof and checkpoint: a Sigstore ``TransparencyLogEntry``, compact JSON.
OPKEY_TLOG = "dev.opkey/tlog"
#: Layer annotation holding the PK token that vouches for the signing key (compact form).
OPKEY_PKTOKEN = "dev.opkey/pktoken"
#: Layer annotation holding the OpenPubkey signed message over the payload, detached
#: (``header..signature``: the payload is the layer blob).
OPKEY_OSM = "dev.opkey/osm"
#: The tag suffix of an image's signature manifest: ``sha256-<hex>.sig``.
SIGNATURE_TAG_SUFFIX = ".sig"


def signature_tag(digest: Digest) -> str:
    """The cosign signature tag of the image ``digest``: ``sha256-<hex>.sig``."""
    return f"sha256-{digest.hex}{SIGNATURE_TAG_SUFFIX}"


@dataclass(frozen=True, slots=True)
class SimpleSigningPayload:
    """A parsed simple-signing payload."""

    docker_reference: str
    manifest_digest: Digest
    optional: Mapping[str, Any] | None = None


def simple_signing_payload(
    docker_reference: str,
    manifest_digest: Digest,
    optional: Mapping[str, Any] | None = None,
) -> bytes:
    """The payload bytes cosign would sign for ``manifest_digest`` in ``docker_reference``.

    ``docker_reference`` is the repository without tag or digest, as cosign writes it (see
    :attr:`~opkey.registry.reference.ImageReference.cosign_name`). ``optional`` holds cosign's
    ``-a key=value`` annotations; ``None`` encodes as ``null``.
    """
    if not isinstance(docker_reference, str):
        raise ConfigError("docker-reference must be a string")
    if not docker_reference:
        raise ConfigError("docker-reference must not be empty")
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest.value},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": None if optional is None else dict(optional),
    }
    # Every struct here has its fields in alphabetical order, so Go's output equals sorted keys.
    return go_json(document)


def _exact_members(value: Any, names: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"simple-signing payload: {what} must be an object")
    if set(value) != names:
        raise FormatError(
            f"simple-signing payload: {what} must have exactly the members {sorted(names)}, "
            f"found {sorted(value)}",
            expected=sorted(names),
            found=sorted(value),
        )
    return value


def parse_simple_signing_payload(data: bytes) -> SimpleSigningPayload:
    """Parse and check a cosign simple-signing payload (see the module docstring)."""
    document = parse_json_object(data, what="simple-signing payload")
    allowed = {"critical", "optional"}
    if not set(document) <= allowed or "critical" not in document:
        raise FormatError(
            "simple-signing payload: expected members 'critical' and 'optional', found "
            f"{sorted(document)}",
            found=sorted(document),
        )
    critical = _exact_members(document["critical"], {"identity", "image", "type"}, "critical")
    identity = _exact_members(critical["identity"], {"docker-reference"}, "critical.identity")
    image = _exact_members(critical["image"], {"docker-manifest-digest"}, "critical.image")
    if critical["type"] != COSIGN_SIGNATURE_TYPE:
        raise FormatError(
            f"simple-signing payload: type {critical['type']!r} is not a cosign image signature",
            expected=COSIGN_SIGNATURE_TYPE,
            found=critical["type"],
        )
    reference = identity["docker-reference"]
    if not isinstance(reference, str) or not reference:
        raise FormatError("simple-signing payload: docker-reference must be a non-empty string")
    digest = image["docker-manifest-digest"]
    if not isinstance(digest, str):
        raise FormatError("simple-signing payload: docker-manifest-digest must be a string")
    try:
        manifest_digest = Digest(digest)
    except FormatError as exc:
        raise FormatError(
            f"simple-signing payload docker-manifest-digest: {exc}", found=digest
        ) from None
    optional = document.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise FormatError("simple-signing payload: optional must be an object or null")
    frozen: Mapping[str, Any] | None = None if optional is None else freeze_json(optional)
    return SimpleSigningPayload(reference, manifest_digest, frozen)
