"""What ``opkey sign`` and ``opkey attest`` share: their options and their steps.

Both take targets, obtain one PK token (from a provider, or a session saved by ``opkey
login``) and sign every target with it, optionally time-stamped and logged; images go to
their registry, files and digests get a bundle. Only what is signed differs (a digest, or an
in-toto statement about it), so the options after the targets are declared here once
(:func:`add_signing_arguments`), and the steps around the signing too: every target checked
(:func:`signing_jobs`), the rest checked and the one signer built (:func:`start_signing`),
each bundle written (:func:`write_bundle`).
``opkey login`` shares the ephemeral key option (:func:`add_key_type_argument`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.cli.providers import add_provider_arguments
from opkey.cli.registry_options import add_registry_arguments
from opkey.cli.targets import ATTESTATION_SUFFIX, BUNDLE_SUFFIX
from opkey.cli.timeout_options import add_timeout_argument
from opkey.cli.timestamp_options import add_timestamp_sign_arguments
from opkey.cli.tlog_options import add_tlog_sign_arguments

if TYPE_CHECKING:
    from opkey.cli.progress import Progress
    from opkey.cli.registry_options import RegistryOptions
    from opkey.cli.targets import SignJob, Target
    from opkey.http import Deadline
    from opkey.registry.client import RegistryClient
    from opkey.signer import Signer
    from opkey.timestamp import TimestampClient
    from opkey.tlog.client import RekorClient

__all__ = [
    "ATTEST",
    "SIGN",
    "SigningCommand",
    "SigningRun",
    "add_key_type_argument",
    "add_signing_arguments",
    "signer_from_args",
    "signing_jobs",
    "start_signing",
    "write_bundle",
]


@dataclass(frozen=True)
class SigningCommand:
    """The words a signing command's help and messages use for what it does and makes."""

    verb: str
    """``sign``, ``attest``."""
    bundle: str
    """What a file or digest gets: ``bundle``, ``attestation bundle``."""
    suffix: str
    """The file name a file's bundle gets after the file's: ``.opkey.json``, ``.att.opkey.json``."""
    made: str
    """What an image gets: ``signature``, ``attestation``."""
    tag: str
    """The suffix of cosign's tag for it: ``.sig``, ``.att``."""
    signed: str
    """What a timestamp is over: the ``signature``, the ``DSSE signature``."""
    layer: str
    """What holds one timestamp on an image: ``an image signature``, ``an attestation layer``."""

    @property
    def gerund(self) -> str:
        """``signing``, ``attesting``."""
        return f"{self.verb}ing"


SIGN = SigningCommand(
    verb="sign",
    bundle="bundle",
    suffix=BUNDLE_SUFFIX,
    made="signature",
    tag=".sig",
    signed="signature",
    layer="an image signature",
)
ATTEST = SigningCommand(
    verb="attest",
    bundle="attestation bundle",
    suffix=ATTESTATION_SUFFIX,
    made="attestation",
    tag=".att",
    signed="DSSE signature",
    layer="an attestation layer",
)


def add_key_type_argument(parser: Any) -> None:
    """``--key-type``: the ephemeral key's algorithm (``sign``, ``attest``, ``login``)."""
    parser.add_argument(
        "--key-type",
        choices=["ES256", "EdDSA", "RS256"],
        default="ES256",
        help="ephemeral key algorithm (default: %(default)s)",
    )


def add_signing_arguments(parser: Any, command: SigningCommand) -> None:
    """Everything after the targets (and ``attest``'s statement) that ``sign`` and ``attest``
    share: bundles, the session or key, signing time, the log, image storage, the deadline,
    registry, provider."""
    article = "an" if command.bundle[0] in "aeiou" else "a"
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="OUT",
        help=f"where to write {article} {command.bundle} (- for standard output): the "
        f"{command.bundle} of a single --file or --digest; with several targets, one per "
        f"--digest, in order (a file's {command.bundle} is always PATH{command.suffix} then)",
    )
    parser.add_argument(
        "--session",
        metavar="FILE",
        help=f"{command.verb} with a key and PK token saved by `opkey login --save` instead of "
        "a provider",
    )
    add_key_type_argument(parser)
    add_timestamp_sign_arguments(parser, signed=command.signed, gerund=command.gerund)
    add_tlog_sign_arguments(parser)
    parser.add_argument(
        "--storage",
        choices=["tag", "referrers", "auto"],
        default="tag",
        help=f"where an image's {command.made} goes: tag, cosign's sha256-HEX{command.tag} tag "
        "(default); referrers, an OCI 1.1 referrer (the registry's referrers API, else the "
        "referrers tag schema); auto, a referrer when the registry serves the referrers API, "
        "else the tag",
    )
    add_timeout_argument(parser, default=300.0)  # opkey.images.DEFAULT_SIGN_TIMEOUT
    add_registry_arguments(parser)
    add_provider_arguments(parser)


@dataclass(frozen=True)
class SigningRun:
    """A signing command under way: one signer (one ID token) for every target, one deadline
    for all network work (the token request, registry uploads, retries, waits)."""

    command: SigningCommand
    signer: Signer
    registry: RegistryOptions
    deadline: Deadline
    progress: Progress
    tlog: RekorClient | None

    @property
    def as_whom(self) -> str:
        """Who signed, for the messages: ``as SUBJECT (issuer URL)``."""
        pktoken = self.signer.pktoken
        return f"as {pktoken.claims.get('sub')} (issuer {pktoken.issuer})"

    def registry_client(self, target: Target) -> RegistryClient:
        """A client for the image ``target``'s registry, the step announced."""
        self.progress.step(f"{self.command.gerund} {target.image} in its registry")
        return self.registry.client(str(target.image), self.deadline)


def signing_jobs(args: argparse.Namespace, command: SigningCommand) -> tuple[SignJob, ...]:
    """Every target checked, and where each one's signature goes (:mod:`opkey.cli.targets`)."""
    from opkey.cli.targets import collect_targets, sign_jobs

    targets = collect_targets(
        files=args.file, digests=args.digest, images=args.image, command=command.verb
    )
    return sign_jobs(targets, args.bundle, suffix=command.suffix)


def start_signing(
    args: argparse.Namespace, jobs: tuple[SignJob, ...], command: SigningCommand
) -> SigningRun:
    """Check the rest of the arguments (registry, authorities, log), then build the signer:
    only now is the ID token requested (or the session read)."""
    from opkey.cli.progress import Progress
    from opkey.cli.registry_options import RegistryOptions
    from opkey.cli.timestamp_options import timestamp_clients
    from opkey.cli.tlog_options import tlog_client
    from opkey.errors import ConfigError
    from opkey.http import Deadline

    registry = RegistryOptions.from_args(args)
    clients = timestamp_clients(args)
    if len(clients) > 1 and any(job.target.image is not None for job in jobs):
        raise ConfigError(
            f"{command.layer} carries one RFC 3161 timestamp: give one --timestamp-url when "
            f"{command.gerund} images"
        )
    tlog = tlog_client(args)
    deadline = Deadline.after(args.timeout)
    progress = Progress()
    signer = signer_from_args(args, progress, deadline, clients, tlog)
    return SigningRun(command, signer, registry, deadline, progress, tlog)


def write_bundle(job: SignJob, data: bytes, message: str) -> None:
    """A file's or digest's bundle to its destination (standard output for ``-``), and the
    ``opkey: <message>`` line on standard error that says where it went."""
    if job.out in (None, "-"):
        sys.stdout.write(data.decode())
        sys.stdout.flush()
        print(f"opkey: {message}", file=sys.stderr)
    else:
        from opkey.cli._common import write_new_file

        write_new_file(Path(job.out), data)
        print(f"opkey: {message} -> {job.out}", file=sys.stderr)


def signer_from_args(
    args: argparse.Namespace,
    progress: Progress,
    deadline: Deadline,
    clients: list[TimestampClient],
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
    args: argparse.Namespace,
    progress: Progress,
    deadline: Deadline,
    clients: list[TimestampClient],
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
