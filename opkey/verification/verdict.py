"""Verdicts: what every signature turned out to be, and which requirement each one met.

A :class:`Verdict` is the one result of verification that every front end reports: the
command line prints it, image verification returns it, the admission gate caches it. It holds

* a :class:`SignatureOutcome` for every piece of evidence, in the order given: the identity
  that made a genuine signature, or the error that explains why it is not one (or that it is a
  kind of signature opkey does not make, and was ignored);
* a :class:`RequirementOutcome` for every named signer requirement: the signature that met it,
  or why none did.

:meth:`Verifier.verdict <opkey.verification.verifier.Verifier.verdict>` checks each
signature on its own, never stopping at the first failure (a bad signature next to a good one
must not hide the good one); :func:`decide` then decides the requirement over the genuine
signatures only. Deciding is pure: it takes the outcomes, never the evidence or a verifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opkey.digest import Digest
from opkey.errors import (
    ForeignSignatureError,
    OpkeyError,
    PolicyError,
    SignatureError,
    VerificationError,
)
from opkey.policy.signoff import Requirement, SignerRequirement, SignOffResult
from opkey.remote_text import printable

if TYPE_CHECKING:
    from opkey.verification.identity import VerifiedIdentity

__all__ = ["RequirementOutcome", "SignatureOutcome", "Verdict", "decide", "requirement_met"]

#: Signatures named, with their reasons, in one rejection message.
_MAX_REASONS = 10


@dataclass(frozen=True)
class SignatureOutcome:
    """What one piece of evidence turned out to be."""

    index: int
    label: str
    identity: VerifiedIdentity | None = None
    error: OpkeyError | None = field(default=None, compare=False)

    @property
    def genuine(self) -> bool:
        """Whether the signature verified (whoever made it)."""
        return self.identity is not None

    @property
    def ignored(self) -> bool:
        """Whether it is a kind of signature opkey does not make, so it counts for nothing."""
        return isinstance(self.error, ForeignSignatureError)

    @property
    def reason(self) -> str | None:
        """Why the signature is not genuine, or ``None``.

        Printable and bounded: evidence comes from elsewhere (a registry, a file), and its
        text must never drive a terminal.
        """
        return None if self.error is None else printable(str(self.error), limit=500)

    @property
    def kind(self) -> str | None:
        """The name of the error class that explains it, or ``None``."""
        return None if self.error is None else type(self.error).__name__


@dataclass(frozen=True, slots=True)
class RequirementOutcome:
    """One named signer requirement: met by which signature (an index), or why not.

    ``satisfied_by`` lists every genuine signature whose signer satisfies the requirement's
    policy, the one assigned to it included (with distinct signers, one signature is assigned
    to one requirement only).
    """

    name: str
    met: bool
    signature: int | None = None
    reason: str | None = None
    satisfied_by: tuple[int, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The decision over every signature of ``subject``; see the module documentation."""

    subject: Digest
    signatures: tuple[SignatureOutcome, ...]
    requirements: tuple[RequirementOutcome, ...]
    distinct: bool = True
    #: Whether the requirements are a sign-off of named signers (see :class:`Requirement`).
    sign_off: bool = True

    @property
    def accepted(self) -> bool:
        """Whether every requirement is met."""
        return all(r.met for r in self.requirements)

    @property
    def genuine(self) -> tuple[SignatureOutcome, ...]:
        """The signatures that verified, whoever made them."""
        return tuple(s for s in self.signatures if s.genuine)

    @property
    def identities(self) -> tuple[VerifiedIdentity, ...]:
        """Who made each genuine signature, in evidence order."""
        return tuple(s.identity for s in self.signatures if s.identity is not None)

    @property
    def rejected(self) -> tuple[SignatureOutcome, ...]:
        """The signatures that did not verify (not counting ignored ones)."""
        return tuple(s for s in self.signatures if not s.genuine and not s.ignored)

    @property
    def ignored(self) -> tuple[SignatureOutcome, ...]:
        """Signatures of kinds opkey does not make."""
        return tuple(s for s in self.signatures if s.ignored)

    def signer(self, name: str) -> VerifiedIdentity | None:
        """The identity that met requirement ``name``, or ``None``."""
        for requirement in self.requirements:
            if requirement.name == name and requirement.signature is not None:
                return self.signatures[requirement.signature].identity
        return None

    @property
    def accepted_signatures(self) -> tuple[SignatureOutcome, ...]:
        """Genuine signatures whose signer satisfies at least one requirement, in order."""
        wanted = {i for r in self.requirements for i in r.satisfied_by}
        return tuple(s for s in self.signatures if s.index in wanted)

    @property
    def signers(self) -> tuple[VerifiedIdentity, ...]:
        """The identities that met requirements, in requirement order, each once."""
        seen: list[int] = []
        for requirement in self.requirements:
            if requirement.signature is not None and requirement.signature not in seen:
                seen.append(requirement.signature)
        return tuple(i for i in (self.signatures[s].identity for s in seen) if i is not None)

    def raise_if_rejected(self) -> None:
        """Return if accepted; otherwise raise the error that explains the rejection.

        The error class says what went wrong: :class:`PolicyError` when genuine signatures
        exist but not from the required signers; otherwise the class of the signatures' own
        errors when they agree and are verification errors (an expired token:
        :class:`~opkey.errors.ExpiredError`), else :class:`SignatureError`. A single
        signature's own error is raised as it is; otherwise the message names every unmet
        requirement and every signature that did not verify, with the reason.
        """
        if self.accepted:
            return
        counted = [s for s in self.signatures if not s.ignored]
        if not counted:
            ignored = len(self.signatures)
            note = (
                f": its {ignored} signature{'s' if ignored != 1 else ''} carry no PK token "
                "(cosign's own signatures, for example)"
                if ignored
                else ""
            )
            raise SignatureError(f"{self.subject} has no opkey signatures{note}")
        invalid = [s for s in counted if not s.genuine]
        genuine = len(invalid) < len(counted)
        errors = [s.error for s in invalid if s.error is not None]
        if genuine:
            error_class: type[OpkeyError] = PolicyError
        else:
            kinds = {type(e) for e in errors}
            common = kinds.pop() if len(kinds) == 1 else SignatureError
            error_class = common if issubclass(common, VerificationError) else SignatureError
        unmet = [r for r in self.requirements if not r.met]
        if not self.sign_off:
            if not genuine and len(errors) == 1 and isinstance(errors[0], VerificationError):
                raise errors[0]
            message = (
                f"no signature of {self.subject} is from the required signer: "
                f"{unmet[0].reason or 'not met'}"
                if genuine
                else f"no valid signature of {self.subject}"
            )
        else:
            count = len(unmet)
            details = "; ".join(f"{r.name!r}: {r.reason}" for r in unmet)
            message = (
                f"sign-off incomplete, {count} required signer{'s' if count > 1 else ''} "
                f"missing: {details}"
            )
        if invalid:
            listed = "; ".join(f"{s.label}: {s.reason}" for s in invalid[:_MAX_REASONS])
            if len(invalid) > _MAX_REASONS:
                listed += f"; and {len(invalid) - _MAX_REASONS} more"
            message += f"; invalid signatures: {listed}"
        ignored = len(self.signatures) - len(counted)
        if ignored:
            message += (
                f"; {ignored} other signature{'s' if ignored != 1 else ''} ignored "
                "(not opkey signatures)"
            )
        raise error_class(
            message,
            expected=[r.name for r in unmet],
            found={r.name: r.signature for r in self.requirements if r.met},
        )


def _satisfies(signer: SignerRequirement, outcome: SignatureOutcome) -> bool:
    assert outcome.identity is not None
    try:
        signer.check(outcome.identity.claims, outcome.identity.statement)
    except PolicyError:
        return False
    return True


def requirement_met(requirement: Requirement, outcomes: Sequence[SignatureOutcome]) -> bool:
    """Whether the genuine signatures among ``outcomes`` already meet ``requirement``.

    More signatures can never turn a met requirement into an unmet one, so a caller reading a
    lazy source (an image's referrers) may stop here with the same decision.
    """
    return _evaluate(requirement, outcomes).ok


def decide(
    requirement: Requirement, subject: Digest, outcomes: Sequence[SignatureOutcome]
) -> Verdict:
    """The verdict over ``outcomes`` (every signature of ``subject``, checked, in order)."""
    genuine = [o for o in outcomes if o.identity is not None]
    result = _evaluate(requirement, genuine)
    unmet = {u.name: u.reason for u in result.unmet}
    requirements = tuple(
        RequirementOutcome(
            signer.name,
            signer.name in result.assignments,
            genuine[result.assignments[signer.name]].index
            if signer.name in result.assignments
            else None,
            unmet.get(signer.name),
            tuple(o.index for o in genuine if o.identity is not None and _satisfies(signer, o)),
        )
        for signer in requirement.signers
    )
    return Verdict(
        subject, tuple(outcomes), requirements, requirement.distinct, requirement.sign_off_named
    )


def _evaluate(requirement: Requirement, outcomes: Sequence[SignatureOutcome]) -> SignOffResult:
    """``requirement`` over the genuine signatures among ``outcomes``, in their order."""
    genuine = [o for o in outcomes if o.identity is not None]
    identities = [o.identity for o in genuine if o.identity is not None]
    return requirement.evaluate(
        [identity.claims for identity in identities],
        labels=[o.label for o in genuine],
        statements=[identity.statement for identity in identities],
    )
