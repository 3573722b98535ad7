"""Verify attestations of a predicate type on a file, digest or image.

Verify that a file, digest or container image carries an attestation of the --type predicate
type by the identity a policy names. A policy is required: --policy FILE, or --issuer with
identity flags. The requirements are the identity flags, or the policy file's signers that ask
for attestations of that type (when none does: its signers that name no predicate type); each is
met only by an attestation of that type whose envelope signature, PK token and identity verify
as a signature's do and whose statement is about the target's digest. A file is checked against
its attestation bundle, PATH.att.opkey.json unless --bundle names others; an image against the
attestations in its registry (cosign's .att tag and the OCI 1.1 referrers).

Exit status: 0 verified, 1 rejected, 2 usage or input error.
"""

from __future__ import annotations

import argparse

from opkey.cli.targets import ATTESTATION_SUFFIX, add_target_arguments
from opkey.cli.verification_options import add_verification_arguments

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``verify-attestation`` options."""
    add_target_arguments(parser, verb="verify", evidence="attestations", suffix=ATTESTATION_SUFFIX)
    parser.add_argument(
        "--type",
        required=True,
        metavar="URI",
        help="the predicate type attestations must have: a URI, or slsaprovenance1, vuln, "
        "custom, spdxjson, cyclonedx, openvex, link",
    )
    add_verification_arguments(parser, kind="attestation", suffix=ATTESTATION_SUFFIX)


def run(args: argparse.Namespace) -> int:
    """Verify every target's attestations and report, as ``opkey verify`` does."""
    from opkey.cli.verify import run as verify

    return verify(args)
