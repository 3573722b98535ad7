"""Image references parse strictly: Docker Hub defaults, hosts with ports, exact digests."""

from __future__ import annotations

import pytest

from opkey.digest import Digest
from opkey.errors import ConfigError
from opkey.registry.reference import ImageReference, parse_digest

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", None, None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("user/app", "docker.io", "user/app", None, None),
        ("docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
        ("localhost:5000/x", "localhost:5000", "x", None, None),
        ("localhost/x:y", "localhost", "x", "y", None),
        ("127.0.0.1:5000/a/b/c:tag_1.0-rc", "127.0.0.1:5000", "a/b/c", "tag_1.0-rc", None),
        ("[::1]:5000/x:1", "[::1]:5000", "x", "1", None),
        ("ghcr.io/org/repo@" + DIGEST, "ghcr.io", "org/repo", None, DIGEST),
        ("ghcr.io/org/repo:v2@" + DIGEST, "ghcr.io", "org/repo", "v2", DIGEST),
        (
            "registry.example.com:443/a.b/c__d/e-f",
            "registry.example.com:443",
            "a.b/c__d/e-f",
            None,
            None,
        ),
        ("alpine@" + DIGEST, "docker.io", "library/alpine", None, DIGEST),
    ],
)
def test_valid_references_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        None if digest is None else Digest(digest),
    )
    # The canonical form parses back to the same value.
    assert ImageReference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Alpine", "lowercase"),
        ("docker.io/Library/alpine", "lowercase"),
        ("ghcr.io/org/repo@sha256:" + "A" * 64, "lowercase"),
        ("ghcr.io/org/repo@sha256:" + "a" * 63, "64 hex digits"),
        ("ghcr.io/org/repo@sha256:" + "a" * 65, "64 hex digits"),
        ("ghcr.io/org/repo@sha512:" + "a" * 128, "only sha256"),
        ("ghcr.io/org/repo@md5:abc", "only sha256"),
        ("ghcr.io/org/repo@" + "a" * 64, "not a digest"),
        ("ghcr.io/org/repo@sha256:" + "g" * 64, "not hex"),
        ("ghcr.io/org/repo@@" + DIGEST, "more than one"),
        ("ghcr.io/org/repo:", "empty tag"),
        ("ghcr.io/org/repo:.bad", "invalid tag"),
        ("ghcr.io/org/repo:" + "t" * 129, "invalid tag"),
        ("ghcr.io/org//repo", "path component"),
        ("ghcr.io/org/repo-", "path component"),
        ("ghcr.io/-org/repo", "path component"),
        ("https://ghcr.io/org/repo", "URL scheme"),
        (" ghcr.io/org/repo", "whitespace"),
        ("ghcr.io/org/re po", "whitespace"),
        ("host:99999/x", "port"),
        ("-bad.example.com/x", "invalid registry host"),
        ("a.b/" + "x" * 300, "longer than"),
    ],
)
def test_invalid_references_are_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ImageReference.parse(text)
    assert message in str(caught.value)


def test_constructor_validates_too() -> None:
    with pytest.raises(ConfigError, match="expected a Digest"):
        ImageReference("ghcr.io", "org/repo", digest="sha256:" + "f" * 64)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid registry"):
        ImageReference("bad host", "x")


def test_derived_names() -> None:
    hub = ImageReference.parse("alpine:3")
    assert hub.api_host == "registry-1.docker.io"
    assert hub.cosign_name == "index.docker.io/library/alpine"
    assert hub.reference == "3"
    local = ImageReference.parse("localhost:5000/x")
    assert local.api_host == "localhost:5000"
    assert local.cosign_name == "localhost:5000/x"
    assert local.reference == "latest"
    pinned = local.with_digest(Digest(DIGEST))
    assert pinned.reference == DIGEST
    assert str(pinned) == f"localhost:5000/x@{DIGEST}"
    assert pinned.with_tag("t").digest is None


def test_require_digest_explains_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="digest reference"):
        ImageReference.parse("localhost:5000/x:tag").require_digest()


def test_digest_helpers() -> None:
    assert Digest.of_bytes(b"") == Digest(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert parse_digest(DIGEST) == Digest(DIGEST)
    assert Digest(DIGEST).tag_stem == f"sha256-{HEX}"
    with pytest.raises(ConfigError, match="lowercase"):
        parse_digest(DIGEST.upper().replace("SHA256", "sha256"))
