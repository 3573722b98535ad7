"""Watch a transparency log for the signatures made under your identities.

One round per run, from the state the last run kept (``--state FILE``): verify the log's new
checkpoint under the pinned key and origin and its consistency with the kept one, read every
new entry and check that they make the tree the checkpoint signs, verify the PK token of every
entry that claims a watched identity, and report (:mod:`opkey.tlog.monitor`):

* the genuine entries under the watched identities, with their run, workflow and time, for
  the owner to recognise;
* separately, the entries that claim a watched identity and do not prove it;
* a forked log: a checkpoint inconsistent with the kept one (both signed checkpoints are
  printed, the evidence). The state is then left as it was.

Exit status: 0 nothing to act on, 1 a fork or entries that claim an identity falsely, 2 usage
or input errors (a log that cannot be read, a checkpoint that does not verify).

The log is Rekor v1 (``--log`` its URL) when ``--log-origin`` has v1's form
``"<hostname> - <tree ID>"``, else Rekor v2 (``--log`` the base URL of its tiles).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.cli._common import SPEC
from opkey.cli.key_options import add_key_arguments
from opkey.cli.timeout_options import add_timeout_argument
from opkey.errors import ConfigError

if TYPE_CHECKING:
    from opkey.policy.claims import Policy
    from opkey.policy.file import IssuerEntry
    from opkey.tlog.monitor import MonitorReport

FORMATTER = argparse.RawDescriptionHelpFormatter

__all__ = ["configure", "run"]

#: The largest state file read (a checkpoint and at most 63 hashes).
_MAX_STATE = 64 * 1024


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``monitor`` options."""
    log = parser.add_argument_group("the log")
    log.add_argument(
        "--log", required=True, metavar="URL", help="Rekor v1 URL, or a Rekor v2 log's tiles"
    )
    log.add_argument(
        "--log-key", required=True, metavar="FILE", help="the log's public key (PEM or DER)"
    )
    log.add_argument(
        "--log-origin",
        required=True,
        metavar="ORIGIN",
        help="the log's checkpoint origin: '<hostname> - <tree ID>' (Rekor v1) or the hostname",
    )
    log.add_argument(
        "--state",
        required=True,
        metavar="FILE",
        help="where the last checkpoint and tree are kept between runs (created on the first)",
    )
    who = parser.add_argument_group("identities to watch")
    who.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="ISSUER=SUBJECT",
        help="watch this issuer's subject, a glob (* and ? do not match '/', ** matches "
        "anything), e.g. 'https://token.actions.githubusercontent.com=repo:org/app:**' "
        "(repeatable)",
    )
    who.add_argument(
        "--policy",
        metavar="FILE",
        help=f"watch the signers of this policy file, trusting its issuers ({SPEC}/policy-file.md)",
    )
    who.add_argument(
        "--commitment",
        choices=["aud", "nonce", "gq-bound", "key-bound"],
        help="where tokens of an --identity issuer without a preset commit to the key",
    )
    who.add_argument("--client-id", metavar="ID", help="audience for nonce commitments")
    add_key_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_timeout_argument(parser, default=600.0)


def _identities(args: argparse.Namespace) -> tuple[list[IssuerEntry], list[Policy]]:
    """The issuers to trust and the identities to watch, from ``--identity`` or ``--policy``."""
    from opkey.issuers import issuer_config
    from opkey.policy import claims
    from opkey.policy.file import IssuerEntry, load_policy_file

    if bool(args.identity) == bool(args.policy):
        raise ConfigError("name the identities to watch: --identity ISSUER=SUBJECT or --policy")
    if args.policy:
        policy_file = load_policy_file(args.policy)
        if not policy_file.issuers:
            raise ConfigError(f"{args.policy}: list the trusted issuers in [[issuers]]")
        return list(policy_file.issuers), [signer.policy for signer in policy_file.signers]
    entries: dict[str, IssuerEntry] = {}
    policies: list[Policy] = []
    for text in args.identity:
        issuer, sep, subject = text.partition("=")
        if not sep or not issuer or not subject:
            raise ConfigError(f"--identity {text!r}: expected ISSUER=SUBJECT")
        if issuer not in entries:
            settings = {"issuer": issuer}
            if args.commitment:
                settings["commitment"] = args.commitment
            if args.client_id:
                settings["client_id"] = args.client_id
            entries[issuer] = IssuerEntry(issuer_config(settings))
        policies.append(claims.AllOf([claims.Issuer(issuer), claims.ClaimGlob("sub", subject)]))
    return list(entries.values()), policies


def _read_state(path: Path, log: Any) -> Any:
    from opkey.files import read_regular_file
    from opkey.tlog.monitor import MonitorState

    if not path.exists():
        return None
    data = read_regular_file(path, limit=_MAX_STATE, what="monitor state", error=ConfigError)
    return MonitorState.from_json(data, log)


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "time not signed"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_human(report: MonitorReport, origin: str) -> None:
    checkpoint = report.checkpoint
    status = "FORKED" if report.fork is not None else "consistent"
    print(
        f"{origin}: tree {report.previous_size} -> {checkpoint.tree_size} "
        f"({report.entries_read} entries read, {status})"
    )
    for entry in report.watched:
        details = ", ".join(
            f"{name} {entry.claims[name]}"
            for name in ("run_id", "workflow_ref", "job_workflow_ref", "ref", "sha")
            if name in entry.claims
        )
        print(
            f"  signed by {entry.subject} (issuer {entry.issuer}) at index {entry.index}, "
            f"{_when(entry.integrated_time)}" + (f": {details}" if details else "")
        )
    for spoof in report.spoofed:
        print(
            f"  NOT VERIFIED: index {spoof.index} claims {spoof.subject} (issuer "
            f"{spoof.issuer}): {spoof.reason}"
        )
    if report.fork is not None:
        print(f"  FORK: {report.fork.reason}")
        print("  kept checkpoint:")
        print("".join(f"    {line}\n" for line in report.fork.kept.note.to_text().splitlines()))
        print("  served checkpoint:")
        print("".join(f"    {line}\n" for line in report.fork.served.note.to_text().splitlines()))


def run(args: argparse.Namespace) -> int:
    """One monitoring round; see the module doc for exit codes."""
    from opkey.cli import EXIT_OK, EXIT_REJECTED
    from opkey.cli._common import emit_json
    from opkey.cli.key_options import check_key_flags, key_options
    from opkey.files import read_regular_file, write_file_atomically
    from opkey.http import Deadline, RequestsTransport
    from opkey.remote_text import printable
    from opkey.tlog.client import log_reader
    from opkey.tlog.log import TrustedLog
    from opkey.tlog.monitor import Watch, monitor_log, policy_matcher
    from opkey.tlog.note import load_log_public_key
    from opkey.verification.trust import Trust
    from opkey.verification.verifier import Verifier

    if "\n" in args.log_origin or not args.log_origin:
        raise ConfigError("--log-origin is one line (the first of the log's checkpoint)")
    key = read_regular_file(
        Path(args.log_key), limit=16 * 1024, what="transparency log key", error=ConfigError
    )
    log = TrustedLog.pinned(args.log_origin, load_log_public_key(key))
    entries, policies = _identities(args)
    deadline = Deadline.after(args.timeout)
    transport = deadline.bound(RequestsTransport(user_agent="opkey-monitor"))
    keys = key_options(args, transport)
    check_key_flags(keys, policy_file=args.policy)
    verifier = Verifier(Trust.build(entries, keys))
    state_path = Path(args.state)
    state = _read_state(state_path, log)
    reader = log_reader(log, args.log, transport)
    report = monitor_log(reader, log, state, Watch(policy_matcher(policies), verifier))
    if report.state is not None:
        write_file_atomically(state_path, report.state.to_json(), what="monitor state")
    if args.json:
        emit_json(
            {
                "log": log.origin,
                "tree_size": report.checkpoint.tree_size,
                "previous_size": report.previous_size,
                "entries_read": report.entries_read,
                "watched": [entry.to_dict() for entry in report.watched],
                "spoofed": [
                    {**spoof.to_dict(), "reason": printable(spoof.reason, limit=500)}
                    for spoof in report.spoofed
                ],
                "fork": None if report.fork is None else report.fork.to_dict(),
            }
        )
    else:
        _print_human(report, log.origin)
        sys.stdout.flush()
    return EXIT_REJECTED if report.alarm else EXIT_OK
