"""Turning ``opkey verify`` arguments into library values, and those into a verdict.

The command line is a thin shell: arguments become a :class:`VerificationRequest` (checked for
contradictions), the request becomes a :class:`Plan` of library values (trusted issuers read
by the one issuer-settings reader, :func:`opkey.issuers.issuer_config`, key options, and a
:class:`~opkey.policy.signoff.Requirement`), and the library does the rest: it builds the
trust and its key sources (:meth:`opkey.verification.trust.Trust.build`) and decides the
verdict (:meth:`opkey.verification.verifier.Verifier.verdict`).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from opkey.bundle import Bundle
from opkey.cli._common import archive_path, read_input
from opkey.digest import Digest
from opkey.errors import ConfigError
from opkey.issuers import (
    GITHUB_ACTIONS_ISSUER,
    GITLAB_ISSUER,
    IssuerConfig,
    issuer_config,
    well_known,
)
from opkey.policy import claims as policies
from opkey.policy.file import IssuerEntry, TimestampSettings, load_policy_file
from opkey.policy.signoff import Requirement
from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline
from opkey.verification.evidence import BundleEvidence
from opkey.verification.trust import KeyOptions, Trust
from opkey.verification.verdict import Verdict
from opkey.verification.verifier import Verifier

__all__ = ["Outcome", "Plan", "VerificationRequest", "issuer_config_for", "plan", "verify_request"]

_GITHUB_FLAGS = {
    "github_repository": "repository",
    "github_repository_id": "repository_id",
    "github_owner": "repository_owner",
    "github_owner_id": "repository_owner_id",
    "github_ref": "ref",
    "github_workflow_ref": "workflow_ref",
    "github_job_workflow_ref": "job_workflow_ref",
    "github_environment": "environment",
}
_GITLAB_FLAGS = {
    "gitlab_project": "project_path",
    "gitlab_project_id": "project_id",
    "gitlab_ref": "ref",
}


@dataclass(frozen=True)
class VerificationRequest:
    """Everything ``opkey verify`` was asked, validated."""

    digest: str | None = None
    file: str | None = None
    image: str | None = None
    bundles: tuple[str, ...] = ()
    policy_file: str | None = None
    issuer: str | None = None
    subject: str | None = None
    github: dict[str, str] = field(default_factory=dict)
    gitlab: dict[str, str] = field(default_factory=dict)
    claims: tuple[tuple[str, str, str], ...] = ()
    unsafe_any_signer: bool = False
    commitment: str | None = None
    client_id: str | None = None
    expiry: str | None = None
    jwks: str | None = None
    jwks_archive: str | None = None
    offline: bool = False
    trust_policy_anchors: bool = False
    timestamp_certs: tuple[str, ...] = ()
    require_timestamp: bool = False
    at: datetime | None = None
    insecure_registries: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> VerificationRequest:
        """Collect and cross-check the arguments."""
        claims: list[tuple[str, str, str]] = []
        for kind, values in (
            ("equals", args.claim),
            ("glob", args.claim_glob),
            ("regex", args.claim_regex),
        ):
            for item in values:
                name, sep, value = item.partition("=")
                if not sep or not name:
                    raise ConfigError(
                        f"--claim{'' if kind == 'equals' else '-' + kind} "
                        f"{item!r}: expected NAME=VALUE"
                    )
                claims.append((kind, name, value))
        github = {c: getattr(args, f) for f, c in _GITHUB_FLAGS.items() if getattr(args, f)}
        gitlab = {c: getattr(args, f) for f, c in _GITLAB_FLAGS.items() if getattr(args, f)}
        request = cls(
            digest=args.digest,
            file=args.file,
            image=args.image,
            bundles=tuple(args.bundle or ()),
            policy_file=args.policy,
            issuer=args.issuer,
            subject=args.subject,
            github=github,
            gitlab=gitlab,
            claims=tuple(claims),
            unsafe_any_signer=args.unsafe_any_signer,
            commitment=args.commitment,
            client_id=args.client_id,
            expiry=args.expiry,
            jwks=args.jwks,
            jwks_archive=args.jwks_archive,
            offline=args.offline,
            trust_policy_anchors=args.trust_policy_anchors,
            timestamp_certs=tuple(args.timestamp_certs or ()),
            require_timestamp=args.require_timestamp,
            at=args.at,
            insecure_registries=tuple(args.insecure_registry or ()),
        )
        request.check()
        return request

    @property
    def has_identity_flags(self) -> bool:
        """Whether any flag names who must have signed."""
        return bool(self.subject or self.github or self.gitlab or self.claims)

    def check(self) -> None:
        """Reject contradictory or incomplete requests with a message saying what to do."""
        if self.policy_file and (self.issuer or self.has_identity_flags or self.unsafe_any_signer):
            raise ConfigError("--policy cannot be combined with --issuer or identity flags")
        if not self.policy_file:
            if not self.issuer and not self.github and not self.gitlab:
                raise ConfigError(
                    "a policy is required: pass --policy FILE, or --issuer URL with identity "
                    "flags such as --github-repository or --subject"
                )
            if not self.has_identity_flags and not self.unsafe_any_signer:
                raise ConfigError(
                    "no identity to check: add --subject, --github-*, --gitlab-* or --claim "
                    "(or --unsafe-any-signer to accept anyone the issuer vouches for)"
                )
            if self.github and self.gitlab:
                raise ConfigError("--github-* and --gitlab-* flags cannot be combined")
        if self.offline and not (self.jwks or self.jwks_archive or self.policy_file):
            raise ConfigError("--offline needs the issuer's keys: pass --jwks or --jwks-archive")
        if self.trust_policy_anchors and not self.policy_file:
            raise ConfigError("--trust-policy-anchors applies to a --policy file")
        if self.image is None and not self.bundles and not self.file:
            raise ConfigError("--bundle is required with --digest")


def _flag_settings(request: VerificationRequest, issuer: str) -> dict[str, str]:
    """The issuer settings table the flags describe, for :func:`opkey.issuers.issuer_config`."""
    settings = {"issuer": issuer}
    if request.commitment:
        settings["commitment"] = request.commitment
    elif well_known(issuer) is None and (request.github or request.gitlab):
        # --github-*/--gitlab-* flags at another URL (GHES, self-managed GitLab, a dev IdP).
        settings["commitment"] = "aud" if request.github else "gq-bound"
    if request.client_id:
        settings["client_id"] = request.client_id
    if request.expiry:
        settings["expiry"] = request.expiry
    return settings


def issuer_config_for(request: VerificationRequest, issuer: str) -> IssuerConfig:
    """The verification settings for ``issuer`` from the flags, read as a policy file's are."""
    try:
        return issuer_config(_flag_settings(request, issuer))
    except ConfigError as exc:
        # Name the flags, not the settings keys, in the message.
        message = re.sub(
            r"^(commitment|client_id|expiry|leeway)\b",
            lambda m: "--" + m.group(1).replace("_", "-"),
            str(exc),
        )
        raise ConfigError(message, expected=exc.expected, found=exc.found) from None


def _flag_policy(request: VerificationRequest, issuer: str) -> policies.Policy:
    parts: list[policies.Policy] = [policies.Issuer(issuer)]
    if request.github:
        parts.append(GitHubWorkflow(issuer=issuer, **request.github))
    if request.gitlab:
        parts.append(GitLabPipeline(issuer=issuer, **request.gitlab))
    if request.subject:
        parts.append(policies.Subject(request.subject))
    matchers = {
        "equals": policies.ClaimEquals,
        "glob": policies.ClaimGlob,
        "regex": policies.ClaimRegex,
    }
    for kind, name, value in request.claims:
        parts.append(matchers[kind](name, value))
    if request.unsafe_any_signer and len(parts) == 1:
        return policies.AllOf([parts[0], policies.UnsafeNoPolicy()])
    return policies.AllOf(parts)


@dataclass(frozen=True)
class Plan:
    """What the arguments ask for, as library values: issuers, keys and the requirement,
    and a policy file's ``[timestamps]`` table."""

    issuers: tuple[IssuerEntry, ...]
    requirement: Requirement
    keys: KeyOptions
    timestamps: TimestampSettings = field(default_factory=TimestampSettings)


def plan(request: VerificationRequest) -> Plan:
    """Turn the request into library values; reads the policy file, nothing else."""
    keys = KeyOptions(
        jwks_file=Path(request.jwks) if request.jwks else None,
        archive=archive_path(request.jwks_archive) if request.jwks_archive else None,
        offline=request.offline,
        policy_anchors=request.trust_policy_anchors,
        timestamp_certs=tuple(Path(path) for path in request.timestamp_certs),
        require_timestamp=request.require_timestamp,
    )
    if request.policy_file:
        policy_file = load_policy_file(request.policy_file)
        if not policy_file.issuers:
            raise ConfigError(f"{request.policy_file}: list the trusted issuers in [[issuers]]")
        return Plan(policy_file.issuers, policy_file.requirement, keys, policy_file.timestamps)
    issuer = request.issuer or (GITLAB_ISSUER if request.gitlab else GITHUB_ACTIONS_ISSUER)
    entry = IssuerEntry(issuer_config_for(request, issuer))
    return Plan((entry,), Requirement.of(_flag_policy(request, issuer)), keys)


@dataclass(frozen=True)
class Outcome:
    """What ``opkey verify`` decided, for printing: the target and the verdict."""

    target: str
    digest: Digest
    verdict: Verdict
    image: str | None = None


def _bundle_paths(request: VerificationRequest) -> list[str]:
    if request.bundles:
        return list(request.bundles)
    assert request.file is not None
    return [f"{request.file}.opkey.json"]


def verify_request(request: VerificationRequest) -> Outcome:
    """Run the verification; raises the error that explains a rejection."""
    wanted = plan(request)
    verifier = Verifier(Trust.build(wanted.issuers, wanted.keys, timestamps=wanted.timestamps))
    if request.unsafe_any_signer and not request.has_identity_flags:
        print(
            "opkey: WARNING: --unsafe-any-signer: no identity is checked; anyone the issuer "
            "vouches for is accepted",
            file=sys.stderr,
        )
    if request.image is not None:
        if request.bundles:
            raise ConfigError("image signatures live in the registry: drop --bundle")
        # The registry client (and requests) is loaded only for images.
        from opkey.cli.images import registry_client
        from opkey.images import verify_image

        result = verify_image(
            registry_client(request.insecure_registries),
            request.image,
            verifier,
            wanted.requirement,
            at=request.at,
        )
        return Outcome(
            str(result.image), result.verdict.subject, result.verdict, image=str(result.image)
        )
    digest = Digest.of_file(request.file) if request.file else Digest(str(request.digest))
    evidence = [
        BundleEvidence(Bundle.from_json(read_input(path)), label=path)
        for path in _bundle_paths(request)
    ]
    verdict = verifier.verdict(wanted.requirement, digest, evidence, at=request.at)
    verdict.raise_if_rejected()
    return Outcome(request.file or str(digest), digest, verdict)
