"""SLSA provenance v1 made from a CI job's ID token, and checked against the signer's token.

**Making it.** A CI job that attests ``--type slsaprovenance1`` without a predicate gets the
provenance written by opkey from the claims of its own ID token (the PK token it signs with)
and the server URL of its runner, the way GitHub's ``actions/attest-build-provenance`` writes
it (``@actions/attest``, ``provenance.ts``, build type
``https://actions.github.io/buildtypes/workflow/v1``):

* ``buildDefinition.buildType``: GitHub's workflow build type;
* ``externalParameters.workflow``: ``ref``, ``repository`` (``<server>/<repository>``) and
  ``path`` of the workflow, from ``workflow_ref``;
* ``internalParameters.github``: ``event_name``, ``repository_id``, ``repository_owner_id``,
  ``runner_environment``;
* ``resolvedDependencies``: the repository at its commit, ``git+<server>/<repository>@<ref>``
  with ``digest.gitCommit`` = ``sha``;
* ``runDetails.builder.id``: ``<server>/<job_workflow_ref>``; ``metadata.invocationId``:
  ``<server>/<repository>/actions/runs/<run_id>/attempts/<run_attempt>``.

GitLab CI jobs get the same shape under opkey's GitLab build type (:data:`GITLAB_BUILD_TYPE`,
``spec/attestations.md``), from GitLab's claims: the project at ``ref_path`` and ``sha``, the
pipeline definition ``ci_config_ref_uri`` as the builder (as Fulcio names GitLab's build
signer), the job as the invocation.

**Checking it.** Provenance is text its signer wrote; what the signer *is* comes from its token.
:func:`check_provenance` requires the two to agree: the builder, the source repository (by
its numeric ids too), the commit, the ref and the run in the predicate must be the signer's
own, so a workflow cannot attest that another repository or another builder made an artifact.
For GitHub's own issuer the server must be ``https://github.com``; for other issuers (GitHub
Enterprise Server, Forgejo, a development provider) it is read from the predicate and must be
an ``https`` origin, and every other field is still pinned to the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opkey.errors import ConfigError, PolicyError
from opkey.issuers import GITHUB_ACTIONS_ISSUER
from opkey.jose import thaw_json

__all__ = [
    "GITHUB_BUILD_TYPE",
    "GITHUB_SERVER",
    "GITLAB_BUILD_TYPE",
    "check_provenance",
    "github_provenance",
    "gitlab_provenance",
    "is_github_workload",
    "is_gitlab_workload",
    "provenance_for",
]

#: GitHub's build type for workflow runs (what ``actions/attest-build-provenance`` writes).
GITHUB_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
#: opkey's build type for GitLab CI jobs, described in ``spec/attestations.md``.
GITLAB_BUILD_TYPE = "https://github.com/opkey-dev/opkey/blob/main/spec/attestations.md#gitlab-ci-v1"
#: The web server of GitHub's own issuer.
GITHUB_SERVER = "https://github.com"

_GITHUB_NEEDS = (
    "repository",
    "repository_id",
    "repository_owner_id",
    "workflow_ref",
    "job_workflow_ref",
    "ref",
    "sha",
    "run_id",
    "run_attempt",
    "event_name",
)
_GITLAB_NEEDS = (
    "project_path",
    "project_id",
    "namespace_id",
    "ref_path",
    "sha",
    "ci_config_ref_uri",
    "job_id",
    "pipeline_id",
)


@dataclass(frozen=True)
class _Run:
    """What a CI job's token says about its run, as provenance names it: the source repository
    at its commit, the builder and the invocation. Written from the claims and checked
    against them the same way (:func:`_github_run`, :func:`_gitlab_run`)."""

    source: str
    commit: str
    builder_id: str
    invocation_id: str


def _github_run(c: Mapping[str, Any], server: str) -> _Run:
    return _Run(
        source=f"git+{server}/{c['repository']}@{c['ref']}",
        commit=str(c["sha"]),
        builder_id=f"{server}/{c['job_workflow_ref']}",
        invocation_id=f"{server}/{c['repository']}/actions/runs/{c['run_id']}"
        f"/attempts/{c['run_attempt']}",
    )


def _gitlab_run(c: Mapping[str, Any], server: str) -> _Run:
    return _Run(
        source=f"git+{server}/{c['project_path']}@{c['ref_path']}",
        commit=str(c["sha"]),
        builder_id=f"https://{c['ci_config_ref_uri']}",
        invocation_id=f"{server}/{c['project_path']}/-/jobs/{c['job_id']}",
    )


def _strings(claims: Mapping[str, Any], names: tuple[str, ...], what: str) -> dict[str, str]:
    missing = [n for n in names if not isinstance(claims.get(n), str) or not claims.get(n)]
    if missing:
        raise ConfigError(
            f"the {what} ID token has no {', '.join(missing)} claim: opkey cannot write "
            "provenance for it (give --predicate)",
            found=missing,
        )
    return {n: claims[n] for n in names}


def _origin(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"{what} must be an http(s) origin, found {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _slsa_predicate(
    *,
    build_type: str,
    external: dict[str, Any],
    internal: dict[str, Any],
    run: _Run,
) -> dict[str, Any]:
    """A SLSA provenance v1 predicate: every CI platform fills the same skeleton (one source
    repository at one commit, one builder, one run), only the values are its own."""
    return {
        "buildDefinition": {
            "buildType": build_type,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": [{"uri": run.source, "digest": {"gitCommit": run.commit}}],
        },
        "runDetails": {
            "builder": {"id": run.builder_id},
            "metadata": {"invocationId": run.invocation_id},
        },
    }


def is_github_workload(claims: Mapping[str, Any]) -> bool:
    """Whether the claims are a GitHub (or Forgejo) Actions workload's."""
    return all(isinstance(claims.get(n), str) for n in ("repository", "run_id", "workflow_ref"))


def is_gitlab_workload(claims: Mapping[str, Any]) -> bool:
    """Whether the claims are a GitLab CI job's."""
    return all(isinstance(claims.get(n), str) for n in ("project_path", "pipeline_id", "job_id"))


def github_provenance(claims: Mapping[str, Any], *, server_url: str) -> dict[str, Any]:
    """SLSA provenance v1 for a GitHub Actions job with these ID token ``claims``."""
    c = _strings(claims, _GITHUB_NEEDS, "GitHub Actions")
    server = _origin(server_url, "GITHUB_SERVER_URL")
    # owner/repo/.github/workflows/main.yml@refs/heads/main -> path, ref (a ref may hold '@').
    relative = c["workflow_ref"].removeprefix(c["repository"] + "/")
    path, _, ref = relative.partition("@")
    internal = {
        "event_name": c["event_name"],
        "repository_id": c["repository_id"],
        "repository_owner_id": c["repository_owner_id"],
    }
    if isinstance(claims.get("runner_environment"), str):
        internal["runner_environment"] = claims["runner_environment"]
    return _slsa_predicate(
        build_type=GITHUB_BUILD_TYPE,
        external={
            "workflow": {"ref": ref, "repository": f"{server}/{c['repository']}", "path": path}
        },
        internal={"github": internal},
        run=_github_run(c, server),
    )


def gitlab_provenance(claims: Mapping[str, Any]) -> dict[str, Any]:
    """SLSA provenance v1 for a GitLab CI job with these ID token ``claims`` (the server is
    the issuer: GitLab's tokens are issued by the instance itself)."""
    c = _strings(claims, _GITLAB_NEEDS, "GitLab CI")
    server = _origin(str(claims.get("iss", "")), "the GitLab issuer")
    internal = {"project_id": c["project_id"], "namespace_id": c["namespace_id"]}
    for name in ("pipeline_source", "runner_environment"):
        if isinstance(claims.get(name), str):
            internal[name] = claims[name]
    return _slsa_predicate(
        build_type=GITLAB_BUILD_TYPE,
        external={
            "pipeline": {
                "ref": c["ref_path"],
                "repository": f"{server}/{c['project_path']}",
                "config": c["ci_config_ref_uri"],
            }
        },
        internal={"gitlab": internal},
        run=_gitlab_run(c, server),
    )


def provenance_for(claims: Mapping[str, Any], *, server_url: str | None) -> dict[str, Any]:
    """The provenance opkey writes for the workload these claims name (GitHub or GitLab)."""
    if is_github_workload(claims):
        return github_provenance(claims, server_url=server_url or GITHUB_SERVER)
    if is_gitlab_workload(claims):
        return gitlab_provenance(claims)
    raise ConfigError(
        "opkey writes SLSA provenance only for GitHub Actions and GitLab CI identities; "
        "give the predicate with --predicate"
    )


# -- checking ----------------------------------------------------------------------------------


def _at(predicate: Any, *path: str) -> Any:
    node = predicate
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _disagree(field: str, found: Any, expected: str) -> PolicyError:
    found = thaw_json(found)
    shown = str(found)[:200] if found is not None else "nothing"
    return PolicyError(
        f"provenance {field} is {shown!r}, but the signer's token says {expected!r}",
        expected=expected,
        found=found,
    )


def _require(predicate: Any, path: tuple[str, ...], expected: str) -> None:
    found = _at(predicate, *path)
    if found != expected:
        raise _disagree(".".join(path), found, expected)


def _server(claims: Mapping[str, Any], repository_url: Any, repository: str) -> str:
    """The web server the provenance names, checked against the issuer where it is known."""
    if not isinstance(repository_url, str) or not repository_url.endswith("/" + repository):
        raise _disagree("repository", repository_url, f"<server>/{repository}")
    server = repository_url[: -len(repository) - 1]
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.netloc or parts.path or parts.query:
        raise _disagree("server", server, "an https origin")
    issuer = claims.get("iss")
    if (
        isinstance(issuer, str)
        and (issuer == GITHUB_ACTIONS_ISSUER or issuer.startswith(GITHUB_ACTIONS_ISSUER + "/"))
        and server != GITHUB_SERVER
    ):
        raise _disagree("server", server, GITHUB_SERVER)
    return server


def check_provenance(predicate: Mapping[str, Any], claims: Mapping[str, Any]) -> None:
    """Raise :class:`PolicyError` unless SLSA provenance ``predicate`` agrees with the verified
    ``claims`` of the token that signed it (see the module documentation)."""
    document = predicate  # read as it is (frozen or plain), never copied
    if is_github_workload(claims):
        c = {n: claims.get(n) for n in _GITHUB_NEEDS}
        if not all(isinstance(v, str) for v in c.values()):
            raise PolicyError("the signer's token lacks the claims provenance is checked against")
        repository = str(c["repository"])
        external = ("buildDefinition", "externalParameters", "workflow")
        server = _server(claims, _at(document, *external, "repository"), repository)
        _require(document, ("buildDefinition", "buildType"), GITHUB_BUILD_TYPE)
        relative = str(c["workflow_ref"]).removeprefix(repository + "/")
        path, _, ref = relative.partition("@")
        _require(document, (*external, "path"), path)
        _require(document, (*external, "ref"), ref)
        internal = ("github", ("repository_id", "repository_owner_id"))
        run = _github_run(c, server)
    elif is_gitlab_workload(claims):
        c = {n: claims.get(n) for n in _GITLAB_NEEDS}
        if not all(isinstance(v, str) for v in c.values()):
            raise PolicyError("the signer's token lacks the claims provenance is checked against")
        server = str(claims.get("iss", "")).rstrip("/")
        project = str(c["project_path"])
        external = ("buildDefinition", "externalParameters", "pipeline")
        _require(document, ("buildDefinition", "buildType"), GITLAB_BUILD_TYPE)
        _require(document, (*external, "repository"), f"{server}/{project}")
        _require(document, (*external, "ref"), str(c["ref_path"]))
        _require(document, (*external, "config"), str(c["ci_config_ref_uri"]))
        internal = ("gitlab", ("project_id", "namespace_id"))
        run = _gitlab_run(c, server)
    else:
        raise PolicyError(
            "SLSA provenance must be signed by the CI job it describes (a GitHub Actions or "
            "GitLab CI identity); this signer is neither, so its builder cannot be checked"
        )
    # The source's stable numeric ids, which its name alone does not pin.
    platform, ids = internal
    for name in ids:
        _require(document, ("buildDefinition", "internalParameters", platform, name), str(c[name]))
    source, commit = run.source, run.commit
    _require(document, ("runDetails", "builder", "id"), run.builder_id)
    _require(document, ("runDetails", "metadata", "invocationId"), run.invocation_id)
    dependencies = _at(document, "buildDefinition", "resolvedDependencies")
    if not isinstance(dependencies, (list, tuple)) or not any(
        isinstance(d, Mapping)
        and d.get("uri") == source
        and isinstance(d.get("digest"), Mapping)
        and d["digest"].get("gitCommit") == commit
        for d in dependencies
    ):
        shown = thaw_json(dependencies)
        raise _disagree("resolvedDependencies", shown, f"{source} at {commit}")
