"""``opkey sign``: sign files, digests and container images with one fresh ephemeral key.

Every target is checked first (files read, digests and image references parsed, bundle
destinations writable); only then is an ID token requested, once, and every target signed
with the same key and PK token: a release signs all its artifacts with one login.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.cli.providers import add_provider_arguments
from opkey.errors import ConfigError

if TYPE_CHECKING:
    from opkey.cli.progress import Progress
    from opkey.cli.targets import Target
    from opkey.signer import Signer

__all__ = ["SignJob", "register", "run", "sign_jobs"]


def register(subparsers: Any) -> None:
    """Add the ``sign`` subcommand."""
    parser = subparsers.add_parser(
        "sign",
        help="sign files, digests or container images",
        description=(
            "Generate an ephemeral key, obtain a PK token for it from the identity provider, "
            "and sign every target with it: one ID token for all of them. Files get a bundle "
            "next to them (PATH.opkey.json); a digest's bundle is printed unless --bundle names "
            "a file; images get a signature in their registry. Every target is checked before "
            "the ID token is requested."
        ),
    )
    target = parser.add_argument_group("targets (any number, at least one)")
    target.add_argument(
        "--digest",
        action="append",
        default=[],
        metavar="sha256:HEX",
        help="sign a digest (repeatable)",
    )
    target.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="sign a file, by its SHA-256 digest (repeatable)",
    )
    target.add_argument(
        "image",
        nargs="*",
        metavar="IMAGE_REF",
        help="sign a container image (registry/repository[:tag][@digest]); several may follow",
    )
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="OUT",
        help="where to write a bundle (- for standard output): the bundle of a single --file "
        "or --digest; with several targets, one per --digest, in order (a file's bundle is "
        "always PATH.opkey.json then)",
    )
    parser.add_argument(
        "--session",
        metavar="FILE",
        help="sign with a key and PK token saved by `opkey login --save` instead of a provider",
    )
    parser.add_argument(
        "--key-type",
        choices=["ES256", "EdDSA", "RS256"],
        default="ES256",
        help="ephemeral key algorithm (default: %(default)s)",
    )
    parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="allow plain http to this registry (loopback always may)",
    )
    add_provider_arguments(parser)
    parser.set_defaults(run=run)


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


def sign_jobs(targets: tuple[Target, ...], bundles: list[str]) -> tuple[SignJob, ...]:
    """Where each target's signature goes (see ``--bundle``); destinations are checked."""
    digests = [t for t in targets if t.kind == "digest"]
    files = [t for t in targets if t.kind == "file"]
    if bundles and not digests and not files:
        raise ConfigError("image signatures go to the registry: drop --bundle")
    outs: dict[int, str | None] = {}
    if len(targets) == 1 and len(bundles) <= 1:
        only = targets[0]
        if only.kind == "file":
            outs[0] = bundles[0] if bundles else f"{only.text}.opkey.json"
        elif only.kind == "digest":
            outs[0] = bundles[0] if bundles else "-"
    else:
        if len(bundles) != len(digests) and not (len(digests) == 1 and not bundles):
            raise ConfigError(
                f"{len(digests)} --digest and {len(bundles)} --bundle: with several targets, "
                "give each --digest its --bundle OUT, in order (a file's bundle is "
                "PATH.opkey.json)"
            )
        pending = iter(bundles or ["-"])
        for index, target in enumerate(targets):
            if target.kind == "file":
                outs[index] = f"{target.text}.opkey.json"
            elif target.kind == "digest":
                outs[index] = next(pending)
    written = [out for out in outs.values() if out is not None]
    for out in written:
        if written.count(out) > 1:
            what = "standard output" if out == "-" else out
            raise ConfigError(f"two bundles would be written to {what}")
        _check_destination(out)
    return tuple(SignJob(target, outs.get(index)) for index, target in enumerate(targets))


def _signer(args: argparse.Namespace, progress: Progress) -> Signer:
    from opkey.signer import Signer

    if args.session:
        from opkey.cli.session import load_session

        return load_session(Path(args.session))
    from opkey.cli.providers import build_provider

    provider = build_provider(args)
    if args.provider in ("browser", "device"):
        progress.step(f"waiting for the {args.provider} login at {provider.issuer}")
    else:
        progress.step(f"requesting an ID token from {provider.issuer}")
    return Signer.from_provider(provider, alg=args.key_type)


def run(args: argparse.Namespace) -> int:
    """Check every target, obtain one PK token, sign each target and write the results."""
    from opkey.cli._common import write_new_file
    from opkey.cli.progress import Progress
    from opkey.cli.targets import collect_targets

    targets = collect_targets(
        files=args.file, digests=args.digest, images=args.image, command="sign"
    )
    jobs = sign_jobs(targets, args.bundle)
    progress = Progress()
    signer = _signer(args, progress)
    subject = signer.pktoken.claims.get("sub")
    as_whom = f"as {subject} (issuer {signer.pktoken.issuer})"
    client = None
    for job in jobs:
        target = job.target
        if target.image is not None:
            from opkey.cli.images import registry_client
            from opkey.images import sign_image

            if client is None:
                client = registry_client(args.insecure_registry)
            progress.step(f"signing {target.image} in its registry")
            reference = sign_image(client, target.image, signer)
            print(f"opkey: signed {reference} {as_whom}", file=sys.stderr)
            continue
        assert target.digest is not None
        bundle = signer.sign_digest(target.digest).to_json()
        what = f"{target.text} ({target.digest})" if target.kind == "file" else target.text
        if job.out in (None, "-"):
            sys.stdout.write(bundle.decode())
            sys.stdout.flush()
            print(f"opkey: signed {what} {as_whom}", file=sys.stderr)
        else:
            write_new_file(Path(job.out), bundle)
            print(f"opkey: signed {what} {as_whom} -> {job.out}", file=sys.stderr)
    return 0
