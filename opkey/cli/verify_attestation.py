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

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``verify-attestation`` options."""
    from opkey.cli.verify import add_verification_arguments

    target = parser.add_argument_group("targets")
    target.add_argument(
        "--digest",
        action="append",
        default=[],
        metavar="sha256:HEX",
        help="verify a digest against its --bundle files (one digest per command)",
    )
    target.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="verify a file by its SHA-256 digest, against PATH.att.opkey.json unless --bundle "
        "is given (repeatable)",
    )
    target.add_argument(
        "image",
        nargs="*",
        metavar="IMAGE_REF",
        help="verify a container image against the attestations in its registry",
    )
    parser.add_argument(
        "--type",
        required=True,
        metavar="URI",
        help="the predicate type attestations must have: a URI, or slsaprovenance1, vuln, "
        "custom, spdxjson, cyclonedx, openvex, link",
    )
    add_verification_arguments(
        parser,
        bundle_help="attestation bundle of the one --digest or --file (repeatable; default "
        "for --file: PATH.att.opkey.json)",
    )


def run(args: argparse.Namespace) -> int:
    """Verify every target's attestations and report, as ``opkey verify`` does."""
    from opkey.cli.verify import run as verify

    return verify(args)
