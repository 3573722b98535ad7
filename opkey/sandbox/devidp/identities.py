"""Who the development provider vouches for: a person, OAuth clients, and CI workloads.

These are plain values so tests and demos can describe the identity they need
(``dataclasses.replace`` a default) and then check that exactly those claims reach the
verifier. Claim sets follow the real providers closely, because policies written against the
dev provider should carry over to GitHub Actions and GitLab CI unchanged:

* GitHub Actions ID tokens carry *string* values only (IDs and ``"true"`` included), live five
  minutes, and have ``nbf`` five minutes before ``iat``;
* GitLab CI ``id_tokens`` carry string IDs (``runner_id`` is a number), live an hour, have
  ``nbf`` five seconds before ``iat``, and a static ``aud`` set in the job configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from opkey.http import is_loopback_host

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_REDIRECT_URIS",
    "DevClient",
    "DevUser",
    "GitHubWorkload",
    "GitLabWorkload",
]

#: Client id of the public client the dev provider registers by default.
DEFAULT_CLIENT_ID = "opkey-dev"
#: Loopback redirect URIs of the default client; any port is accepted (RFC 8252 §7.3).
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1/callback",
    "http://localhost/callback",
    "http://[::1]/callback",
    "http://127.0.0.1/login-callback",
    "http://localhost/login-callback",
)

_DEV_SHA = "6a8b9c2d4e1f30718293a4b5c6d7e8f901234567"


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class DevUser:
    """The person the dev provider signs in, without asking, for every browser or device login."""

    sub: str = "dev-user-0001"
    email: str = "dev@example.test"
    email_verified: bool = True
    name: str = "Dev User"
    preferred_username: str = "dev"
    extra_claims: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))

    def claims(self) -> dict[str, Any]:
        """The user's claims as they appear in ID tokens and at the userinfo endpoint."""
        result: dict[str, Any] = {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
            "preferred_username": self.preferred_username,
        }
        result.update(self.extra_claims)
        return result


@dataclass(frozen=True, slots=True)
class DevClient:
    """A registered OAuth client.

    Without ``client_secret`` it is a public client (as native apps are, RFC 8252). Redirect
    URIs match exactly, except that a loopback URI matches on any port, as RFC 8252 §7.3
    requires for apps that listen on an ephemeral port.
    """

    client_id: str = DEFAULT_CLIENT_ID
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS
    client_secret: str | None = None

    def accepts_redirect(self, redirect_uri: str) -> bool:
        """Whether ``redirect_uri`` is registered (loopback: any port)."""
        if redirect_uri in self.redirect_uris:
            return True
        try:
            given = urlsplit(redirect_uri)
            given_port = given.port
        except ValueError:
            return False
        if given.scheme != "http" or not is_loopback_host(given.hostname or ""):
            return False
        if given.fragment or given.username or given.password or given_port is None:
            return False
        for registered in self.redirect_uris:
            reg = urlsplit(registered)
            if (
                reg.scheme == "http"
                and reg.hostname == given.hostname
                and reg.path == given.path
                and reg.query == given.query
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class GitHubWorkload:
    """The GitHub Actions job the dev provider's GitHub-style endpoint mints tokens for.

    Every value is a string, as in GitHub's tokens. :meth:`for_repository` derives the refs
    consistently from a repository, branch and workflow file.
    """

    repository: str = "octo-org/octo-repo"
    repository_id: str = "614000001"
    repository_owner: str = "octo-org"
    repository_owner_id: str = "90000001"
    repository_visibility: str = "private"
    ref: str = "refs/heads/main"
    ref_type: str = "branch"
    ref_protected: str = "true"
    sha: str = _DEV_SHA
    workflow: str = "release"
    workflow_ref: str = "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    workflow_sha: str = _DEV_SHA
    job_workflow_ref: str = "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main"
    job_workflow_sha: str = _DEV_SHA
    event_name: str = "push"
    environment: str | None = None
    runner_environment: str = "github-hosted"
    run_id: str = "9000000001"
    run_number: str = "42"
    run_attempt: str = "1"
    actor: str = "octocat"
    actor_id: str = "583231"
    head_ref: str = ""
    base_ref: str = ""

    @classmethod
    def for_repository(
        cls,
        repository: str,
        *,
        ref: str = "refs/heads/main",
        workflow_file: str = "release.yml",
        **overrides: Any,
    ) -> GitHubWorkload:
        """A workload in ``OWNER/REPO`` on ``ref`` running ``.github/workflows/<workflow_file>``."""
        owner, slash, name = repository.partition("/")
        if not slash or not owner or not name or "/" in name:
            raise ValueError(f"repository must be OWNER/REPO, found {repository!r}")
        workflow_ref = f"{repository}/.github/workflows/{workflow_file}@{ref}"
        ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
        base = cls(
            repository=repository,
            repository_owner=owner,
            ref=ref,
            ref_type=ref_type,
            workflow_ref=workflow_ref,
            job_workflow_ref=workflow_ref,
            workflow=workflow_file.rsplit(".", 1)[0],
        )
        return replace(base, **overrides)

    @property
    def subject(self) -> str:
        """``sub`` in GitHub's default format (environment, pull request, or ref)."""
        if self.environment:
            return f"repo:{self.repository}:environment:{self.environment}"
        if self.event_name in ("pull_request", "pull_request_target"):
            return f"repo:{self.repository}:pull_request"
        return f"repo:{self.repository}:ref:{self.ref}"

    def claims(self, *, issuer: str, audience: str, issued_at: int, jti: str) -> dict[str, Any]:
        """The full claim set of a token issued at ``issued_at`` (lifetime 5 minutes)."""
        result: dict[str, Any] = {
            "jti": jti,
            "sub": self.subject,
            "aud": audience,
            "ref": self.ref,
            "sha": self.sha,
            "repository": self.repository,
            "repository_owner": self.repository_owner,
            "repository_owner_id": self.repository_owner_id,
            "run_id": self.run_id,
            "run_number": self.run_number,
            "run_attempt": self.run_attempt,
            "repository_visibility": self.repository_visibility,
            "repository_id": self.repository_id,
            "actor_id": self.actor_id,
            "actor": self.actor,
            "workflow": self.workflow,
            "head_ref": self.head_ref,
            "base_ref": self.base_ref,
            "event_name": self.event_name,
            "ref_protected": self.ref_protected,
            "ref_type": self.ref_type,
            "workflow_ref": self.workflow_ref,
            "workflow_sha": self.workflow_sha,
            "job_workflow_ref": self.job_workflow_ref,
            "job_workflow_sha": self.job_workflow_sha,
            "runner_environment": self.runner_environment,
            "iss": issuer,
            "nbf": issued_at - 300,
            "exp": issued_at + 300,
            "iat": issued_at,
        }
        if self.environment is not None:
            result["environment"] = self.environment
        return result


@dataclass(frozen=True, slots=True)
class GitLabWorkload:
    """The GitLab CI job whose ``id_tokens`` entry the dev provider mints.

    ``audience`` is what the job configuration fixes (``id_tokens: OPENPUBKEY_JWT: aud:``);
    for OpenPubkey it must start with ``OPENPUBKEY-PKTOKEN:``.
    """

    audience: str = "OPENPUBKEY-PKTOKEN:opkey-dev"
    namespace_id: str = "72"
    namespace_path: str = "my-group"
    project_id: str = "20"
    project_path: str = "my-group/my-project"
    project_visibility: str = "private"
    user_id: str = "1"
    user_login: str = "sample-user"
    user_email: str = "sample-user@example.test"
    pipeline_id: str = "574"
    pipeline_source: str = "push"
    job_id: str = "302"
    ref: str = "main"
    ref_type: str = "branch"
    ref_protected: str = "true"
    environment: str | None = None
    runner_id: int = 1
    runner_environment: str = "gitlab-hosted"
    sha: str = _DEV_SHA
    ci_config_sha: str = _DEV_SHA
    lifetime: int = 3600

    @property
    def ref_path(self) -> str:
        """``refs/heads/…`` or ``refs/tags/…``."""
        kind = "tags" if self.ref_type == "tag" else "heads"
        return f"refs/{kind}/{self.ref}"

    @property
    def subject(self) -> str:
        """``project_path:GROUP/PROJECT:ref_type:TYPE:ref:REF``, GitLab's format."""
        return f"project_path:{self.project_path}:ref_type:{self.ref_type}:ref:{self.ref}"

    def claims(
        self, *, issuer: str, issued_at: int, jti: str, audience: str | None = None
    ) -> dict[str, Any]:
        """The claim set of a token issued at ``issued_at``."""
        host = urlsplit(issuer).netloc
        result: dict[str, Any] = {
            "namespace_id": self.namespace_id,
            "namespace_path": self.namespace_path,
            "project_id": self.project_id,
            "project_path": self.project_path,
            "user_id": self.user_id,
            "user_login": self.user_login,
            "user_email": self.user_email,
            "pipeline_id": self.pipeline_id,
            "pipeline_source": self.pipeline_source,
            "job_id": self.job_id,
            "ref": self.ref,
            "ref_type": self.ref_type,
            "ref_path": self.ref_path,
            "ref_protected": self.ref_protected,
            "runner_id": self.runner_id,
            "runner_environment": self.runner_environment,
            "sha": self.sha,
            "project_visibility": self.project_visibility,
            "ci_config_ref_uri": f"{host}/{self.project_path}//.gitlab-ci.yml@{self.ref_path}",
            "ci_config_sha": self.ci_config_sha,
            "jti": jti,
            "iss": issuer,
            "iat": issued_at,
            "nbf": issued_at - 5,
            "exp": issued_at + self.lifetime,
            "sub": self.subject,
            "aud": audience if audience is not None else self.audience,
        }
        if self.environment is not None:
            result["environment"] = self.environment
        return result
