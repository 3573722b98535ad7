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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opkey.bundle import Bundle
from opkey.cli._common import MAX_INPUT
from opkey.cli.key_options import check_key_flags, trust_options
from opkey.cli.registry_options import RegistryOptions
from opkey.cli.targets import ATTESTATION_SUFFIX, BUNDLE_SUFFIX, image_reference
from opkey.cli.verification_options import CLAIM_MATCHERS, GITHUB_FLAGS, GITLAB_FLAGS
from opkey.digest import Digest
from opkey.errors import ConfigError, NetworkError, VerificationError
from opkey.issuers import (
    GITHUB_ACTIONS_ISSUER,
    GITLAB_ISSUER,
    IssuerConfig,
    issuer_config,
    well_known,
)
from opkey.policy import claims as policies
from opkey.policy.file import (
    IssuerEntry,
    TimestampSettings,
    TlogSettings,
    load_policy_file,
)
from opkey.policy.signoff import Requirement
from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline
from opkey.verification.evidence import AttestationEvidence, BundleEvidence
from opkey.verification.trust import KeyOptions, Trust
from opkey.verification.verdict import Verdict
from opkey.verification.verifier import Verifier

if TYPE_CHECKING:
    from opkey.http import Deadline, HttpResponse, Transport

__all__ = [
    "ATTESTATION_SUFFIX",
    "KeyFetchWatch",
    "Outcome",
    "Plan",
    "VerificationRequest",
    "issuer_config_for",
    "plan",
    "read_evidence",
    "verify_all",
    "verify_request",
]


def _predicate_type(args: argparse.Namespace) -> str | None:
    value = getattr(args, "type", None)
    if value is None:
        return None
    from opkey.intoto import predicate_type_uri

    return predicate_type_uri(value)


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
    #: Whom the flags trust beyond the issuers: provider keys, time-stamping authorities and
    #: the pinned log (no transport: :func:`plan` adds the bounded one).
    keys: KeyOptions = field(default_factory=KeyOptions)
    at: datetime | None = None
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    #: Seconds for all network work of the verification (``--timeout``).
    timeout: float = 120.0
    #: ``verify-attestation --type``: the predicate type attestations must have (a URI).
    predicate_type: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> VerificationRequest:
        """The request for the one target the arguments name (see :meth:`all_from_args`)."""
        requests = cls.all_from_args(args)
        if len(requests) != 1:
            raise ConfigError(f"{len(requests)} targets given where one was expected")
        return requests[0]

    @classmethod
    def all_from_args(cls, args: argparse.Namespace) -> tuple[VerificationRequest, ...]:
        """Collect and cross-check the arguments: one request per target, the same policy.

        Several ``--file`` and several images are verified one after the other against the
        same policy and keys (each file against its ``PATH.opkey.json``); ``--digest`` and
        ``--bundle`` name one target and its signatures, so they stand alone.
        """
        claims: list[tuple[str, str, str]] = []
        for matcher in CLAIM_MATCHERS:
            for item in getattr(args, matcher.dest):
                name, sep, value = item.partition("=")
                if not sep or not name:
                    raise ConfigError(f"{matcher.option} {item!r}: expected NAME=VALUE")
                claims.append((matcher.meaning, name, value))
        github = {f.meaning: getattr(args, f.dest) for f in GITHUB_FLAGS if getattr(args, f.dest)}
        gitlab = {f.meaning: getattr(args, f.dest) for f in GITLAB_FLAGS if getattr(args, f.dest)}
        # Read once for all targets (a --registry-password-stdin password included).
        registry = RegistryOptions.from_args(args)

        common = cls(
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
            keys=trust_options(args),
            at=args.at,
            registry=registry,
            timeout=args.timeout,
            predicate_type=_predicate_type(args),
        )
        digests, files, images = list(args.digest), list(args.file), list(args.image)
        if len(digests) > 1:
            raise ConfigError(
                "verify one --digest at a time: the --bundle files are that digest's signatures"
            )
        if digests and (files or images):
            raise ConfigError(
                "--digest cannot be combined with --file or an image: the --bundle files are "
                "the digest's signatures"
            )
        if len(files) + len(images) > 1 and common.bundles:
            raise ConfigError(
                "--bundle names the signatures of one target; with several targets each file "
                "is verified against its PATH.opkey.json (and each image against the "
                "signatures in its registry)"
            )
        if not (digests or files or images):
            raise ConfigError(
                "nothing to verify: give --file PATH, --digest sha256:HEX with --bundle, or an "
                "image reference (--file and images may be repeated)"
            )
        seen: set[str] = set()
        for text in [*files, *images]:
            if text in seen:
                raise ConfigError(f"{text} is named twice")
            seen.add(text)
        for text in images:
            image_reference(text, command="verify")  # parsed now: a typo stops everything
        requests = (
            [replace(common, digest=d) for d in digests]
            + [replace(common, file=f) for f in files]
            + [replace(common, image=i) for i in images]
        )
        for request in requests:
            request.check()
        return tuple(requests)

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
        check_key_flags(self.keys, policy_file=self.policy_file)
        if self.image is None and not self.bundles and not self.file:
            raise ConfigError("--bundle is required with --digest")
        if self.image is not None and self.bundles:
            raise ConfigError("image signatures live in the registry: drop --bundle")


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
    and a policy file's ``[timestamps]`` and ``[tlog]`` tables."""

    issuers: tuple[IssuerEntry, ...]
    requirement: Requirement
    keys: KeyOptions
    timestamps: TimestampSettings = field(default_factory=TimestampSettings)
    tlog: TlogSettings = field(default_factory=TlogSettings)


class KeyFetchWatch:
    """The live JWKS client's transport, noting failed requests.

    A rejection whose keys could not be fetched calls for other advice (pinned keys, an
    archive, ``--offline``) than one whose keys were there; the transport the key requests go
    through is where that is known for sure, whatever the error is wrapped in later.
    """

    def __init__(self, transport: Transport | None = None) -> None:
        if transport is None:
            # Only verifications that fetch keys build one: offline ones never load opkey.http.
            from opkey.http import RequestsTransport

            transport = RequestsTransport()
        self._transport: Transport = transport
        self.failures = 0

    def request(self, method: str, url: str, **options: Any) -> HttpResponse:
        """Send through the wrapped transport; a :class:`NetworkError` is counted, re-raised."""
        try:
            return self._transport.request(method, url, **options)
        except NetworkError:
            self.failures += 1
            raise


def _bound(deadline: Deadline) -> Transport:
    from opkey.http import RequestsTransport

    return deadline.bound(RequestsTransport())


def plan(request: VerificationRequest, *, key_transport: Transport | None = None) -> Plan:
    """Turn the request into library values; reads the policy file, nothing else.

    ``key_transport`` carries the live key requests (discovery, JWKS) when not offline.
    """
    keys = replace(request.keys, transport=None if request.keys.offline else key_transport)
    if request.policy_file:
        policy_file = load_policy_file(request.policy_file)
        if not policy_file.issuers:
            raise ConfigError(f"{request.policy_file}: list the trusted issuers in [[issuers]]")
        requirement = policy_file.requirement
        if request.predicate_type is not None:
            requirement = _attesting(requirement, request.predicate_type, request.policy_file)
        return Plan(
            policy_file.issuers, requirement, keys, policy_file.timestamps, policy_file.tlog
        )
    issuer = request.issuer or (GITLAB_ISSUER if request.gitlab else GITHUB_ACTIONS_ISSUER)
    entry = IssuerEntry(issuer_config_for(request, issuer))
    requirement = Requirement.of(
        _flag_policy(request, issuer), predicate_type=request.predicate_type
    )
    return Plan((entry,), requirement, keys)


def _attesting(requirement: Requirement, predicate_type: str, source: str) -> Requirement:
    """``verify-attestation --type T --policy P``: the signers of P that ask for attestations of
    T; when none does, every signer that names no predicate type, asking for T."""
    named = tuple(s for s in requirement.signers if s.predicate_type == predicate_type)
    if not named:
        named = tuple(
            replace(s, predicate_type=predicate_type)
            for s in requirement.signers
            if s.predicate_type is None
        )
    if not named:
        raise ConfigError(
            f"{source}: every signer names another predicate type, so none asks for an "
            f"attestation of {predicate_type}"
        )
    return replace(requirement, signers=named)


def read_evidence(path: str) -> BundleEvidence | AttestationEvidence:
    """The bundle at ``path`` (``-``: standard input): a signature bundle, or an attestation
    bundle (by its ``mediaType``), parsed strictly."""
    from opkey.attestation import SignedAttestation, is_attestation_document
    from opkey.dsse import MAX_ENVELOPE_BYTES
    from opkey.files import read_regular_file, read_stream
    from opkey.jose import parse_json_object

    limit = MAX_ENVELOPE_BYTES + 512 * 1024
    if path == "-":
        data = read_stream(sys.stdin.buffer, limit=limit, what="standard input")
    else:
        data = read_regular_file(path, limit=limit, what="input")
    document = parse_json_object(data, what=f"bundle {path}", max_length=limit)
    if is_attestation_document(document):
        return AttestationEvidence.from_bundle(SignedAttestation.from_dict(document), label=path)
    if len(data) > MAX_INPUT:
        raise ConfigError(f"{path}: a signature bundle is at most {MAX_INPUT} bytes")
    return BundleEvidence(Bundle.from_dict(document), label=path)


@dataclass(frozen=True)
class Outcome:
    """What ``opkey verify`` decided for one target, for printing.

    ``verdict`` is the decision when the target was accepted; a rejected target has
    ``error`` (the reason) instead, and ``keys_unreachable`` says whether the issuer's keys
    could not be fetched meanwhile.
    """

    target: str
    digest: Digest | None
    verdict: Verdict | None
    image: str | None = None
    error: VerificationError | None = None
    keys_unreachable: bool = False

    @property
    def verified(self) -> bool:
        """Whether the target was accepted."""
        return self.error is None and self.verdict is not None


def _bundle_paths(request: VerificationRequest) -> list[str]:
    if request.bundles:
        return list(request.bundles)
    assert request.file is not None
    suffix = ATTESTATION_SUFFIX if request.predicate_type is not None else BUNDLE_SUFFIX
    return [f"{request.file}{suffix}"]


def verify_request(request: VerificationRequest) -> Outcome:
    """Run the verification of one target; raises the error that explains a rejection."""
    outcome = verify_all([request])[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome


def verify_all(
    requests: Sequence[VerificationRequest], *, on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Verify each target under one trust (the requests share their policy and keys).

    A rejection is an :class:`Outcome` with its error, so the other targets are still
    verified; any other error (unreadable input, an unreachable registry) is raised.
    ``on_outcome`` sees each outcome as soon as it is decided.
    """
    first = requests[0]
    from opkey.http import Deadline

    # One deadline for all network work: key fetches, registry requests, retries and waits.
    deadline = Deadline.after(first.timeout)
    watch = None if first.keys.offline else KeyFetchWatch(_bound(deadline))
    wanted = plan(first, key_transport=watch)
    verifier = Verifier(
        Trust.build(wanted.issuers, wanted.keys, timestamps=wanted.timestamps, tlog=wanted.tlog)
    )
    if first.unsafe_any_signer and not first.has_identity_flags:
        print(
            "opkey: WARNING: --unsafe-any-signer: no identity is checked; anyone the issuer "
            "vouches for is accepted",
            file=sys.stderr,
        )
    # Every file is hashed and every bundle read before the first verification: an
    # unreadable one stops them all.
    prepared = {
        index: (
            Digest.of_file(request.file) if request.file else Digest(str(request.digest)),
            [read_evidence(path) for path in _bundle_paths(request)],
        )
        for index, request in enumerate(requests)
        if request.image is None
    }
    outcomes: list[Outcome] = []
    for index, request in enumerate(requests):
        failures = watch.failures if watch is not None else 0
        target = request.file or request.image or str(request.digest)
        try:
            outcome = _verify_one(request, verifier, wanted, prepared.get(index), deadline)
        except VerificationError as exc:
            unreachable = watch is not None and watch.failures > failures
            outcome = Outcome(target, None, None, error=exc, keys_unreachable=unreachable)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def _verify_one(
    request: VerificationRequest,
    verifier: Verifier,
    wanted: Plan,
    prepared: tuple[Digest, list[BundleEvidence | AttestationEvidence]] | None,
    deadline: Deadline,
) -> Outcome:
    if prepared is None:
        assert request.image is not None
        # The registry client (and requests) is loaded only for images.
        from opkey.cli.progress import Progress
        from opkey.images import verify_image

        what = "signatures" if request.predicate_type is None else "attestations"
        Progress().step(f"reading the {what} of {request.image} from its registry")
        result = verify_image(
            request.registry.client(request.image, deadline),
            request.image,
            verifier,
            wanted.requirement,
            at=request.at,
            deadline=deadline,
        )
        return Outcome(
            str(result.image), result.verdict.subject, result.verdict, image=str(result.image)
        )
    digest, evidence = prepared
    verdict = verifier.verdict(wanted.requirement, digest, evidence, at=request.at)
    verdict.raise_if_rejected()
    return Outcome(request.file or str(digest), digest, verdict)
