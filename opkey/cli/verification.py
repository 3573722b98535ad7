"""Turning ``opkey verify`` arguments into a verifier, a policy and a result.

Kept apart from argument parsing so that the rules (which issuer settings apply, which key
sources are consulted, what "offline" allows) are plain functions with tests of their own.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opkey.cli._common import archive_path as cli_archive_path
from opkey.cli.registry_options import RegistryOptions
from opkey.errors import ConfigError, OpkeyError, PolicyError

if TYPE_CHECKING:
    from opkey.http import Deadline
    from opkey.keysource import KeySource
    from opkey.policy import Policy
    from opkey.policyfile import PolicyFile
    from opkey.verifier import TrustedIssuer, VerifiedIdentity, Verifier
    from opkey.verify import IssuerConfig

__all__ = ["VerificationRequest", "issuer_config_for", "verify_request"]

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
    at: datetime | None = None
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    timeout: float = 120.0

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
            at=args.at,
            registry=RegistryOptions.from_args(args),
            timeout=args.timeout,
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
        if self.image is None and not self.bundles and not self.file:
            raise ConfigError("--bundle is required with --digest")


def issuer_config_for(request: VerificationRequest, issuer: str) -> IssuerConfig:
    """The verification settings for ``issuer``: GitHub/GitLab flags, a preset, or explicit."""
    from opkey import presets
    from opkey.expiry import ExpiryPolicy
    from opkey.verify import CommitmentType, IssuerConfig

    expiry = ExpiryPolicy.parse(request.expiry) if request.expiry else None
    if request.commitment:
        commitment = CommitmentType(request.commitment)
        gq = commitment is not CommitmentType.NONCE
        return IssuerConfig(
            issuer=issuer,
            commitment=commitment,
            algorithms=frozenset({"GQ256"} if gq else {"RS256", "GQ256"}),
            require_gq=gq,
            client_id=request.client_id,
            expiry=expiry or ExpiryPolicy.never(),
        )
    if request.github or issuer == presets.GITHUB_ACTIONS_ISSUER:
        return presets.github_actions(issuer=issuer, expiry=expiry)
    if request.gitlab or issuer == presets.GITLAB_ISSUER:
        return presets.gitlab_ci(issuer=issuer, expiry=expiry)
    if issuer == presets.GOOGLE_ISSUER:
        return presets.google(
            client_id=request.client_id or presets.GOOGLE_CLIENT_ID, expiry=expiry
        )
    if issuer == presets.MICROSOFT_ISSUER:
        return presets.microsoft(
            client_id=request.client_id or presets.MICROSOFT_CLIENT_ID, expiry=expiry
        )
    raise ConfigError(
        f"no preset for issuer {issuer!r}: say where it commits to keys with "
        "--commitment aud|nonce|gq-bound (and --client-id for nonce)"
    )


def _flag_policy(request: VerificationRequest, issuer: str) -> Policy:
    from opkey import policy as p

    parts: list[p.Policy] = [p.Issuer(issuer)]
    if request.github:
        parts.append(p.GitHubWorkflow(issuer=issuer, **request.github))
    if request.gitlab:
        parts.append(p.GitLabPipeline(issuer=issuer, **request.gitlab))
    if request.subject:
        parts.append(p.Subject(request.subject))
    for kind, name, value in request.claims:
        if kind == "equals":
            parts.append(p.ClaimEquals(name, value))
        elif kind == "glob":
            parts.append(p.ClaimGlob(name, value))
        else:
            parts.append(p.ClaimRegex(name, value))
    if request.unsafe_any_signer and len(parts) == 1:
        return p.AllOf([parts[0], p.UnsafeNoPolicy()])
    return p.AllOf(parts)


def _key_sources(
    request: VerificationRequest,
    issuer: str,
    *,
    jwks_file: Path | None,
    archive_path: Path | None,
    client: Any,
) -> list[KeySource]:
    from opkey.keysource import ArchiveKeys, LiveKeys, PinnedKeys

    sources: list[KeySource] = []
    pinned = jwks_file or (Path(request.jwks) if request.jwks else None)
    if pinned is not None:
        sources.append(PinnedKeys.from_file(issuer, pinned))
    elif not request.offline and client is not None:
        sources.append(LiveKeys(client))
    archive = archive_path or (
        cli_archive_path(request.jwks_archive) if request.jwks_archive else None
    )
    if archive is not None:
        from opkey.archive import JwksArchive

        sources.append(ArchiveKeys(JwksArchive(archive)))
    if not sources:
        raise ConfigError(f"no source of keys for {issuer} (offline, without --jwks or archive)")
    return sources


def _jwks_client(issuers: list[str], request: VerificationRequest, deadline: Deadline) -> Any:
    if request.offline:
        return None
    from opkey.http import RequestsTransport
    from opkey.jwks import JwksClient

    observer = None
    if request.jwks_archive:
        from opkey.archive import JwksArchive

        archive = JwksArchive(cli_archive_path(request.jwks_archive))

        def observer(issuer: str, keys: Any, seen_at: datetime) -> None:
            # the archive is a fallback: a full archive must not block verification
            with contextlib.suppress(ConfigError):
                archive.record(issuer, keys, seen_at)

    return JwksClient(issuers, observer=observer, transport=deadline.bound(RequestsTransport()))


def _verifier_and_policy(
    request: VerificationRequest, deadline: Deadline
) -> tuple[Verifier, Policy | None, PolicyFile | None]:
    from opkey.verifier import TrustedIssuer, Verifier

    trusted: list[TrustedIssuer] = []
    if request.policy_file:
        from opkey.policyfile import load_policy_file

        policy_file = load_policy_file(request.policy_file)
        if not policy_file.issuers:
            raise ConfigError(f"{request.policy_file}: list the trusted issuers in [[issuers]]")
        if request.jwks and len(policy_file.issuers) != 1:
            raise ConfigError("--jwks names one issuer's keys; the policy file trusts several")
        client = _jwks_client([e.issuer for e in policy_file.issuers], request, deadline)
        for entry in policy_file.issuers:
            sources = _key_sources(
                request,
                entry.issuer,
                jwks_file=entry.jwks_file,
                archive_path=entry.archive,
                client=client,
            )
            trusted.append(TrustedIssuer(entry.config, sources))
        return Verifier(trusted), None, policy_file
    from opkey import presets

    issuer = request.issuer or (
        presets.GITLAB_ISSUER if request.gitlab else presets.GITHUB_ACTIONS_ISSUER
    )
    config = issuer_config_for(request, issuer)
    client = _jwks_client([issuer], request, deadline)
    sources = _key_sources(request, issuer, jwks_file=None, archive_path=None, client=client)
    return Verifier([TrustedIssuer(config, sources)]), _flag_policy(request, issuer), None


def _bundle_paths(request: VerificationRequest) -> list[str]:
    if request.bundles:
        return list(request.bundles)
    assert request.file is not None
    return [f"{request.file}.opkey.json"]


def verify_request(
    request: VerificationRequest,
) -> tuple[str, list[VerifiedIdentity], dict[str, Any]]:
    """Run the verification; returns what was verified, who signed, and extra report data."""
    from opkey.artifact import Digest
    from opkey.bundle import Bundle
    from opkey.cli._common import read_input
    from opkey.http import Deadline
    from opkey.policy import UnsafeNoPolicy

    deadline = Deadline.after(request.timeout)
    verifier, policy, policy_file = _verifier_and_policy(request, deadline)
    if request.unsafe_any_signer and not request.has_identity_flags:
        import sys

        print(
            "opkey: WARNING: --unsafe-any-signer: no identity is checked; anyone the issuer "
            "vouches for is accepted",
            file=sys.stderr,
        )
    if request.image is not None:
        from opkey.cli.images import verify_image

        if request.bundles:
            raise ConfigError("image signatures live in the registry: drop --bundle")
        return verify_image(request, verifier, policy, policy_file, deadline)
    digest = Digest.of_file(request.file) if request.file else Digest(str(request.digest))
    identities: list[VerifiedIdentity] = []
    failures: list[str] = []
    for path in _bundle_paths(request):
        bundle = Bundle.from_json(read_input(path))
        try:
            identities.append(
                verifier.verify_bundle(
                    bundle, digest, policy=policy or UnsafeNoPolicy(), at=request.at
                )
            )
        except OpkeyError as exc:
            if policy_file is None or isinstance(exc, PolicyError):
                raise
            failures.append(f"{path}: {exc}")
    extra: dict[str, Any] = {"digest": str(digest)}
    if policy_file is not None:
        result = policy_file.evaluate([i.claims for i in identities])
        extra["signers"] = {
            name: identities[index].subject for name, index in result.assignments.items()
        }
        if failures:
            extra["invalid_bundles"] = failures
        try:
            result.raise_for_unmet()
        except PolicyError as exc:
            if not failures:
                raise
            raise PolicyError(f"{exc}; invalid bundles: {'; '.join(failures)}") from None
    return str(digest), identities, extra
