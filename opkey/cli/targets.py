"""What ``opkey sign`` and ``opkey verify`` act on: files, digests and images, checked first.

Both commands take any number of targets (``--file`` and ``--digest`` repeated, several image
references), so a release signs its files and images with one ID token. Every target is
checked before anything slow or interactive happens: files are read and hashed, digests
parsed, image references parsed, so a typo is reported before a browser opens or an ID token
is spent.

:func:`sign_jobs` then says where each signature goes (``opkey sign``): a file's bundle is
``PATH.opkey.json``, a digest's goes to standard output or its ``--bundle OUT`` (with several
targets, one ``--bundle`` per ``--digest``, in order), an image's to its registry; two bundles
for one destination, or a destination in a directory that does not exist, are refused.

An argument given as an image that names a file here (``opkey sign app.tar.gz``) is refused
with what was probably meant (``--file app.tar.gz``): read as an image, it would be
``docker.io/library/app.tar.gz:latest``, and the command would talk to Docker Hub.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opkey.digest import Digest
from opkey.errors import ConfigError

if TYPE_CHECKING:
    from opkey.registry.reference import ImageReference

__all__ = [
    "ATTESTATION_SUFFIX",
    "BUNDLE_SUFFIX",
    "SignJob",
    "Target",
    "add_target_arguments",
    "collect_targets",
    "image_reference",
    "sign_jobs",
]

TargetKind = Literal["file", "digest", "image"]

#: What a file's bundle is called by default: ``PATH.opkey.json``.
BUNDLE_SUFFIX = ".opkey.json"
#: What a file's attestation bundle is called by default: ``PATH.att.opkey.json``.
ATTESTATION_SUFFIX = ".att.opkey.json"


@dataclass(frozen=True)
class Target:
    """One thing to sign or verify: a file (with its digest), a digest, or an image."""

    kind: TargetKind
    text: str
    """As given on the command line."""
    digest: Digest | None = None
    """The file's or the digest target's digest (images are resolved in the registry)."""
    image: ImageReference | None = None

    @property
    def label(self) -> str:
        """How messages name the target: the file, the digest, or the image reference."""
        return self.text

    @property
    def described(self) -> str:
        """How ``sign`` and ``attest`` report it: a file with the digest that was signed."""
        return f"{self.text} ({self.digest})" if self.kind == "file" else self.text


def add_target_arguments(
    parser: Any, *, verb: str, evidence: str | None = None, suffix: str = BUNDLE_SUFFIX
) -> None:
    """The targets group of ``sign``, ``attest``, ``verify`` and ``verify-attestation``:
    ``--digest`` and ``--file`` (repeatable) and image references, declared once so that every
    command reads them alike (:func:`collect_targets`).

    ``verb`` says what is done to each. A verifying command names the ``evidence`` it checks
    (``"signatures"``, ``"attestations"``) and the ``suffix`` of a file's default bundle: it
    takes one digest (its ``--bundle`` files are that digest's signatures).
    """
    if evidence is None:
        title = "targets (any number, at least one)"
        digest = f"{verb} a digest (repeatable)"
        file = f"{verb} a file, by its SHA-256 digest (repeatable)"
        image = f"{verb} a container image (registry/repository[:tag][@digest]); several may follow"
    else:
        title = "targets"
        digest = f"{verb} a digest against its --bundle files (one digest per command)"
        file = (
            f"{verb} a file by its SHA-256 digest, against PATH{suffix} unless --bundle is given "
            "(repeatable: each file against its own bundle)"
        )
        image = (
            f"{verb} a container image against the {evidence} in its registry (several may follow)"
        )
    group = parser.add_argument_group(title)
    group.add_argument("--digest", action="append", default=[], metavar="sha256:HEX", help=digest)
    group.add_argument("--file", action="append", default=[], metavar="PATH", help=file)
    group.add_argument("image", nargs="*", metavar="IMAGE_REF", help=image)


def image_reference(text: str, *, command: str) -> ImageReference:
    """``text`` parsed as an image reference, unless it names a file here (see the module)."""
    from opkey.registry.reference import ImageReference  # loads the registry package

    if os.path.isfile(text):
        raise ConfigError(
            f"{text} is a file, not an image reference: to {command} the file, use "
            f"--file {text} (an image is named registry/repository[:tag][@digest])",
            found=text,
        )
    return ImageReference.parse(text)


def collect_targets(
    *,
    files: Sequence[str],
    digests: Sequence[str],
    images: Sequence[str],
    command: str,
) -> tuple[Target, ...]:
    """Every target, checked (files hashed, digests and references parsed), in the order
    files, digests, images; a target named twice is refused."""
    targets: list[Target] = []
    for path in files:
        targets.append(Target("file", path, digest=Digest.of_file(path)))
    for text in digests:
        targets.append(Target("digest", text, digest=Digest(text)))
    for text in images:
        targets.append(Target("image", text, image=image_reference(text, command=command)))
    if not targets:
        raise ConfigError(
            f"nothing to {command}: give --file PATH, --digest sha256:HEX or an image reference "
            "(each may be repeated)"
        )
    seen: set[tuple[str, str]] = set()
    for target in targets:
        key = (target.kind, os.path.realpath(target.text) if target.kind == "file" else target.text)
        if key in seen:
            raise ConfigError(f"{target.text} is named twice")
        seen.add(key)
    return tuple(targets)


@dataclass(frozen=True)
class SignJob:
    """One target and where its signature goes: a bundle file, standard output (``"-"``), or
    the registry (``out`` is ``None`` for images)."""

    target: Target
    out: str | None


def _check_destination(out: str) -> None:
    if out == "-":
        return
    parent = Path(out).parent
    if not parent.is_dir():
        raise ConfigError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write {out}: directory {parent} is not writable")


def sign_jobs(
    targets: tuple[Target, ...], bundles: list[str], *, suffix: str = BUNDLE_SUFFIX
) -> tuple[SignJob, ...]:
    """Where each target's signature goes (see ``--bundle``); destinations are checked.

    A file's bundle is ``PATH`` + ``suffix`` (``opkey attest`` writes ``PATH.att.opkey.json``).
    """
    digests = [t for t in targets if t.kind == "digest"]
    files = [t for t in targets if t.kind == "file"]
    if bundles and not digests and not files:
        raise ConfigError("image signatures go to the registry: drop --bundle")
    outs: dict[int, str | None] = {}
    if len(targets) == 1 and len(bundles) <= 1:
        only = targets[0]
        if only.kind == "file":
            outs[0] = bundles[0] if bundles else f"{only.text}{suffix}"
        elif only.kind == "digest":
            outs[0] = bundles[0] if bundles else "-"
    else:
        if len(bundles) != len(digests) and not (len(digests) == 1 and not bundles):
            raise ConfigError(
                f"{len(digests)} --digest and {len(bundles)} --bundle: with several targets, "
                "give each --digest its --bundle OUT, in order (a file's bundle is "
                f"PATH{suffix})"
            )
        pending = iter(bundles or ["-"])
        for index, target in enumerate(targets):
            if target.kind == "file":
                outs[index] = f"{target.text}{suffix}"
            elif target.kind == "digest":
                outs[index] = next(pending)
    written = [out for out in outs.values() if out is not None]
    for out in written:
        if written.count(out) > 1:
            what = "standard output" if out == "-" else out
            raise ConfigError(f"two bundles would be written to {what}")
        _check_destination(out)
    return tuple(SignJob(target, outs.get(index)) for index, target in enumerate(targets))
