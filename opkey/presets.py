"""Issuer presets: how the common identity providers carry commitments and sign tokens.

These are the verification settings OpenPubkey uses for each provider; a verifier or a policy
file can start from them and pin more. Presets for *signature* verification default to the
``never`` expiry policy because verifying an artifact long after its ID token expired is the
normal case (see ``spec/time.md``); pass another :class:`~opkey.expiry.ExpiryPolicy` to bound
the age of accepted PK tokens.
"""

from __future__ import annotations

from opkey.expiry import ExpiryPolicy
from opkey.verify import CommitmentType, IssuerConfig

__all__ = [
    "CODEBERG_ACTIONS_ISSUER",
    "FORGEJO_ISSUER_SUFFIX",
    "GITHUB_ACTIONS_ISSUER",
    "GITLAB_ISSUER",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_ISSUER",
    "MICROSOFT_CLIENT_ID",
    "MICROSOFT_ISSUER",
    "forgejo_actions",
    "forgejo_issuer_from_request_url",
    "github_actions",
    "gitlab_ci",
    "google",
    "microsoft",
    "oidc",
    "oidc_key_bound",
]

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
#: Forgejo Actions issuers are an instance URL followed by this path.
FORGEJO_ISSUER_SUFFIX = "/api/actions"
#: Codeberg's Forgejo Actions issuer, the best-known Forgejo instance.
CODEBERG_ACTIONS_ISSUER = "https://codeberg.org/api/actions"
GOOGLE_ISSUER = "https://accounts.google.com"
MICROSOFT_ISSUER = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
#: OpenPubkey's public client ids, so PK tokens from OpenPubkey clients verify by default.
GOOGLE_CLIENT_ID = "206584157355-7cbe4s640tvm7naoludob4ut1emii7sf.apps.googleusercontent.com"
MICROSOFT_CLIENT_ID = "096ce0a3-5e72-4da8-9c86-12924b294a01"


def github_actions(
    *, issuer: str = GITHUB_ACTIONS_ISSUER, expiry: ExpiryPolicy | None = None
) -> IssuerConfig:
    """GitHub Actions: ``aud`` commitment, GQ256 required (GitHub signs RS256)."""
    return IssuerConfig(
        issuer=issuer,
        commitment=CommitmentType.AUD,
        algorithms=frozenset({"GQ256"}),
        require_gq=True,
        expiry=expiry or ExpiryPolicy.never(),
    )


def forgejo_actions(
    *, issuer: str = CODEBERG_ACTIONS_ISSUER, expiry: ExpiryPolicy | None = None
) -> IssuerConfig:
    """Forgejo Actions (Codeberg by default): GitHub's scheme on a per-instance issuer, ``aud``
    commitment, GQ256 required."""
    return github_actions(issuer=issuer, expiry=expiry)


def forgejo_issuer_from_request_url(request_url: str) -> str | None:
    """The issuer of the Forgejo instance serving ``ACTIONS_ID_TOKEN_REQUEST_URL``.

    A Forgejo runner's request URL is ``<instance>/api/actions/…``; its tokens are issued by
    ``<instance>/api/actions``. ``None`` when the URL has no such path (GitHub's has not).
    """
    from urllib.parse import urlsplit

    parts = urlsplit(request_url)
    index = parts.path.find(FORGEJO_ISSUER_SUFFIX + "/")
    if index < 0 or not parts.netloc or parts.scheme not in ("http", "https"):
        return None
    return f"{parts.scheme}://{parts.netloc}{parts.path[:index]}{FORGEJO_ISSUER_SUFFIX}"


def gitlab_ci(*, issuer: str = GITLAB_ISSUER, expiry: ExpiryPolicy | None = None) -> IssuerConfig:
    """GitLab CI: GQ-bound commitment, ``aud`` prefixed ``OPENPUBKEY-PKTOKEN:``."""
    return IssuerConfig(
        issuer=issuer,
        commitment=CommitmentType.GQ_BOUND,
        algorithms=frozenset({"GQ256"}),
        require_gq=True,
        expiry=expiry or ExpiryPolicy.never(),
    )


def oidc(
    issuer: str,
    client_id: str,
    *,
    expiry: ExpiryPolicy | None = None,
    allow_gq: bool = False,
) -> IssuerConfig:
    """Any OpenID provider a person signs in to: ``nonce`` commitment, ``client_id`` in ``aud``."""
    return IssuerConfig(
        issuer=issuer,
        commitment=CommitmentType.NONCE,
        algorithms=frozenset({"RS256", "GQ256"} if allow_gq else {"RS256"}),
        client_id=client_id,
        expiry=expiry or ExpiryPolicy.never(),
    )


def google(
    *, client_id: str = GOOGLE_CLIENT_ID, expiry: ExpiryPolicy | None = None, allow_gq: bool = True
) -> IssuerConfig:
    """Google accounts: ``nonce`` commitment, RS256 (or its GQ256 form)."""
    return oidc(GOOGLE_ISSUER, client_id, expiry=expiry, allow_gq=allow_gq)


def microsoft(
    *,
    client_id: str = MICROSOFT_CLIENT_ID,
    issuer: str = MICROSOFT_ISSUER,
    expiry: ExpiryPolicy | None = None,
    allow_gq: bool = True,
) -> IssuerConfig:
    """Microsoft Entra ID (personal accounts tenant by default): ``nonce`` commitment."""
    return oidc(issuer, client_id, expiry=expiry, allow_gq=allow_gq)


def oidc_key_bound(
    issuer: str, client_id: str, *, expiry: ExpiryPolicy | None = None
) -> IssuerConfig:
    """An OpenID provider that binds keys (OpenID Connect Key Binding: Hello, Authentik): ID
    tokens of ``typ`` ``dpop+id_token`` carrying the key in ``cnf.jwk``, ``client_id`` in
    ``aud``."""
    return IssuerConfig(
        issuer=issuer,
        commitment=CommitmentType.KEY_BOUND,
        algorithms=frozenset({"RS256"}),
        client_id=client_id,
        expiry=expiry or ExpiryPolicy.never(),
    )
