"""Verify signatures on a file, digest or image against an identity policy.

Verify that a file, digest or container image was signed by the identity a policy names. A
policy is required: --policy FILE, or --issuer with identity flags.

Exit status: 0 every target verified, 1 at least one rejected (each reason is printed), 2 usage
or input error. Several targets (``--file`` repeated, several images) are verified against the
same policy; under ``--json`` one target gives one result document, several give
``{"verified": …, "targets": [one document per target]}``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from opkey.cli.targets import add_target_arguments
from opkey.cli.verification_options import add_verification_arguments

if TYPE_CHECKING:
    from opkey.cli.verification import Outcome
    from opkey.verification.identity import VerifiedIdentity
    from opkey.verification.verdict import SignatureOutcome

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``verify`` options."""
    add_target_arguments(parser, verb="verify", evidence="signatures")
    add_verification_arguments(parser)


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
        signed_at=None if identity.signed_at is None else identity.signed_at.to_dict(),
        log_entries=[
            {
                "origin": logged.origin,
                "log_id": logged.log_id.hex(),
                "log_index": logged.log_index,
                "integrated_time": logged.integrated_time,
            }
            for logged in identity.log_entries
        ],
    )
    if identity.statement is not None:
        entry["predicate_type"] = identity.statement.predicate_type
    return entry


def _result_json(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is not None or outcome.verdict is None:
        error = outcome.error
        return {
            "verified": False,
            "target": outcome.target,
            "error": str(error),
            "kind": type(error).__name__,
        }
    verdict = outcome.verdict
    document: dict[str, Any] = {
        "verified": True,
        "target": outcome.target,
        "digest": str(outcome.digest),
    }
    if outcome.image is not None:
        document["image"] = outcome.image
    document["requirements"] = [
        {
            "name": r.name,
            "met": r.met,
            "signature": r.signature,
            "satisfied_by": list(r.satisfied_by),
        }
        for r in verdict.requirements
    ]
    document["signers"] = {
        r.name: verdict.signatures[r.signature].label
        for r in verdict.requirements
        if r.signature is not None
    }
    document["signatures"] = [_signature_json(s) for s in verdict.signatures]
    return document


#: The claims shown under each signer, in this order, when present.
_SHOWN_CLAIMS = ("repository", "repository_id", "workflow_ref", "ref", "sha", "project_path")


def _print_human(outcome: Outcome) -> None:
    verdict = outcome.verdict
    assert verdict is not None
    print(f"Verified: {outcome.target}")
    identities = [s.identity for s in verdict.accepted_signatures if s.identity is not None]
    signers = [(identity, _rows(identity)) for identity in identities]
    # One width for every signer's rows, so the values line up down the whole report.
    width = max((len(name) for _, rows in signers for name, _ in rows), default=0)
    for identity, rows in signers:
        attested = identity.statement
        verb = "signed" if attested is None else f"attested {attested.predicate_type}"
        print(f"  {verb} by {identity.subject}")
        for name, value in rows:
            print(f"    {name:<{width}}  {value}")
    for signature in verdict.rejected:
        print(f"  not counted: {signature.label}: {signature.reason}")
    for signature in verdict.ignored:
        print(f"  ignored: {signature.label}: {signature.reason}")


def _rows(identity: VerifiedIdentity) -> list[tuple[str, str]]:
    """The report rows of one signer: issuer, the identifying claims, the ID token, and the
    proven signing time with the authority that vouched for it, when there is one."""
    rows = [("issuer", identity.issuer)]
    rows += [
        (name, str(identity.claims[name])) for name in _SHOWN_CLAIMS if name in identity.claims
    ]
    signed_at = identity.signed_at
    rows.append(
        (
            "ID token",
            f"issued {identity.issued_at:%Y-%m-%dT%H:%M:%SZ} (key from {identity.key_source}"
            + ("; signing time is not attested)" if signed_at is None else ")"),
        )
    )
    if signed_at is not None:
        rows.append(("signed at", f"{signed_at.stated()} (while the ID token was valid)"))
        if signed_at.kind == "timestamp":
            rows.append(("timestamp by", signed_at.authority))
            rows.append(("TSA root", f"sha256:{signed_at.authority_id}"))
        else:
            rows.append(("time by log", signed_at.authority))
    for logged in identity.log_entries:
        rows.append(("logged in", f"{logged.origin} at index {logged.log_index}"))
    return rows


def _report_rejection(outcome: Outcome, *, several: bool) -> None:
    from opkey.cli._common import with_hint

    assert outcome.error is not None
    message = with_hint(
        outcome.error, command="verify", origin="keys" if outcome.keys_unreachable else "other"
    )
    prefix = f"{outcome.target}: " if several else ""
    print(f"opkey: rejected: {prefix}{message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Verify every target and report; see the module doc for exit codes."""
    from opkey.cli import EXIT_OK, EXIT_REJECTED
    from opkey.cli._common import emit_json
    from opkey.cli.verification import VerificationRequest, verify_all

    requests = VerificationRequest.all_from_args(args)
    several = len(requests) > 1

    def report(outcome: Outcome) -> None:
        if outcome.error is not None:
            _report_rejection(outcome, several=several)
        elif not args.json:
            _print_human(outcome)
            sys.stdout.flush()

    outcomes = verify_all(requests, on_outcome=report)
    if args.json:
        documents = [_result_json(outcome) for outcome in outcomes]
        if several:
            emit_json({"verified": all(o.verified for o in outcomes), "targets": documents})
        else:
            emit_json(documents[0])
    return EXIT_OK if all(o.verified for o in outcomes) else EXIT_REJECTED
