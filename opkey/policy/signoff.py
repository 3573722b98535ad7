r"""What must be true of an artifact's signers: one policy, or a sign-off by several named signers.

A :class:`Requirement` is the verifier's statement of *who* must have signed: a list of named
:class:`SignerRequirement`\ s (one for a plain policy, several for a sign-off) and whether each
needs a signer of its own. :meth:`Requirement.evaluate` decides it over the verified claims of
every valid signature; :class:`opkey.verification.Verifier` does that for every caller.

A release may need the build workflow, the scan workflow and the staging deployment to each
sign the same digest. :func:`evaluate_signers` takes those requirements and the verified claims
of *every valid signature* on the artifact, and passes only when every requirement is met::

    result = evaluate_signers(
        [SignerRequirement("build", build_policy), SignerRequirement("scan", scan_policy)],
        [sig.claims for sig in valid_signatures],
    )
    result.raise_for_unmet()  # PolicyError naming each unmet requirement

**Distinct signers** (the default): each requirement needs its *own* signer; one signer can
never satisfy two requirements, even if its claims match both policies. Requirements are
paired with signers by maximum bipartite matching, so the answer does not depend on the order
of signatures (a greedy pass could give the only signer that fits ``scan`` to ``build`` and
wrongly fail). With ``distinct=False``, requirements are independent and one signer may meet
several of them.

**What counts as one signer** (:func:`signer_identity`, spec/policy-file.md). Distinct means
distinct *workloads or people*, never distinct tokens: a CI job can ask for as many ID tokens
as it likes (they differ in ``jti``, ``aud``, ``iat``…), and a person can log in twice. So
signatures are grouped by the claims that name who signed, and never by per-token claims:

* GitHub Actions and Forgejo Actions (a token with ``run_id`` and ``repository_id`` or
  ``repository``): the issuer, the repository (its id, else its name), the workflow run
  (``run_id``; every attempt of a run is the same run), the workflow definition the job runs
  (``job_workflow_ref``) and its deployment ``environment``. A job's tokens always agree on all
  of them. Two jobs of one run are one signer unless they run different workflow definitions
  (a reusable workflow) or deploy to different environments: nothing else in the token tells
  jobs apart, and the jobs of one workflow file are the same author's code at the same commit;
* GitLab CI (``pipeline_id`` and ``project_id``): the issuer, the project, the pipeline and the
  job's ``environment``, by the same reasoning (a job may define several ``id_tokens``);
* everyone else, people's logins included: the issuer and ``sub``, so one person's two logins
  (or logins through two clients) are one signer.

When in doubt they count as one: two requirements are never met by one signer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opkey.errors import ConfigError, PolicyError
from opkey.intoto import SLSA_PROVENANCE_V1, Statement, predicate_type_uri
from opkey.jose import thaw_json
from opkey.policy.claims import Policy
from opkey.policy.predicates import PredicateCondition
from opkey.provenance import check_provenance

__all__ = [
    "Requirement",
    "SignOffResult",
    "SignerIdentity",
    "SignerRequirement",
    "UnmetRequirement",
    "evaluate_signers",
    "signer_identity",
]

_MAX_REASONS = 5


@dataclass(frozen=True, slots=True)
class SignerRequirement:
    """One named signer an artifact needs, and the policy its signer must satisfy.

    Without ``predicate_type`` it is met by a plain signature only. With one, only by an
    attestation (an in-toto statement) of exactly that predicate type whose predicate meets
    every ``predicate`` condition; for SLSA provenance v1 the predicate must moreover agree
    with the signer's own token (:func:`opkey.provenance.check_provenance`): the builder and
    the source repository come from the token, not only from the predicate's text.
    """

    name: str
    policy: Policy
    description: str | None = None
    predicate_type: str | None = None
    predicate: tuple[PredicateCondition, ...] = ()

    def __post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not name or name != name.strip():
            raise ConfigError(
                f"signer requirement name must be a non-empty string without surrounding "
                f"whitespace, found {self.name!r}",
                found=self.name,
            )
        policy: object = self.policy
        if not isinstance(policy, Policy):
            raise TypeError(f"requirement {self.name!r}: policy is {type(self.policy).__name__}")
        description: object = self.description
        if description is not None and not isinstance(description, str):
            raise ConfigError(f"requirement {self.name!r}: description must be a string")
        object.__setattr__(self, "predicate", tuple(self.predicate))
        if self.predicate_type is not None:
            object.__setattr__(self, "predicate_type", predicate_type_uri(self.predicate_type))
        elif self.predicate:
            raise ConfigError(
                f"requirement {self.name!r}: predicate conditions need a predicate_type"
            )
        for condition in self.predicate:
            if not isinstance(condition, PredicateCondition):
                raise TypeError(f"requirement {self.name!r}: {condition!r} is no condition")

    def check(self, claims: Mapping[str, Any], statement: Statement | None = None) -> None:
        """Raise :class:`PolicyError` unless a signature with verified ``claims`` (and, for an
        attestation, the verified ``statement``) meets this requirement."""
        wanted = self.predicate_type
        if wanted is None:
            if statement is not None:
                raise PolicyError(
                    f"it is an attestation ({statement.predicate_type}), and a signature is "
                    "required",
                    found=statement.predicate_type,
                )
        elif statement is None:
            raise PolicyError(
                f"it is a signature, and an attestation of type {wanted} is required",
                expected=wanted,
            )
        elif statement.predicate_type != wanted:
            raise PolicyError(
                f"it attests {statement.predicate_type}, not {wanted}",
                expected=wanted,
                found=statement.predicate_type,
            )
        self.policy.check(claims)
        if statement is not None:
            for condition in self.predicate:
                condition.check(statement.predicate)
            if wanted == SLSA_PROVENANCE_V1:
                check_provenance(statement.predicate, claims)

    def describe(self) -> str:
        """The policy, with the attestation asked for when there is one."""
        text = self.policy.describe()
        if self.predicate_type is not None:
            conditions = "".join(f"; {c.describe()}" for c in self.predicate)
            text = f"an attestation of {self.predicate_type}{conditions}, by {text}"
        return text


@dataclass(frozen=True, slots=True)
class Requirement:
    """Who must have signed: named signer requirements, each with its own signer if ``distinct``.

    Build one with :meth:`of` (one policy: at least one valid signature must satisfy it) or
    :meth:`sign_off` (every named requirement must be met; see the module documentation), or
    from a policy file (:attr:`opkey.policy.file.PolicyFile.requirement`).
    """

    signers: tuple[SignerRequirement, ...]
    distinct: bool = True
    #: A sign-off of named signers (reported by name), rather than one anonymous policy.
    sign_off_named: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "signers", tuple(self.signers))
        _check_requirements(self.signers)

    @classmethod
    def of(
        cls,
        policy: Policy,
        *,
        name: str = "signer",
        predicate_type: str | None = None,
        predicate: Sequence[PredicateCondition] = (),
    ) -> Requirement:
        """One policy that at least one valid signature must satisfy (with ``predicate_type``:
        an attestation of that type, whose predicate meets ``predicate``)."""
        signer = SignerRequirement(
            name, policy, predicate_type=predicate_type, predicate=tuple(predicate)
        )
        return cls((signer,), sign_off_named=False)

    @property
    def predicate_types(self) -> frozenset[str]:
        """The predicate types the requirements ask attestations of."""
        return frozenset(s.predicate_type for s in self.signers if s.predicate_type is not None)

    @property
    def needs_signatures(self) -> bool:
        """Whether some requirement is met by plain signatures (no predicate type)."""
        return any(s.predicate_type is None for s in self.signers)

    @classmethod
    def sign_off(
        cls, signers: Sequence[SignerRequirement], *, distinct: bool = True
    ) -> Requirement:
        """Every one of ``signers`` must be met (by distinct signers unless ``distinct=False``)."""
        return cls(tuple(signers), distinct)

    def evaluate(
        self,
        identities: Sequence[Mapping[str, Any]],
        *,
        labels: Sequence[str] | None = None,
        statements: Sequence[Statement | None] | None = None,
    ) -> SignOffResult:
        """Decide the requirement over the verified claims of every valid signature.

        ``labels`` name the signatures in the reasons given for unmet requirements;
        ``statements`` are the verified in-toto statements of those that are attestations
        (``None`` for plain signatures).
        """
        return evaluate_signers(
            self.signers, identities, distinct=self.distinct, labels=labels, statements=statements
        )


@dataclass(frozen=True, slots=True)
class UnmetRequirement:
    """A requirement no (available) signer met, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class SignOffResult:
    """The outcome of :func:`evaluate_signers`.

    ``assignments`` maps each met requirement to the index (in the ``identities`` given) of the
    signer that met it; ``unmet`` lists the others in requirement order.
    """

    assignments: Mapping[str, int]
    unmet: tuple[UnmetRequirement, ...]
    distinct: bool

    @property
    def ok(self) -> bool:
        """Whether every requirement is met."""
        return not self.unmet

    def raise_for_unmet(self) -> None:
        """Raise :class:`PolicyError` naming every unmet requirement; return if all are met."""
        if self.unmet:
            details = "; ".join(f"{u.name!r}: {u.reason}" for u in self.unmet)
            count = len(self.unmet)
            raise PolicyError(
                f"sign-off incomplete, {count} required signer{'s' if count > 1 else ''} "
                f"missing: {details}",
                expected=[u.name for u in self.unmet],
                found=dict(self.assignments),
            )


def _check_requirements(requirements: Sequence[SignerRequirement]) -> None:
    if not requirements:
        raise ConfigError("sign-off needs at least one signer requirement")
    names = [r.name for r in requirements]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"signer requirement names must be unique; repeated: {duplicates}")


@dataclass(frozen=True, slots=True)
class SignerIdentity:
    """Who made a signature, as far as distinct sign-off is concerned (see the module doc).

    ``kind`` is ``github-actions`` (GitHub and Forgejo Actions workloads), ``gitlab-ci`` or
    ``subject`` (anyone else: issuer and ``sub``); ``claims`` are the claims that name the
    signer, in a fixed order (an absent claim is ``None``). Two signatures with equal
    identities are one signer.
    """

    kind: str
    claims: tuple[tuple[str, Any], ...]

    def describe(self) -> str:
        """A short human form: ``the same GitHub Actions workflow run (…)``."""
        what = _KIND_NAMES[self.kind]
        named = ", ".join(f"{k} {v}" for k, v in self.claims if v is not None and k != "iss")
        return f"the same {what} ({named})"


_KIND_NAMES = {
    "github-actions": "GitHub/Forgejo Actions workload",
    "gitlab-ci": "GitLab CI workload",
    "subject": "subject",
}
_GITHUB_CLAIMS = ("run_id", "job_workflow_ref", "environment")
_GITLAB_CLAIMS = ("iss", "project_id", "pipeline_id", "environment")


def _present(claims: Mapping[str, Any], name: str) -> bool:
    value = claims.get(name)
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value != ""


def signer_identity(claims: Mapping[str, Any]) -> SignerIdentity:
    """The signer of verified ``claims``: a CI workload by its workload claims, anyone else by
    ``iss`` and ``sub`` (see the module documentation for what each issuer's workload is)."""
    if _present(claims, "run_id") and (
        _present(claims, "repository_id") or _present(claims, "repository")
    ):
        # The repository's numeric id, never reused; its name only where the issuer sends no
        # id (older Forgejo releases).
        repository = "repository_id" if _present(claims, "repository_id") else "repository"
        names = ("iss", repository, *_GITHUB_CLAIMS)
        return SignerIdentity("github-actions", tuple((n, _plain(claims.get(n))) for n in names))
    if _present(claims, "pipeline_id") and _present(claims, "project_id"):
        return SignerIdentity(
            "gitlab-ci", tuple((name, _plain(claims.get(name))) for name in _GITLAB_CLAIMS)
        )
    return SignerIdentity("subject", (("iss", claims.get("iss")), ("sub", claims.get("sub"))))


def _plain(value: Any) -> Any:
    """A hashable, comparable form of a claim value (JSON text for anything structured)."""
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return json.dumps(thaw_json(value), sort_keys=True, separators=(",", ":"), default=repr)


def evaluate_signers(
    requirements: Sequence[SignerRequirement],
    identities: Sequence[Mapping[str, Any]],
    *,
    distinct: bool = True,
    labels: Sequence[str] | None = None,
    statements: Sequence[Statement | None] | None = None,
) -> SignOffResult:
    """Match ``requirements`` against the verified claims of every valid signature.

    ``identities`` must come from signatures that already verified (signature, commitment,
    expiry); this function only decides *who* (and, for attestations, with ``statements``,
    *what they attest*). See the module documentation for what ``distinct`` means and what
    counts as one signer.
    """
    _check_requirements(requirements)
    if labels is not None and len(labels) != len(identities):
        raise ValueError("labels must name every identity")
    if statements is not None and len(statements) != len(identities):
        raise ValueError("statements must be given for every identity")

    def name_of(index: int) -> str:
        return labels[index] if labels is not None else f"signer {index}"

    # Signatures grouped by signer (signer_identity), in order of first appearance. A signer
    # meets a requirement if any of its signatures does (their per-token claims may differ).
    groups: dict[SignerIdentity, list[int]] = {}
    for index, claims in enumerate(identities):
        groups.setdefault(signer_identity(claims), []).append(index)
    signers = list(groups.values())
    described = [identity.describe() for identity in groups]

    candidates: list[list[int]] = []  # per requirement: the signers (indices into signers)
    witness: list[dict[int, int]] = []  # per requirement: signer -> the signature that fits
    failures: list[list[str]] = []
    for requirement in requirements:
        fits: dict[int, int] = {}
        why: list[str] = []
        for signer, members in enumerate(signers):
            for index in members:
                try:
                    statement = statements[index] if statements is not None else None
                    requirement.check(identities[index], statement)
                except PolicyError as exc:
                    why.append(f"{name_of(index)}: {exc}")
                else:
                    fits[signer] = index
                    break
        candidates.append(list(fits))
        witness.append(fits)
        failures.append(why)

    if distinct:
        owner = _maximum_matching(candidates)
        assigned = {signer: r for r, signer in enumerate(owner) if signer is not None}
    else:
        owner = [fits[0] if fits else None for fits in candidates]
        assigned = {}

    def shown(r: int, signer: int) -> str:
        used = f"used for {requirements[assigned[signer]].name!r}"
        others = [name_of(i) for i in signers[signer] if i != witness[r][signer]]
        if not others:
            return f"{name_of(witness[r][signer])} ({used})"
        verb = "is" if len(others) == 1 else "are"
        same = f"{', '.join(others)} {verb} {described[signer]}"
        return f"{name_of(witness[r][signer])} ({used}; {same})"

    assignments: dict[str, int] = {}
    unmet: list[UnmetRequirement] = []
    for r, requirement in enumerate(requirements):
        chosen = owner[r]
        if chosen is not None:
            assignments[requirement.name] = witness[r][chosen]
        elif not candidates[r]:
            reason = _no_candidate(len(signers), failures[r])
            unmet.append(UnmetRequirement(requirement.name, reason))
        else:
            taken = ", ".join(shown(r, s) for s in candidates[r])
            unmet.append(
                UnmetRequirement(
                    requirement.name,
                    f"only {taken} satisfies it, and required signers must be distinct",
                )
            )
    return SignOffResult(assignments=assignments, unmet=tuple(unmet), distinct=distinct)


def _no_candidate(count: int, failures: list[str]) -> str:
    if count == 0:
        return "no valid signature"
    shown = "; ".join(failures[:_MAX_REASONS])
    more = f"; and {len(failures) - _MAX_REASONS} more" if len(failures) > _MAX_REASONS else ""
    return f"none of {count} signer{'s' if count > 1 else ''} satisfies it ({shown}{more})"


def _maximum_matching(candidates: list[list[int]]) -> list[int | None]:
    """Kuhn's augmenting-path matching: requirement index -> signer index (or None)."""
    match_of_signer: dict[int, int] = {}

    def augment(r: int, visited: set[int]) -> bool:
        for signer in candidates[r]:
            if signer in visited:
                continue
            visited.add(signer)
            holder = match_of_signer.get(signer)
            if holder is None or augment(holder, visited):
                match_of_signer[signer] = r
                return True
        return False

    for r in range(len(candidates)):
        augment(r, set())
    owner: list[int | None] = [None] * len(candidates)
    for signer, r in match_of_signer.items():
        owner[r] = signer
    return owner
