"""Trusted issuers: what a verifier trusts about an identity provider, and the well-known ones.

An :class:`IssuerConfig` is everything a verifier pins about one issuer: where its ID tokens
carry the commitment to the ephemeral key (:class:`CommitmentType`), which signature
algorithms it accepts (GQ256 only, for providers whose tokens must not be replayable), the
expiry rule, and the client id or audience prefix. A token never overrides any of it.

The well-known issuers (:func:`github_actions`, :func:`gitlab_ci`, :func:`google`,
:func:`microsoft`, and :func:`oidc` for any login provider) are the settings OpenPubkey uses
for each; :func:`well_known` finds them by URL. They default to the ``never`` expiry policy,
as every :class:`IssuerConfig` does, because verifying an artifact long after its ID token
expired is the normal case (see ``spec/time.md``); pass another
:class:`~opkey.expiry.ExpiryPolicy` to bound the age of accepted PK tokens.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opkey import tables
from opkey.errors import ConfigError
from opkey.expiry import DEFAULT_LEEWAY, EXPIRY_NAMES, ExpiryPolicy
from opkey.keys import ALL_OP_ALGORITHMS

__all__ = [
    "CODEBERG_ACTIONS_ISSUER",
    "FORGEJO_ISSUER_SUFFIX",
    "GITHUB_ACTIONS_ISSUER",
    "GITLAB_ISSUER",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_ISSUER",
    "GQ_AUDIENCE_PREFIX",
    "KEY_BOUND_TYP",
    "MICROSOFT_CLIENT_ID",
    "MICROSOFT_ISSUER",
    "SETTINGS_KEYS",
    "CommitmentType",
    "IssuerConfig",
    "github_actions",
    "gitlab_ci",
    "google",
    "issuer_config",
    "issuer_settings",
    "microsoft",
    "oidc",
    "oidc_key_bound",
    "well_known",
]

#: ``aud`` prefix that GQ-bound ID tokens (GitLab CI) must carry, as in OpenPubkey.
GQ_AUDIENCE_PREFIX = "OPENPUBKEY-PKTOKEN:"


class CommitmentType(enum.Enum):
    """Where the identity provider carries the CIC commitment."""

    NONCE = "nonce"
    AUD = "aud"
    GQ_BOUND = "gq-bound"
    #: OpenID Connect Key Binding: the provider puts the key itself in ``cnf.jwk`` of an ID
    #: token of ``typ`` ``dpop+id_token`` (OpenPubkey's ``KEY_BOUND``; Hello, Authentik).
    KEY_BOUND = "key-bound"


#: The OP ``typ`` of key-bound ID tokens.
KEY_BOUND_TYP = "dpop+id_token"

_CLIENT_ID_COMMITMENTS = frozenset({CommitmentType.NONCE, CommitmentType.KEY_BOUND})


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """What a verifier trusts about one issuer. The token never overrides any of it.

    ``client_id`` is the audience a ``nonce``-committed or key-bound ID token must be issued to;
    ``aud`` and GQ-bound commitments use ``aud`` for other purposes and need none.
    """

    issuer: str
    commitment: CommitmentType
    algorithms: frozenset[str] = frozenset({"RS256"})
    require_gq: bool = False
    expiry: ExpiryPolicy = field(default_factory=ExpiryPolicy.never)
    client_id: str | None = None
    gq_audience_prefix: str = GQ_AUDIENCE_PREFIX

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigError("issuer must be a non-empty string")
        algorithms = frozenset(self.algorithms)
        object.__setattr__(self, "algorithms", algorithms)
        unknown = algorithms - ALL_OP_ALGORITHMS
        if unknown:
            raise ConfigError(
                f"unsupported algorithms {sorted(unknown)}; choose from {sorted(ALL_OP_ALGORITHMS)}"
            )
        if not algorithms:
            raise ConfigError("at least one OP algorithm must be allowed")
        if self.require_gq and algorithms != {"GQ256"}:
            raise ConfigError("require_gq allows only GQ256; set algorithms to {'GQ256'}")
        if self.commitment is CommitmentType.GQ_BOUND and not self.require_gq:
            raise ConfigError("GQ-bound commitments need require_gq=True")
        if self.commitment is CommitmentType.GQ_BOUND and not self.gq_audience_prefix:
            # An empty prefix matches every aud: a token issued for any audience could be bound.
            raise ConfigError("GQ-bound commitments need a non-empty gq_audience_prefix")
        if self.commitment in _CLIENT_ID_COMMITMENTS and not self.client_id:
            raise ConfigError(
                f"issuer {self.issuer}: {self.commitment.value} commitments need a client_id"
            )


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
    return _workload(issuer, CommitmentType.AUD, expiry)


def _workload(issuer: str, commitment: CommitmentType, expiry: ExpiryPolicy | None) -> IssuerConfig:
    """A CI workload's issuer: GQ256 only, so a published PK token is no bearer token."""
    return IssuerConfig(
        issuer=issuer,
        commitment=commitment,
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
    return _workload(issuer, CommitmentType.GQ_BOUND, expiry)


def oidc(
    issuer: str,
    client_id: str,
    *,
    expiry: ExpiryPolicy | None = None,
    allow_gq: bool = True,
) -> IssuerConfig:
    """Any OpenID provider a person signs in to: ``nonce`` commitment, ``client_id`` in ``aud``.

    The provider's RS256 token is accepted, and so is its GQ256 form (a proof of the same
    signature that cannot be replayed as a bearer token) unless ``allow_gq=False``.
    """
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


def well_known(issuer: str, *, expiry: ExpiryPolicy | None = None) -> IssuerConfig | None:
    """The settings of a well-known issuer, by exact URL; ``None`` for any other issuer."""
    factories: dict[str, Callable[[], IssuerConfig]] = {
        GITHUB_ACTIONS_ISSUER: lambda: github_actions(expiry=expiry),
        GITLAB_ISSUER: lambda: gitlab_ci(expiry=expiry),
        CODEBERG_ACTIONS_ISSUER: lambda: forgejo_actions(expiry=expiry),
        GOOGLE_ISSUER: lambda: google(expiry=expiry),
        MICROSOFT_ISSUER: lambda: microsoft(expiry=expiry),
    }
    factory = factories.get(issuer)
    return factory() if factory is not None else None


# -- issuer settings as configuration -------------------------------------------------------------

#: The keys of an issuer settings table (a policy file's ``[[issuers]]``, or command-line flags).
SETTINGS_KEYS = (
    "issuer",
    "commitment",
    "require_gq",
    "algorithms",
    "expiry",
    "leeway",
    "client_id",
    "gq_audience_prefix",
)
_COMMITMENTS = ", ".join(c.value for c in CommitmentType)
#: Commitments whose PK tokens are published by workloads: GQ256 by default, since the
#: provider's own signature would make them replayable ID tokens.
_GQ_BY_DEFAULT = frozenset({CommitmentType.AUD, CommitmentType.GQ_BOUND})


def issuer_config(settings: Mapping[str, Any], *, path: str = "") -> IssuerConfig:
    """The :class:`IssuerConfig` an issuer settings table describes. The one reader of them.

    Policy files (``[[issuers]]`` tables) and the command line (``--issuer``, ``--commitment``,
    ``--client-id``, ``--expiry``) both come here, so both have the same defaults:

    * ``commitment`` may be left out for a well-known issuer (:func:`well_known`): its
      settings are used, and only ``expiry``, ``leeway`` and ``client_id`` may be changed. Any
      other issuer must say where its tokens commit to the key: ``nonce``, ``aud`` or
      ``gq-bound``;
    * ``require_gq`` defaults to true for ``aud`` and ``gq-bound`` commitments (CI workloads): a
      PK token with the provider's own signature is a replayable ID token, acceptable only
      from people's logins (``nonce``, ``key-bound``);
    * ``algorithms`` defaults to ``["GQ256"]`` when GQ is required, else ``["RS256", "GQ256"]``;
    * ``expiry`` defaults to ``never`` and ``leeway`` to 60 seconds (``spec/time.md``).

    Unknown keys, wrong types and contradictions are :class:`ConfigError` naming the key path
    (``path`` is the table's own, e.g. ``issuers[0]``).
    """
    tables.require_table(settings, path or "issuer settings")
    tables.reject_unknown(settings, SETTINGS_KEYS, path)

    def key(name: str) -> str:
        return tables.join(path, name)

    if "issuer" not in settings:
        raise ConfigError(f"{key('issuer')}: required")
    issuer = tables.require_string(settings["issuer"], key("issuer"))
    if issuer != issuer.strip():
        raise ConfigError(f"{key('issuer')}: has leading or trailing whitespace", found=issuer)
    leeway = tables.require_int(settings.get("leeway", DEFAULT_LEEWAY), key("leeway"))
    expiry_name = tables.require_string(settings.get("expiry", "never"), key("expiry"))
    if expiry_name not in EXPIRY_NAMES:
        raise ConfigError(
            f"{key('expiry')}: expected one of {', '.join(EXPIRY_NAMES)}, "
            f"found {tables.show(expiry_name)}",
            found=expiry_name,
        )
    try:
        expiry = ExpiryPolicy.parse(expiry_name, leeway=leeway)
    except ConfigError as exc:
        raise ConfigError(f"{key('leeway')}: {exc}", found=leeway) from None
    client_id = settings.get("client_id")
    if client_id is not None:
        tables.require_string(client_id, key("client_id"))

    if "commitment" not in settings:
        preset = well_known(issuer, expiry=expiry)
        if preset is None:
            raise ConfigError(
                f"{key('commitment')}: required for {issuer} (no built-in settings for it); "
                f"say where its ID tokens commit to the key: one of {_COMMITMENTS}"
            )
        fixed = [k for k in ("require_gq", "algorithms", "gq_audience_prefix") if k in settings]
        if fixed:
            raise ConfigError(
                f"{key(fixed[0])}: {issuer} has built-in settings; to set {fixed[0]}, give "
                "the commitment too and configure the issuer in full"
            )
        if client_id is not None and preset.commitment is not CommitmentType.NONCE:
            raise ConfigError(f"{key('client_id')}: {issuer} does not use a client id")
        return _construct(
            path,
            lambda: IssuerConfig(
                issuer=preset.issuer,
                commitment=preset.commitment,
                algorithms=preset.algorithms,
                require_gq=preset.require_gq,
                expiry=expiry,
                client_id=client_id or preset.client_id,
                gq_audience_prefix=preset.gq_audience_prefix,
            ),
        )

    commitment_name = tables.require_string(settings["commitment"], key("commitment"))
    try:
        commitment = CommitmentType(commitment_name)
    except ValueError:
        raise ConfigError(
            f"{key('commitment')}: expected one of {_COMMITMENTS}, "
            f"found {tables.show(commitment_name)}",
            found=commitment_name,
        ) from None
    require_gq = tables.require_bool(
        settings.get("require_gq", commitment in _GQ_BY_DEFAULT), key("require_gq")
    )
    algorithms = tables.require_array(
        settings.get("algorithms", ["GQ256"] if require_gq else ["RS256", "GQ256"]),
        key("algorithms"),
    )
    for index, alg in enumerate(algorithms):
        tables.require_string(alg, f"{key('algorithms')}[{index}]")
    if len(set(algorithms)) != len(algorithms):
        raise ConfigError(f"{key('algorithms')}: lists an algorithm twice", found=algorithms)
    prefix = tables.require_string(
        settings.get("gq_audience_prefix", GQ_AUDIENCE_PREFIX), key("gq_audience_prefix")
    )
    return _construct(
        path,
        lambda: IssuerConfig(
            issuer=issuer,
            commitment=commitment,
            algorithms=frozenset(algorithms),
            require_gq=require_gq,
            expiry=expiry,
            client_id=client_id,
            gq_audience_prefix=prefix,
        ),
    )


def _construct(path: str, factory: Callable[[], IssuerConfig]) -> IssuerConfig:
    try:
        return factory()
    except ConfigError as exc:
        prefix = f"{path}: " if path else ""
        raise ConfigError(f"{prefix}{exc}", expected=exc.expected, found=exc.found) from None


def issuer_settings(config: IssuerConfig) -> dict[str, Any]:
    """The settings table of ``config`` in full (what :func:`issuer_config` reads back)."""
    expiry = str(config.expiry)
    if expiry not in EXPIRY_NAMES:
        raise ConfigError(
            f"issuer {config.issuer}: expiry {expiry} has no settings name "
            f"({', '.join(EXPIRY_NAMES)})"
        )
    data: dict[str, Any] = {
        "issuer": config.issuer,
        "commitment": config.commitment.value,
        "require_gq": config.require_gq,
        "algorithms": sorted(config.algorithms),
        "expiry": expiry,
        "leeway": config.expiry.leeway,
    }
    if config.client_id is not None:
        data["client_id"] = config.client_id
    if config.gq_audience_prefix != GQ_AUDIENCE_PREFIX:
        data["gq_audience_prefix"] = config.gq_audience_prefix
    return data
