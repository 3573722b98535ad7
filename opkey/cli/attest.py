"""Attest a predicate (provenance, a scan result, an approval) about a target.

Sign an in-toto statement about each target with an ephemeral key and its PK token: the subject
is the target's digest, the predicate the --predicate file (or, for --type slsaprovenance1
without one, SLSA provenance that opkey writes from the CI job's ID token: GitHub Actions,
GitLab CI). The statement travels in a DSSE envelope, as
https://github.com/opkey-dev/opkey/blob/main/spec/attestations.md says. Images get a layer
of cosign's .att tag (or an OCI 1.1 referrer, --storage); files and digests an attestation
bundle (PATH.att.opkey.json, or --bundle). Every target is checked, and the predicate read,
before the ID token is requested.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.cli.providers import add_provider_arguments
from opkey.cli.registry_options import add_registry_arguments, add_timeout_argument
from opkey.cli.sign import add_storage_argument
from opkey.cli.tlog_options import add_tlog_sign_arguments

if TYPE_CHECKING:
    from opkey.cli.targets import Target
    from opkey.signer import Signer

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``attest`` options."""
    target = parser.add_argument_group("targets (any number, at least one)")
    target.add_argument(
        "--digest", action="append", default=[], metavar="sha256:HEX", help="attest a digest"
    )
    target.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="attest a file, by its SHA-256 digest (repeatable)",
    )
    target.add_argument(
        "image",
        nargs="*",
        metavar="IMAGE_REF",
        help="attest a container image (registry/repository[:tag][@digest])",
    )
    what = parser.add_argument_group("the statement")
    what.add_argument(
        "--type",
        required=True,
        metavar="URI",
        help="predicate type: a URI, or slsaprovenance1, vuln, custom, spdxjson, cyclonedx, "
        "openvex, link (cosign's short names)",
    )
    what.add_argument(
        "--predicate",
        metavar="FILE",
        help="the predicate, a JSON object (- for standard input); optional for "
        "slsaprovenance1 in GitHub Actions or GitLab CI, where opkey writes it",
    )
    parser.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="OUT",
        help="where to write an attestation bundle (- for standard output): of a single "
        "--file or --digest; with several targets, one per --digest, in order",
    )
    parser.add_argument(
        "--session", metavar="FILE", help="attest with a key and PK token saved by opkey login"
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
        help="ask this time-stamping authority for a token over the DSSE signature (one for "
        "images; repeatable for bundles)",
    )
    stamps.add_argument(
        "--timestamp-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time allowed for each authority to answer (default: %(default)s)",
    )
    add_tlog_sign_arguments(parser)
    add_storage_argument(parser, what="attestation")
    add_timeout_argument(parser, default=300.0)
    add_registry_arguments(parser)
    add_provider_arguments(parser)


def _read_predicate(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    from opkey.dsse import MAX_ENVELOPE_BYTES
    from opkey.errors import ConfigError
    from opkey.files import read_regular_file, read_stream
    from opkey.intoto import parse_predicate

    if path == "-":
        data = read_stream(sys.stdin.buffer, limit=MAX_ENVELOPE_BYTES, what="standard input")
    else:
        data = read_regular_file(
            path, limit=MAX_ENVELOPE_BYTES, what="predicate file", error=ConfigError
        )
    return parse_predicate(data, what=f"predicate {path}")


def _subject_name(target: Target) -> str:
    if target.kind == "file":
        return os.path.basename(target.text)
    return target.text


def _predicate_for(
    predicate: dict[str, Any] | None, predicate_type: str, signer: Signer
) -> dict[str, Any]:
    """The predicate given, or the provenance opkey writes from the signer's own token."""
    if predicate is not None:
        return predicate
    from opkey.provenance import provenance_for

    return provenance_for(signer.pktoken.claims, server_url=os.environ.get("GITHUB_SERVER_URL"))


def run(args: argparse.Namespace) -> int:
    """Check every target, read the predicate, obtain one PK token, attest each target."""
    from opkey.cli._common import write_new_file
    from opkey.cli.progress import Progress
    from opkey.cli.registry_options import RegistryOptions
    from opkey.cli.sign import signer_from_args, timestamp_clients_from_args
    from opkey.cli.targets import collect_targets, sign_jobs
    from opkey.cli.verification import ATTESTATION_SUFFIX
    from opkey.errors import ConfigError
    from opkey.http import Deadline
    from opkey.intoto import SLSA_PROVENANCE_V1, Statement, Subject, predicate_type_uri

    predicate_type = predicate_type_uri(args.type)
    targets = collect_targets(
        files=args.file, digests=args.digest, images=args.image, command="attest"
    )
    jobs = sign_jobs(targets, args.bundle, suffix=ATTESTATION_SUFFIX)
    predicate = _read_predicate(args.predicate)
    if predicate is None and predicate_type != SLSA_PROVENANCE_V1:
        raise ConfigError(
            f"give the predicate with --predicate FILE: opkey writes only SLSA provenance "
            f"({SLSA_PROVENANCE_V1}) itself"
        )
    if predicate is None and args.provider in ("browser", "device") and not args.session:
        raise ConfigError(
            "opkey writes SLSA provenance from a CI job's ID token (GitHub Actions, GitLab CI); "
            "a login is no build: give --predicate FILE"
        )
    registry = RegistryOptions.from_args(args)
    clients = timestamp_clients_from_args(args)
    if len(clients) > 1 and any(job.target.image is not None for job in jobs):
        raise ConfigError(
            "an attestation layer carries one RFC 3161 timestamp: give one --timestamp-url "
            "when attesting images"
        )
    from opkey.cli.tlog_options import tlog_client

    tlog = tlog_client(args)
    deadline = Deadline.after(args.timeout)
    progress = Progress()
    signer = signer_from_args(args, progress, deadline, clients, tlog)
    content = _predicate_for(predicate, predicate_type, signer)
    subject = signer.pktoken.claims.get("sub")
    as_whom = f"as {subject} (issuer {signer.pktoken.issuer})"
    for job in jobs:
        target = job.target
        if target.image is not None:
            from opkey.images import attest_image

            progress.step(f"attesting {target.image} in its registry")
            client = registry.client(str(target.image), deadline)
            reference = attest_image(
                client,
                target.image,
                signer,
                predicate_type,
                content,
                deadline=deadline,
                storage=args.storage,
            )
            print(f"opkey: attested {predicate_type} for {reference} {as_whom}", file=sys.stderr)
            continue
        assert target.digest is not None
        statement = Statement.about(
            [Subject.of(_subject_name(target), target.digest)], predicate_type, content
        )
        data = signer.attest(statement).to_json()
        what = f"{target.text} ({target.digest})" if target.kind == "file" else target.text
        if job.out in (None, "-"):
            sys.stdout.write(data.decode())
            sys.stdout.flush()
            print(f"opkey: attested {predicate_type} for {what} {as_whom}", file=sys.stderr)
        else:
            write_new_file(Path(job.out), data)
            print(
                f"opkey: attested {predicate_type} for {what} {as_whom} -> {job.out}",
                file=sys.stderr,
            )
    return 0
