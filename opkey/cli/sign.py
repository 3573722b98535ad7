"""Sign files, digests or container images.

Generate an ephemeral key, obtain a PK token for it from the identity provider, and sign every
target with it: one ID token for all of them. Files get a bundle next to them
(PATH.opkey.json); a digest's bundle is printed unless --bundle names a file; images get a
signature in their registry. Every target is checked first (files read, digests and image
references parsed, bundle destinations writable), before the ID token is requested.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.cli.providers import add_provider_arguments
from opkey.cli.registry_options import add_registry_arguments, add_timeout_argument
from opkey.cli.tlog_options import add_tlog_sign_arguments

if TYPE_CHECKING:
    from opkey.cli.progress import Progress
    from opkey.http import Deadline
    from opkey.signer import Signer
    from opkey.tlog.client import RekorClient

__all__ = [
    "add_storage_argument",
    "configure",
    "run",
    "signer_from_args",
    "timestamp_clients_from_args",
]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``sign`` options."""
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
    stamps = parser.add_argument_group("signing time (RFC 3161)")
    stamps.add_argument(
        "--timestamp-url",
        action="append",
        default=[],
        metavar="URL",
        help="ask this time-stamping authority for a token over the signature (repeatable "
        "for bundles; https, or http on loopback); signing fails if it cannot be had",
    )
    stamps.add_argument(
        "--timestamp-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time allowed for each authority to answer (default: %(default)s)",
    )
    add_tlog_sign_arguments(parser)
    add_storage_argument(parser, what="signature")
    add_timeout_argument(parser, default=300.0)  # opkey.images.DEFAULT_SIGN_TIMEOUT
    add_registry_arguments(parser)
    add_provider_arguments(parser)


def add_storage_argument(parser: Any, *, what: str) -> None:
    """``--storage tag|referrers|auto`` (``sign`` and ``attest``)."""
    tag = ".sig" if what == "signature" else ".att"
    parser.add_argument(
        "--storage",
        choices=["tag", "referrers", "auto"],
        default="tag",
        help=f"where an image's {what} goes: tag, cosign's sha256-HEX{tag} tag (default); "
        "referrers, an OCI 1.1 referrer (the registry's referrers API, else the referrers tag "
        "schema); auto, a referrer when the registry serves the referrers API, else the tag",
    )


def timestamp_clients_from_args(args: argparse.Namespace) -> list[Any]:
    """One client per ``--timestamp-url``, checked before any key or token is made."""
    from opkey.errors import ConfigError

    if not args.timestamp_url:
        return []
    if not 0 < args.timestamp_timeout <= 300:
        raise ConfigError("--timestamp-timeout must be more than 0 and at most 300 seconds")
    from opkey.timestamp import TimestampClient

    return [TimestampClient(url, timeout=args.timestamp_timeout) for url in args.timestamp_url]


def signer_from_args(
    args: argparse.Namespace,
    progress: Progress,
    deadline: Deadline,
    clients: list[Any],
    tlog: RekorClient | None = None,
) -> Signer:
    """The signer the arguments describe: a session or a provider's fresh PK token, the
    time-stamping ``clients``, and ``tlog`` (refused here, before anything is signed, for a PK
    token that must not be published)."""
    signer = _base_signer(args, progress, deadline, clients)
    if tlog is None:
        return signer
    return signer.with_tlog(replace(tlog, transport=deadline.bound(_transport())))


def _transport() -> Any:
    from opkey.http import RequestsTransport

    return RequestsTransport(user_agent="opkey-tlog")


def _base_signer(
    args: argparse.Namespace, progress: Progress, deadline: Deadline, clients: list[Any]
) -> Signer:
    from opkey.signer import Signer

    if args.session:
        from opkey.cli.session import load_session

        return load_session(Path(args.session)).with_timestamps(clients)
    from opkey.cli.providers import build_provider
    from opkey.http import RequestsTransport

    provider = build_provider(args, transport=deadline.bound(RequestsTransport()))
    if args.provider in ("browser", "device"):
        progress.step(f"waiting for the {args.provider} login at {provider.issuer}")
    else:
        progress.step(f"requesting an ID token from {provider.issuer}")
    return Signer.from_provider(provider, alg=args.key_type, timestamp_clients=clients)


def _stamped(count: int) -> str:
    return f", timestamped by {count} authorit{'y' if count == 1 else 'ies'}" if count else ""


def _logged(entries: Any) -> str:
    return "".join(f", logged at index {entry.log_index}" for entry in entries)


def run(args: argparse.Namespace) -> int:
    """Check every target, obtain one PK token, sign each target and write the results."""
    from opkey.cli._common import write_new_file
    from opkey.cli.progress import Progress
    from opkey.cli.registry_options import RegistryOptions
    from opkey.cli.targets import collect_targets, sign_jobs
    from opkey.http import Deadline

    targets = collect_targets(
        files=args.file, digests=args.digest, images=args.image, command="sign"
    )
    jobs = sign_jobs(targets, args.bundle)
    registry = RegistryOptions.from_args(args)
    clients = timestamp_clients_from_args(args)
    from opkey.cli.tlog_options import tlog_client

    tlog = tlog_client(args)
    if len(clients) > 1 and any(job.target.image is not None for job in jobs):
        from opkey.errors import ConfigError

        raise ConfigError(
            "an image signature carries one RFC 3161 timestamp: give one --timestamp-url "
            "when signing images"
        )
    # One deadline for all network work: the token request, registry uploads, retries, waits.
    deadline = Deadline.after(args.timeout)
    progress = Progress()
    signer = signer_from_args(args, progress, deadline, clients, tlog)
    subject = signer.pktoken.claims.get("sub")
    as_whom = f"as {subject} (issuer {signer.pktoken.issuer})"
    for job in jobs:
        target = job.target
        if target.image is not None:
            from opkey.images import sign_image

            progress.step(f"signing {target.image} in its registry")
            client = registry.client(str(target.image), deadline)
            reference = sign_image(
                client, target.image, signer, deadline=deadline, storage=args.storage
            )
            stamped = _stamped(len(signer.timestamp_clients))
            logged = f", logged in {tlog.url}" if tlog is not None else ""
            print(f"opkey: signed {reference} {as_whom}{stamped}{logged}", file=sys.stderr)
            continue
        assert target.digest is not None
        signed = signer.sign_digest(target.digest)
        bundle = signed.to_json()
        as_whom_stamped = as_whom + _stamped(len(signed.timestamps)) + _logged(signed.tlog_entries)
        what = f"{target.text} ({target.digest})" if target.kind == "file" else target.text
        if job.out in (None, "-"):
            sys.stdout.write(bundle.decode())
            sys.stdout.flush()
            print(f"opkey: signed {what} {as_whom_stamped}", file=sys.stderr)
        else:
            write_new_file(Path(job.out), bundle)
            print(f"opkey: signed {what} {as_whom_stamped} -> {job.out}", file=sys.stderr)
    return 0
