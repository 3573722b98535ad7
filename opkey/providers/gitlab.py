"""GitLab CI: a PK token from a job's ``id_tokens`` entry, bound to the key by GQ.

GitLab writes ID tokens into environment variables declared in the job configuration::

    sign:
      id_tokens:
        OPENPUBKEY_JWT:
          aud: OPENPUBKEY-PKTOKEN:my-project

Their ``aud`` is fixed by that configuration and cannot carry a per-key commitment. So the
commitment goes into the ``cic`` member of the GQ256 header instead (OpenPubkey's
``GQ_BOUND``), and the ``aud`` must start with ``OPENPUBKEY-PKTOKEN:`` so a token meant for
another audience cannot be bound to a key. Since v0.25 the GQ proof covers its header, so the
``cic`` cannot be swapped afterwards.

The issuer is ``issuer`` if given, else ``OPKEY_DEV_ISSUER`` (dev provider), else
``CI_SERVER_URL`` (self-managed GitLab), else ``https://gitlab.com``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import ClassVar

from opkey import issuers
from opkey.errors import ProviderError
from opkey.http import RequestsTransport, Transport
from opkey.issuers import GITLAB_ISSUER, GQ_AUDIENCE_PREFIX, IssuerConfig
from opkey.jwks.client import JwksClient
from opkey.keys import SigningKey
from opkey.pktoken import PKToken
from opkey.providers.base import CIJobProvider, new_cic, parse_id_token, require_issuer
from opkey.providers.github import DEV_ISSUER_VARIABLE

__all__ = [
    "DEFAULT_TOKEN_VARIABLE",
    "GitLabCIProvider",
]

#: The environment variable OpenPubkey reads the GitLab ID token from.
DEFAULT_TOKEN_VARIABLE = "OPENPUBKEY_JWT"  # noqa: S105 - a variable name, not a secret


def _id_tokens_hint(variable: str) -> str:
    return f"declare it in the job: `id_tokens: {variable}: aud: {GQ_AUDIENCE_PREFIX}<name>`"


@dataclass
class GitLabCIProvider(CIJobProvider):
    """PK tokens from a GitLab CI ID token (see module doc)."""

    JOB_VARIABLE: ClassVar[str] = "GITLAB_CI"

    id_token: str = field(repr=False)
    issuer: str = GITLAB_ISSUER
    transport: Transport = field(default_factory=RequestsTransport, repr=False)
    jwks: JwksClient | None = field(default=None, repr=False)
    audience_prefix: str = GQ_AUDIENCE_PREFIX

    def __post_init__(self) -> None:
        if not self.id_token:
            raise ProviderError(f"no GitLab CI ID token; {_id_tokens_hint(DEFAULT_TOKEN_VARIABLE)}")
        self._use_issuer_keys()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        variable: str = DEFAULT_TOKEN_VARIABLE,
        issuer: str | None = None,
        transport: Transport | None = None,
        jwks: JwksClient | None = None,
    ) -> GitLabCIProvider:
        """The provider for the current job, reading the ID token from ``variable``."""
        env = os.environ if environ is None else environ
        token = env.get(variable, "")
        if not token:
            raise ProviderError(
                f"environment variable {variable} holds no GitLab ID token; "
                f"{_id_tokens_hint(variable)}",
                expected=variable,
            )
        chosen = issuer or env.get(DEV_ISSUER_VARIABLE) or env.get("CI_SERVER_URL") or GITLAB_ISSUER
        return cls(
            id_token=token,
            issuer=chosen,
            transport=transport if transport is not None else RequestsTransport(),
            jwks=jwks,
        )

    def issuer_config(self) -> IssuerConfig:
        """GQ-bound commitment, GQ256 required, ``aud`` prefix checked."""
        config = issuers.gitlab_ci(issuer=self.issuer)
        if self.audience_prefix != GQ_AUDIENCE_PREFIX:
            config = replace(config, gq_audience_prefix=self.audience_prefix)
        return config

    def get_pktoken(
        self, signing_key: SigningKey, *, extra_claims: Mapping[str, str] | None = None
    ) -> PKToken:
        """GQ-sign the job's ID token with the commitment in the GQ header; wrap it."""
        assert self.jwks is not None
        what = "GitLab CI ID token"
        jws, claims = parse_id_token(self.id_token, what=what)
        require_issuer(
            claims,
            self.issuer,
            what=what,
            hint="pass the right issuer (CI_SERVER_URL for self-managed GitLab)",
        )
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a.startswith(self.audience_prefix) for a in audiences):
            raise ProviderError(
                f"{what} audience {aud!r} does not start with {self.audience_prefix!r}; "
                f"{_id_tokens_hint(DEFAULT_TOKEN_VARIABLE)}",
                expected=self.audience_prefix,
                found=aud,
            )
        if jws.alg != "RS256":
            raise ProviderError(f"{what} must be RS256-signed to be GQ-bound, found {jws.alg!r}")
        cic = new_cic(signing_key, extra_claims)
        return self._gq_pktoken(
            self.id_token, jws, cic, signing_key, what=what, gq_cic=cic.commitment()
        )
