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
from typing import TYPE_CHECKING, Any

from opkey.cli.signing import ATTEST, add_signing_arguments
from opkey.cli.targets import add_target_arguments

if TYPE_CHECKING:
    from opkey.cli.targets import Target
    from opkey.signer import Signer

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``attest`` options."""
    add_target_arguments(parser, verb=ATTEST.verb)
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
    add_signing_arguments(parser, ATTEST)


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
    from opkey.cli.signing import signing_jobs, start_signing, write_bundle
    from opkey.errors import ConfigError
    from opkey.intoto import SLSA_PROVENANCE_V1, Statement, Subject, predicate_type_uri

    predicate_type = predicate_type_uri(args.type)
    jobs = signing_jobs(args, ATTEST)
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
    signing = start_signing(args, jobs, ATTEST)
    signer = signing.signer
    content = _predicate_for(predicate, predicate_type, signer)
    for job in jobs:
        target = job.target
        if target.image is not None:
            from opkey.images import attest_image

            reference = attest_image(
                signing.registry_client(target),
                target.image,
                signer,
                predicate_type,
                content,
                deadline=signing.deadline,
                storage=args.storage,
            )
            print(
                f"opkey: attested {predicate_type} for {reference} {signing.as_whom}",
                file=sys.stderr,
            )
            continue
        assert target.digest is not None
        statement = Statement.about(
            [Subject.of(_subject_name(target), target.digest)], predicate_type, content
        )
        attested = f"attested {predicate_type} for {target.described} {signing.as_whom}"
        write_bundle(job, signer.attest(statement).to_json(), attested)
    return 0
