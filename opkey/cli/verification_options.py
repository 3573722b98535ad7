"""The options ``opkey verify`` and ``opkey verify-attestation`` share after their targets.

The bundles, the identity policy (a policy file, or ``--issuer`` with identity flags), issuer
settings, provider keys (:mod:`opkey.cli.key_options`), signing time
(:mod:`opkey.cli.timestamp_options`), the pinned log (:mod:`opkey.cli.tlog_options`), the time
of verification, output, the deadline and the registry. :mod:`opkey.cli.verification` reads
them into a request.

The workload flags (``--github-*``, ``--gitlab-*``) and the claim matchers (``--claim*``) are
tables: each row declares an option and says what it stands for (the claim it requires, the
kind of match), so the parser and the request are made from the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opkey.cli._common import SPEC, time_argument
from opkey.cli.key_options import add_key_arguments
from opkey.cli.registry_options import add_registry_arguments
from opkey.cli.targets import BUNDLE_SUFFIX
from opkey.cli.timeout_options import add_timeout_argument
from opkey.cli.timestamp_options import add_timestamp_verify_arguments
from opkey.cli.tlog_options import add_tlog_verify_arguments

__all__ = [
    "CLAIM_MATCHERS",
    "GITHUB_FLAGS",
    "GITLAB_FLAGS",
    "Flag",
    "add_verification_arguments",
]


@dataclass(frozen=True)
class Flag:
    """One row of a table of options: the option, what it stands for (``meaning``: the claim
    a workload flag requires, the kind of a claim matcher), its value's name and its help."""

    option: str
    meaning: str
    metavar: str
    help: str

    @property
    def dest(self) -> str:
        """The attribute argparse stores the value in."""
        return self.option.removeprefix("--").replace("-", "_")


#: ``--github-*``: each requires one claim of a GitHub Actions ID token.
GITHUB_FLAGS = (
    Flag(
        "--github-repository",
        "repository",
        "OWNER/REPO",
        "required repository name (a name can change hands: prefer --github-repository-id)",
    ),
    Flag("--github-repository-id", "repository_id", "ID", "required repository id (stable)"),
    Flag(
        "--github-owner",
        "repository_owner",
        "OWNER",
        "required repository owner name (prefer --github-owner-id)",
    ),
    Flag("--github-owner-id", "repository_owner_id", "ID", "required repository owner id (stable)"),
    Flag("--github-ref", "ref", "REF", "required ref, e.g. refs/heads/main"),
    Flag(
        "--github-workflow-ref",
        "workflow_ref",
        "REF",
        "required workflow: OWNER/REPO/.github/workflows/FILE@REF",
    ),
    Flag(
        "--github-job-workflow-ref",
        "job_workflow_ref",
        "REF",
        "required reusable workflow that ran the job (job_workflow_ref): "
        "OWNER/REPO/.github/workflows/FILE@REF",
    ),
    Flag(
        "--github-environment", "environment", "NAME", "required deployment environment of the job"
    ),
)

#: ``--gitlab-*``: each requires one claim of a GitLab CI ID token.
GITLAB_FLAGS = (
    Flag(
        "--gitlab-project",
        "project_path",
        "GROUP/PROJECT",
        "required project path (prefer --gitlab-project-id)",
    ),
    Flag("--gitlab-project-id", "project_id", "ID", "required project id (stable)"),
    Flag("--gitlab-ref", "ref", "REF", "required branch or tag name"),
)

#: ``--claim``, ``--claim-glob``, ``--claim-regex`` (repeatable ``NAME=…``): any claim, by kind.
CLAIM_MATCHERS = (
    Flag("--claim", "equals", "NAME=VALUE", "required claim value (exact; repeatable)"),
    Flag(
        "--claim-glob",
        "glob",
        "NAME=GLOB",
        "claim glob: * and ? do not match '/', ** matches anything",
    ),
    Flag("--claim-regex", "regex", "NAME=REGEX", "claim regex, always fully anchored"),
)


def add_verification_arguments(
    parser: Any, *, kind: str = "signature", suffix: str = BUNDLE_SUFFIX
) -> None:
    """Everything after the targets that ``verify`` and ``verify-attestation`` share; ``kind``
    names the bundles (``signature``, ``attestation``), ``suffix`` a file's default one."""
    parser.add_argument(
        "--bundle",
        action="append",
        metavar="FILE",
        help=f"{kind} bundle of the one --digest or --file (repeat for multi-signer policies; "
        f"default for --file: PATH{suffix})",
    )
    who = parser.add_argument_group("identity policy")
    who.add_argument(
        "--policy", metavar="FILE", help=f"policy file (TOML); see {SPEC}/policy-file.md"
    )
    who.add_argument("--issuer", metavar="URL", help="the trusted issuer (exact URL)")
    who.add_argument("--subject", metavar="SUB", help="required 'sub' claim (exact)")
    for flag in (*GITHUB_FLAGS, *GITLAB_FLAGS):
        who.add_argument(flag.option, metavar=flag.metavar, help=flag.help)
    for flag in CLAIM_MATCHERS:
        who.add_argument(
            flag.option, action="append", default=[], metavar=flag.metavar, help=flag.help
        )
    who.add_argument(
        "--unsafe-any-signer",
        action="store_true",
        help="accept any signer the issuer vouches for (no identity check)",
    )
    settings = parser.add_argument_group("issuer settings (for issuers without a preset)")
    settings.add_argument(
        "--commitment",
        choices=["aud", "nonce", "gq-bound", "key-bound"],
        help="where the issuer's tokens carry the key commitment (well-known issuers have a "
        f"preset; see {SPEC}/protocol.md)",
    )
    settings.add_argument("--client-id", metavar="ID", help="audience for nonce commitments")
    settings.add_argument(
        "--expiry",
        metavar="POLICY",
        help=f"oidc, 12h, 24h, 48h, 1w or never (default: never; see {SPEC}/time.md)",
    )
    add_key_arguments(
        parser,
        offline_note=" (bundles are then verified with no network at all; images are still "
        "read from their registry)",
    )
    add_timestamp_verify_arguments(parser)
    add_tlog_verify_arguments(parser)
    parser.add_argument(
        "--at",
        type=time_argument,
        metavar="TIME",
        help="verify as of this time (RFC 3339 or epoch seconds; default now)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_timeout_argument(parser, default=120.0)  # opkey.images.DEFAULT_VERIFY_TIMEOUT
    add_registry_arguments(parser)
