"""CI workload policies: a GitHub Actions workflow or a GitLab CI job, pinned on stable IDs.

These are the policies most verifiers want: "signed by this repository's release workflow".
They match the claims the CI provider puts in its ID tokens exactly, validate every value at
construction (decimal IDs, full refs, ``owner/name``), and always pin the issuer, so a token
from another trusted issuer can never satisfy them. The matching rules are those of
:mod:`opkey.policy.claims`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from opkey.errors import ConfigError
from opkey.issuers import GITHUB_ACTIONS_ISSUER, GITLAB_ISSUER
from opkey.policy.claims import (
    _PRINTABLE_ASCII,
    _check_equal,
    _non_ascii_note,
    _render,
    _require_text,
)

__all__ = ["GitHubWorkflow", "GitLabPipeline"]

_NUMERIC_ID = re.compile(r"[1-9][0-9]*")
_GIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _check_workload_value(what: str, name: str, value: object, rules: Mapping[str, str]) -> None:
    _require_text(what, value, strip_check=True)
    assert isinstance(value, str)
    rule = rules.get(name, "").split()
    if "ascii" in rule and _PRINTABLE_ASCII.fullmatch(value) is None:
        raise ConfigError(
            f"{what}: {_render(value)} is not printable ASCII{_non_ascii_note(value)}; "
            "these identifiers are ASCII in real tokens",
            found=value,
        )
    if "id" in rule and _NUMERIC_ID.fullmatch(value) is None:
        raise ConfigError(
            f"{what}: expected a decimal ID as the token carries it (a string like "
            f'"433903792"), found {_render(value)}',
            found=value,
        )
    if "sha" in rule and _GIT_SHA.fullmatch(value) is None:
        raise ConfigError(
            f"{what}: expected a full lowercase hex commit SHA, found {_render(value)}",
            found=value,
        )
    if "slash" in rule and value.count("/") != 1:
        raise ConfigError(f"{what}: expected owner/name, found {_render(value)}", found=value)
    if "noslash" in rule and "/" in value:
        raise ConfigError(f"{what}: an owner has no '/', found {_render(value)}", found=value)
    if "fullref" in rule and not value.startswith("refs/"):
        raise ConfigError(
            f"{what}: GitHub refs are full names like refs/heads/main or refs/tags/v1.0, "
            f"found {_render(value)}",
            found=value,
        )
    if "shortref" in rule and value.startswith("refs/"):
        raise ConfigError(
            f"{what}: GitLab's ref claim is the short branch or tag name (main, v1.0), "
            f"found {_render(value)}",
            found=value,
        )
    if "at" in rule and "@" not in value:
        raise ConfigError(
            f"{what}: expected <path>@<ref> (e.g. owner/repo/.github/workflows/f.yml@refs/"
            f"heads/main), found {_render(value)}",
            found=value,
        )
    choices = [c for c in rule if c.startswith("=")]
    if choices and value not in [c[1:] for c in choices]:
        raise ConfigError(
            f"{what}: expected one of {', '.join(c[1:] for c in choices)}, found {_render(value)}",
            found=value,
        )


class _Workload:
    """What the CI workload policies share: validation, matching, description, issuer pin.

    Subclasses are frozen dataclasses that declare ``issuer``, one optional field per claim
    they can pin (:attr:`CLAIMS`, in checking order), the value rules of those claims
    (:attr:`_RULES`), and the two claims of which at least one is required (:attr:`_NEEDS`:
    the stable id first, the name second).
    """

    __slots__ = ()
    issuer: str
    CLAIMS: ClassVar[tuple[str, ...]]
    _RULES: ClassVar[Mapping[str, str]]
    _NEEDS: ClassVar[tuple[str, str]]

    def __post_init__(self) -> None:
        kind = type(self).__name__
        self.check_value("issuer", self.issuer, label=f"{kind}.issuer")
        stable, name = self._NEEDS
        if getattr(self, stable) is None and getattr(self, name) is None:
            raise ConfigError(
                f"{kind} needs {stable} (preferred: stable) or {name}",
                expected=f"{stable} or {name}",
            )
        for claim in self.CLAIMS:
            value = getattr(self, claim)
            if value is not None:
                self.check_value(claim, value, label=f"{kind}.{claim}")

    @classmethod
    def check_value(cls, name: str, value: object, *, label: str) -> None:
        """Validate one field (``issuer`` or a claim name) as the constructor does.

        Raises :class:`ConfigError` whose message starts with ``label`` (for example the key
        path of a policy file), so configuration front ends can report where the value was.
        """
        if name != "issuer" and name not in cls.CLAIMS:
            raise ConfigError(f"{label}: {cls.__name__} has no field {name!r}", found=name)
        _check_workload_value(label, name, value, cls._RULES)

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`PolicyError` at the first claim (issuer first) that differs."""
        _check_equal(claims, "iss", self.issuer)
        for name in self.CLAIMS:
            expected = getattr(self, name)
            if expected is not None:
                _check_equal(claims, name, expected)

    def describe(self) -> str:
        """``GitHubWorkflow(iss == …, repository_id == …)`` and the like."""
        parts = [f"iss == {_render(self.issuer)}"]
        for name in self.CLAIMS:
            expected = getattr(self, name)
            if expected is not None:
                parts.append(f"{name} == {_render(expected)}")
        return f"{type(self).__name__}(" + ", ".join(parts) + ")"

    @property
    def pinned_issuer(self) -> str:
        """The issuer of this workload's tokens (:class:`~opkey.policy.claims.PinsIssuer`)."""
        return self.issuer


@dataclass(frozen=True, slots=True, kw_only=True)
class GitHubWorkflow(_Workload):
    """A GitHub Actions workload, matched exactly on the claims given.

    ``repository`` or ``repository_id`` is required; give ``repository_id`` (and
    ``repository_owner_id``) whenever you can. Names are not identities: a deleted or renamed
    repository (or account) name can be registered again by someone else, and the new owner's
    workflows then carry the old name. The numeric IDs are never reused. Likewise ``sub`` is not
    used here, because repository owners can change its template.

    Every claim GitHub puts in the token is a string, IDs included, so the values here are
    strings (``repository_id="433903792"``). ``ref`` is the full ref (``refs/heads/main``).
    ``workflow_ref``/``job_workflow_ref`` are ``owner/repo/.github/workflows/f.yml@refs/…``;
    pin ``job_workflow_ref`` to trust a reusable workflow rather than its caller.
    For wildcards, combine with :class:`ClaimGlob` in an :class:`AllOf`. ``issuer`` defaults to
    github.com's; GitHub Enterprise Cloud with a custom issuer passes its own.
    """

    repository: str | None = None
    repository_id: str | None = None
    repository_owner: str | None = None
    repository_owner_id: str | None = None
    ref: str | None = None
    ref_type: str | None = None
    workflow_ref: str | None = None
    job_workflow_ref: str | None = None
    job_workflow_sha: str | None = None
    sha: str | None = None
    event_name: str | None = None
    environment: str | None = None
    runner_environment: str | None = None
    issuer: str = GITHUB_ACTIONS_ISSUER

    #: The claims this workload policy can pin, in checking order.
    CLAIMS: ClassVar[tuple[str, ...]] = (
        "repository_id",
        "repository_owner_id",
        "repository",
        "repository_owner",
        "job_workflow_ref",
        "job_workflow_sha",
        "workflow_ref",
        "ref",
        "ref_type",
        "sha",
        "event_name",
        "environment",
        "runner_environment",
    )
    _RULES: ClassVar[Mapping[str, str]] = {
        "repository": "ascii slash",
        "repository_id": "ascii id",
        "repository_owner": "ascii noslash",
        "repository_owner_id": "ascii id",
        "ref": "fullref",
        "ref_type": "ascii =branch =tag",
        "workflow_ref": "at",
        "job_workflow_ref": "at",
        "job_workflow_sha": "ascii sha",
        "sha": "ascii sha",
        "event_name": "ascii",
        "runner_environment": "ascii",
    }
    _NEEDS: ClassVar[tuple[str, str]] = ("repository_id", "repository")


@dataclass(frozen=True, slots=True, kw_only=True)
class GitLabPipeline(_Workload):
    """A GitLab CI job (``id_tokens``), matched exactly on the claims given.

    ``project_path`` or ``project_id`` is required; prefer ``project_id`` (and
    ``namespace_id``): paths change when projects are renamed or transferred, and a freed path
    can be taken by another project. GitLab's claims are strings (``project_id="42"``,
    ``ref_protected="true"``); ``ref`` is the short branch or tag name (``main``), with
    ``ref_type`` ``branch`` or ``tag``. For merge-request pipelines from forks, GitLab sets the
    ``project_*`` claims to the fork. ``issuer`` defaults to gitlab.com; self-managed
    instances pass their URL.
    """

    project_path: str | None = None
    project_id: str | None = None
    namespace_path: str | None = None
    namespace_id: str | None = None
    ref: str | None = None
    ref_type: str | None = None
    ref_protected: str | None = None
    pipeline_source: str | None = None
    environment: str | None = None
    environment_protected: str | None = None
    deployment_tier: str | None = None
    ci_config_ref_uri: str | None = None
    ci_config_sha: str | None = None
    sha: str | None = None
    runner_environment: str | None = None
    issuer: str = GITLAB_ISSUER

    #: The claims this workload policy can pin, in checking order.
    CLAIMS: ClassVar[tuple[str, ...]] = (
        "project_id",
        "namespace_id",
        "project_path",
        "namespace_path",
        "ci_config_ref_uri",
        "ci_config_sha",
        "ref",
        "ref_type",
        "ref_protected",
        "sha",
        "pipeline_source",
        "environment",
        "environment_protected",
        "deployment_tier",
        "runner_environment",
    )
    _RULES: ClassVar[Mapping[str, str]] = {
        "project_path": "ascii",
        "project_id": "ascii id",
        "namespace_path": "ascii",
        "namespace_id": "ascii id",
        "ref": "shortref",
        "ref_type": "ascii =branch =tag",
        "ref_protected": "=true =false",
        "environment_protected": "=true =false",
        "pipeline_source": "ascii",
        "deployment_tier": "ascii",
        "ci_config_ref_uri": "at",
        "ci_config_sha": "ascii sha",
        "sha": "ascii sha",
        "runner_environment": "ascii",
    }
    _NEEDS: ClassVar[tuple[str, str]] = ("project_id", "project_path")
