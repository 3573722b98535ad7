"""``opkey verify``: check who signed a file, a digest or an image, against a policy.

Exit status: 0 verified, 1 rejected (the reason is printed), 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from opkey.cli._common import time_argument

if TYPE_CHECKING:
    from opkey.cli.verification import Outcome
    from opkey.verification.verdict import SignatureOutcome

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="verify signatures on a file, digest or image against an identity policy",
        description=(
            "Verify that a file, digest or container image was signed by the identity a "
            "policy names. A policy is required: --policy FILE, or --issuer with identity flags."
        ),
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--digest", metavar="sha256:HEX", help="verify a digest")
    target.add_argument("--file", metavar="PATH", help="verify a file (its SHA-256 digest)")
    target.add_argument("image", nargs="?", metavar="IMAGE_REF", help="verify a container image")
    parser.add_argument(
        "--bundle",
        action="append",
        metavar="FILE",
        help="signature bundle (repeat for multi-signer policies; default for --file: "
        "PATH.opkey.json)",
    )
    who = parser.add_argument_group("identity policy")
    who.add_argument("--policy", metavar="FILE", help="policy file (TOML); see spec/policy-file.md")
    who.add_argument("--issuer", metavar="URL", help="the trusted issuer (exact URL)")
    who.add_argument("--subject", metavar="SUB", help="required 'sub' claim (exact)")
    who.add_argument("--github-repository", metavar="OWNER/REPO")
    who.add_argument("--github-repository-id", metavar="ID", help="stable repository id")
    who.add_argument("--github-owner", metavar="OWNER")
    who.add_argument("--github-owner-id", metavar="ID", help="stable owner id")
    who.add_argument("--github-ref", metavar="REF", help="e.g. refs/heads/main")
    who.add_argument(
        "--github-workflow-ref", metavar="REF", help="OWNER/REPO/.github/workflows/F@REF"
    )
    who.add_argument("--github-job-workflow-ref", metavar="REF")
    who.add_argument("--github-environment", metavar="NAME")
    who.add_argument("--gitlab-project", metavar="GROUP/PROJECT")
    who.add_argument("--gitlab-project-id", metavar="ID")
    who.add_argument("--gitlab-ref", metavar="REF", help="branch or tag name")
    who.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="required claim value (exact; repeatable)",
    )
    who.add_argument(
        "--claim-glob",
        action="append",
        default=[],
        metavar="NAME=GLOB",
        help="claim glob: * and ? do not match '/', ** matches anything",
    )
    who.add_argument(
        "--claim-regex",
        action="append",
        default=[],
        metavar="NAME=REGEX",
        help="claim regex, always fully anchored",
    )
    who.add_argument(
        "--unsafe-any-signer",
        action="store_true",
        help="accept any signer the issuer vouches for (no identity check)",
    )
    settings = parser.add_argument_group("issuer settings (for issuers without a preset)")
    settings.add_argument("--commitment", choices=["aud", "nonce", "gq-bound", "key-bound"])
    settings.add_argument("--client-id", metavar="ID", help="audience for nonce commitments")
    settings.add_argument(
        "--expiry",
        metavar="POLICY",
        help="oidc, 12h, 24h, 48h, 1w or never (default: never; see spec/time.md)",
    )
    keys = parser.add_argument_group("provider keys")
    keys.add_argument("--jwks", metavar="FILE", help="pinned JWKS of the issuer (no network)")
    keys.add_argument(
        "--jwks-archive",
        metavar="DIR|FILE",
        help="JWKS archive to consult after the live keys, and to record them in",
    )
    keys.add_argument(
        "--offline",
        action="store_true",
        help="make no network request (needs --jwks or --jwks-archive)",
    )
    keys.add_argument(
        "--trust-policy-anchors",
        action="store_true",
        help="the --policy file is trusted configuration: use the key files and archives it "
        "names and its changes to well-known issuers' settings (without this they are refused: "
        "a policy file from elsewhere must not choose keys or redefine an issuer)",
    )
    parser.add_argument(
        "--at",
        type=time_argument,
        metavar="TIME",
        help="verify as of this time (RFC 3339 or epoch seconds; default now)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST",
        help="allow plain http to this registry (loopback always may)",
    )
    parser.set_defaults(run=run)


def _signature_json(outcome: SignatureOutcome) -> dict[str, Any]:
    from opkey.jose import thaw_json

    entry: dict[str, Any] = {"index": outcome.index, "label": outcome.label}
    identity = outcome.identity
    if identity is None:
        entry.update(verified=False, ignored=outcome.ignored, error=outcome.reason)
        entry["kind"] = outcome.kind
        return entry
    entry.update(
        verified=True,
        issuer=identity.issuer,
        subject=identity.subject,
        claims=thaw_json(identity.claims),
        op_algorithm=identity.op_algorithm,
        signature_algorithm=identity.signature_algorithm,
        key_thumbprint=identity.key_thumbprint,
        key_source=identity.key_source,
        issued_at=identity.issued_at.isoformat(),
    )
    return entry


def _print_result(args: argparse.Namespace, outcome: Outcome) -> None:
    from opkey.cli._common import emit_json

    verdict = outcome.verdict
    if args.json:
        document: dict[str, Any] = {
            "verified": True,
            "target": outcome.target,
            "digest": str(outcome.digest),
        }
        if outcome.image is not None:
            document["image"] = outcome.image
        document["requirements"] = [
            {"name": r.name, "met": r.met, "signature": r.signature} for r in verdict.requirements
        ]
        document["signers"] = {
            r.name: verdict.signatures[r.signature].label
            for r in verdict.requirements
            if r.signature is not None
        }
        document["signatures"] = [_signature_json(s) for s in verdict.signatures]
        emit_json(document)
        return
    print(f"Verified: {outcome.target}")
    for identity in verdict.signers:
        claims = identity.claims
        print(f"  signed by {identity.subject}")
        rows = [("issuer", identity.issuer)]
        rows += [
            (name, str(claims[name]))
            for name in (
                "repository",
                "repository_id",
                "workflow_ref",
                "ref",
                "sha",
                "project_path",
            )
            if name in claims
        ]
        rows.append(
            (
                "ID token",
                f"issued {identity.issued_at:%Y-%m-%dT%H:%M:%SZ} (key from "
                f"{identity.key_source}; signing time is not attested)",
            )
        )
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"    {name:<{width}}  {value}")
    for signature in verdict.rejected:
        print(f"  not counted: {signature.label}: {signature.reason}")
    for signature in verdict.ignored:
        print(f"  ignored: {signature.label}: {signature.reason}")


def run(args: argparse.Namespace) -> int:
    """Verify and report; see the module doc for exit codes."""
    from opkey.cli import EXIT_REJECTED
    from opkey.cli.verification import VerificationRequest, verify_request
    from opkey.errors import VerificationError

    request = VerificationRequest.from_args(args)
    try:
        outcome = verify_request(request)
    except VerificationError as exc:
        if args.json:
            from opkey.cli._common import emit_json

            emit_json({"verified": False, "error": str(exc), "kind": type(exc).__name__})
        from opkey.cli._common import with_hint

        print(f"opkey: rejected: {with_hint(exc)}", file=sys.stderr)
        return EXIT_REJECTED
    _print_result(args, outcome)
    return 0
