"""Image references (``registry/repository[:tag][@sha256:hex]``) and content digests.

A reference decides which registry opkey connects to and which manifest a signature is bound
to, so parsing is strict and follows the grammar of the distribution project
(``distribution/reference``) rather than guessing:

* the first path component is a registry only if it contains ``.`` or ``:`` or is
  ``localhost``; otherwise the image lives on Docker Hub (``docker.io``), and a single-component
  name gets the implicit ``library/`` namespace, as ``docker pull alpine`` does;
* repository components are lowercase; tags are at most 128 characters;
* digests must be ``sha256:`` followed by exactly 64 *lowercase* hex digits. Other algorithms,
  uppercase or short digests are refused with a message saying which rule failed: a digest that
  can be spelled two ways invites comparing the wrong strings.

Digest text is parsed here, once, into a :class:`~opkey.digest.Digest`; the rest of the
registry code takes and returns that type and never checks a digest string again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opkey.digest import Digest
from opkey.errors import ConfigError

__all__ = [
    "DOCKER_HUB",
    "ImageReference",
    "check_digest_value",
    "parse_digest",
    "parse_tag",
]

#: The canonical name of Docker Hub in references (``index.docker.io`` is an alias).
DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: Where Docker Hub's registry API is served.
_DOCKER_HUB_API = "registry-1.docker.io"
#: How go-containerregistry (and so cosign) names Docker Hub in simple-signing payloads.
_DOCKER_HUB_GGCR = "index.docker.io"

_MAX_NAME_LENGTH = 255
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def parse_digest(text: str, *, what: str = "digest") -> Digest:
    """``text`` as a :class:`Digest` if it is ``sha256:`` + 64 lowercase hex digits, else a
    ConfigError saying which rule it breaks (more precise than :class:`Digest`'s own check,
    for text a user typed)."""
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected a string, found {type(text).__name__}")
    algorithm, sep, hex_part = text.partition(":")
    if not sep:
        raise ConfigError(
            f"{what}: {text!r} is not a digest (expected sha256:<64 hex digits>)",
            expected="sha256:<64 lowercase hex digits>",
            found=text,
        )
    if algorithm != "sha256":
        raise ConfigError(
            f"{what}: algorithm {algorithm!r} is not supported; only sha256 digests are accepted",
            expected="sha256",
            found=algorithm,
        )
    if len(hex_part) != 64:
        raise ConfigError(
            f"{what}: a sha256 digest has 64 hex digits, found {len(hex_part)}",
            expected=64,
            found=len(hex_part),
        )
    if _SHA256_HEX.fullmatch(hex_part) is None:
        if re.fullmatch(r"[0-9a-fA-F]{64}", hex_part):
            raise ConfigError(
                f"{what}: digest hex must be lowercase, found {text!r}",
                expected=text.lower(),
                found=text,
            )
        raise ConfigError(f"{what}: digest {text!r} contains characters that are not hex")
    return Digest(text)


def check_digest_value(value: object, *, what: str) -> Digest:
    """``value`` if it is a :class:`Digest`, else a ConfigError: registry code takes digests
    parsed once where text enters, and a ``str`` passed where a Digest belongs would compare
    unequal to every digest instead of failing."""
    if not isinstance(value, Digest):
        raise ConfigError(
            f"{what}: expected a Digest, found {type(value).__name__} (parse digest text with "
            "parse_digest or ImageReference.parse)"
        )
    return value


def parse_tag(text: object, *, what: str = "tag") -> str:
    """Return ``text`` if it is a tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``), else ConfigError."""
    if isinstance(text, str) and _TAG.fullmatch(text) is not None:
        return text
    shown = repr(text[:140]) if isinstance(text, str) else type(text).__name__
    raise ConfigError(
        f"{what}: {shown} is not a valid tag (at most 128 letters, digits, '_', '.' or "
        "'-', not starting with '.' or '-')",
        found=text if isinstance(text, str) else None,
    )


def _check_registry(registry: str) -> None:
    if not registry or _DOMAIN.fullmatch(registry) is None:
        raise ConfigError(f"invalid registry host {registry!r}", found=registry)
    _, sep, port = registry.rpartition(":")
    if sep and not registry.endswith("]") and port.isdigit() and not 0 < int(port) < 65536:
        raise ConfigError(f"invalid registry port in {registry!r}", found=registry)


def _check_repository(repository: str) -> None:
    if not repository:
        raise ConfigError("empty repository name")
    for component in repository.split("/"):
        if _PATH_COMPONENT.fullmatch(component) is None:
            hint = " (repository names are lowercase)" if component.lower() != component else ""
            raise ConfigError(
                f"invalid repository path component {component!r} in {repository!r}{hint}",
                found=repository,
            )


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed, validated image reference.

    ``registry`` is the host as written (``docker.io`` for Docker Hub), ``repository`` the full
    path (``library/alpine``). ``tag`` and ``digest`` are optional; when both are present the
    digest decides which manifest is meant, as in Docker.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        _check_registry(self.registry)
        _check_repository(self.repository)
        if self.tag is not None and _TAG.fullmatch(self.tag) is None:
            raise ConfigError(
                f"invalid tag {self.tag!r} (1-128 characters of A-Z a-z 0-9 _ . -, "
                "not starting with . or -)",
                found=self.tag,
            )
        if self.digest is not None:
            check_digest_value(self.digest, what=f"digest of {self.registry}/{self.repository}")
        if len(self.name) > _MAX_NAME_LENGTH:
            raise ConfigError(
                f"image name {self.name[:60]!r}... is longer than {_MAX_NAME_LENGTH} characters"
            )

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``[registry/]repository[:tag][@sha256:hex]`` (Docker Hub when no registry)."""
        if not isinstance(text, str):
            raise ConfigError(f"image reference must be a string, not {type(text).__name__}")
        if not text:
            raise ConfigError("empty image reference")
        if text != text.strip() or any(c.isspace() for c in text):
            raise ConfigError(f"image reference {text!r} contains whitespace")
        if "://" in text:
            raise ConfigError(
                f"image reference {text!r} must not contain a URL scheme "
                "(write registry/repository[:tag][@digest])"
            )
        rest, at, digest_text = text.partition("@")
        digest: Digest | None = None
        if at:
            if "@" in digest_text:
                raise ConfigError(f"image reference {text!r} contains more than one '@'")
            digest = parse_digest(digest_text, what=f"digest in {text!r}")
        tag: str | None = None
        last_colon = rest.rfind(":")
        if last_colon > rest.rfind("/"):
            rest, tag = rest[:last_colon], rest[last_colon + 1 :]
            if not tag:
                raise ConfigError(f"image reference {text!r} has an empty tag")
        first, slash, remainder = rest.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, remainder
        elif slash and first != first.lower() and _DOMAIN.fullmatch(first):
            # distribution/reference treats an uppercase first component as a host name.
            registry, repository = first, remainder
        else:
            registry, repository = DOCKER_HUB, rest
        if registry.lower() in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and repository and "/" not in repository:
            repository = f"library/{repository}"
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host (and port) whose ``/v2/`` API serves this repository."""
        return _DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def cosign_name(self) -> str:
        """The repository as cosign writes it in ``docker-reference`` (Docker Hub spelled
        ``index.docker.io``, as go-containerregistry names it)."""
        registry = _DOCKER_HUB_GGCR if self.registry == DOCKER_HUB else self.registry
        return f"{registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What the manifest endpoint is asked for: the digest, else the tag, else ``latest``."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or "latest"

    def with_digest(self, digest: Digest) -> ImageReference:
        """The same repository pinned to ``digest`` (the tag is dropped)."""
        return ImageReference(self.registry, self.repository, None, digest)

    def with_tag(self, tag: str) -> ImageReference:
        """The same repository at ``tag`` (no digest)."""
        return ImageReference(self.registry, self.repository, tag, None)

    def require_digest(self) -> Digest:
        """The digest, or a ConfigError saying that a digest reference is needed."""
        if self.digest is None:
            raise ConfigError(
                f"{self}: a digest reference (…@sha256:<hex>) is required here; "
                "resolve the tag first"
            )
        return self.digest

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text
