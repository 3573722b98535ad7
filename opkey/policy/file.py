"""Policy files: trusted issuers and required signers, in TOML (schema: spec/policy-file.md).

A policy file pins everything a verifier must not let a token downgrade: which issuers are
trusted and how (GQ required, allowed algorithms, where the commitment is, expiry, client id,
key sources), and who must have signed (one or more named signers, each a policy)::

    version = 1

    [[issuers]]
    issuer = "https://token.actions.githubusercontent.com"
    commitment = "aud"
    require_gq = true
    expiry = "24h"

    [[signers]]
    name = "build"
    github = { repository_id = "433903792", repository_owner_id = "25015917" }

    [timestamps]                          # optional: RFC 3161 signing time
    authorities = ["tsa-chain.pem"]       # trust anchors: used only when the file is trusted
    required = true

    [tlog]                                # optional: transparency logs (Rekor)
    logs = [{ key = "rekor.pub", origin = "rekor.example - 1234" }]   # trust anchors too
    required = true

Parsing is strict and pure (:func:`parse_policy_file` reads text; :func:`load_policy_file` reads
one file, nothing else). Unknown keys, wrong types, empty rules and invalid patterns are
:class:`~opkey.errors.ConfigError` whose message begins with the key path, e.g.
``signers[1].github.repository_id: expected a string, found integer 123`` (indices count from
0). Every signer must pin its issuer (an ``issuer`` rule or a ``github``/``gitlab`` workload
rule) so that a token from another trusted issuer can never satisfy it; only
``unsafe_no_policy`` is exempt.

:meth:`PolicyFile.to_dict` and :meth:`PolicyFile.to_toml` write the same schema back:
parsing their output gives an equal :class:`PolicyFile`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from opkey import tables
from opkey.errors import ConfigError
from opkey.issuers import (
    GITHUB_ACTIONS_ISSUER,
    GITLAB_ISSUER,
    SETTINGS_KEYS,
    IssuerConfig,
    issuer_config,
    issuer_settings,
    well_known,
)
from opkey.policy.claims import (
    AllOf,
    AnyOf,
    ClaimContains,
    ClaimEquals,
    ClaimGlob,
    ClaimRegex,
    Issuer,
    Policy,
    Subject,
    UnsafeNoPolicy,
    accepts_any_signer,
    pinned_issuers,
)
from opkey.policy.predicates import Matcher, PredicateCondition
from opkey.policy.signoff import Requirement, SignerRequirement
from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline

__all__ = [
    "FORMAT_VERSION",
    "IssuerEntry",
    "LogPin",
    "PolicyFile",
    "TimestampSettings",
    "TlogSettings",
    "load_policy_file",
    "parse_policy_file",
    "policy_file_from_dict",
    "policy_from_dict",
    "policy_to_dict",
    "redefined_settings",
]

#: The ``version`` this module reads and writes.
FORMAT_VERSION = 1
_MAX_RULE_DEPTH = 16
_MAX_SIGNERS = 64
_RULE_KINDS = (
    "issuer",
    "subject",
    "claim",
    "github",
    "gitlab",
    "all_of",
    "any_of",
    "unsafe_no_policy",
)
_CLAIM_MATCHERS = ("equals", "contains", "glob", "regex")
_ISSUER_KEYS = (*SETTINGS_KEYS, "jwks_file", "archive")
_TOP_KEYS = ("version", "distinct_signers", "issuers", "signers", "timestamps", "tlog")
_TIMESTAMP_KEYS = ("authorities", "required")
#: Keys of a signer table beside its rule.
_SIGNER_KEYS = ("name", "description", "predicate_type", "predicate")
_MAX_CONDITIONS = 32
_MAX_TIMESTAMP_AUTHORITIES = 16
_TLOG_KEYS = ("logs", "required")
_LOG_KEYS = ("key", "origin")
_MAX_TLOGS = 16


@dataclass(frozen=True, slots=True)
class IssuerEntry:
    """An issuer the file trusts: its verification settings and where its keys may come from.

    ``jwks_file`` (a pinned JWKS snapshot) and ``archive`` (a :mod:`opkey.jwks.archive`
    database) say where the issuer's keys come from (:meth:`opkey.verification.trust.Trust.build`
    reads them); relative paths were resolved against the policy file's directory when it was
    loaded from disk.
    """

    config: IssuerConfig
    jwks_file: Path | None = None
    archive: Path | None = None
    #: The settings by which a policy file makes a well-known issuer accept tokens its built-in
    #: settings would not (another commitment, client id or audience prefix, an algorithm
    #: beyond the built-in ones): trust, like ``jwks_file`` (see :func:`redefined_settings`).
    redefines: tuple[str, ...] = ()

    @property
    def issuer(self) -> str:
        """The issuer URL."""
        return self.config.issuer

    @property
    def trust_anchors(self) -> tuple[str, ...]:
        """The keys of this entry that are trust rather than requirements: ``jwks_file`` and
        ``archive`` when given, and the settings that redefine a well-known issuer.
        :meth:`opkey.verification.trust.Trust.build` uses them only from trusted files."""
        named = tuple(k for k in ("jwks_file", "archive") if getattr(self, k) is not None)
        return named + self.redefines


def redefined_settings(config: IssuerConfig) -> tuple[str, ...]:
    """The settings in which ``config`` accepts more than its issuer's built-in settings.

    For a well-known issuer URL (:func:`opkey.issuers.well_known`) a reader of a policy file
    expects the issuer's own meaning: GitHub Actions tokens commit in ``aud`` and are GQ256.
    A file that says ``commitment = "gq-bound"`` with a ``gq_audience_prefix`` of its author's
    choosing for that URL would accept the ID tokens GitHub issues *to other services* (any
    relying party that receives them could bind its own key), and a Google ``client_id`` of the
    author's choosing accepts every login to the author's application. Those settings are
    trust. Fewer algorithms are not, nor are the time settings (``expiry``, ``leeway``), which
    decide how long a token is accepted, never whose it is. Empty for an issuer without
    built-in settings, whose every setting the file states in full.
    """
    preset = well_known(config.issuer, expiry=config.expiry)
    if preset is None:
        return ()
    changed: list[str] = []
    if config.commitment is not preset.commitment:
        changed.append("commitment")
    if config.client_id != preset.client_id:
        changed.append("client_id")
    if config.gq_audience_prefix != preset.gq_audience_prefix:
        changed.append("gq_audience_prefix")
    if not config.algorithms <= preset.algorithms:
        changed.append("algorithms")
    if preset.require_gq and not config.require_gq:
        changed.append("require_gq")
    return tuple(changed)


@dataclass(frozen=True, slots=True)
class TimestampSettings:
    """A policy file's ``[timestamps]`` table: RFC 3161 signing time.

    ``authorities`` are PEM chains of time-stamping authorities (one per file), trust anchors
    that :meth:`opkey.verification.trust.Trust.build` uses only when the verifier trusts the
    file; relative paths were resolved against the file's directory. ``required`` rejects
    signatures without a signing time a trusted authority proves (``spec/time.md``).
    """

    authorities: tuple[Path, ...] = ()
    required: bool = False


@dataclass(frozen=True, slots=True)
class LogPin:
    """A transparency log to trust: its public key file (PEM or DER SPKI, ECDSA P-256 or
    Ed25519) and its checkpoint origin (``"<hostname> - <tree ID>"`` for Rekor v1, the
    hostname for Rekor v2); the log ID follows from the key (``spec/transparency-log.md``)."""

    key_file: Path
    origin: str


@dataclass(frozen=True, slots=True)
class TlogSettings:
    """A policy file's ``[tlog]`` table: the transparency logs to trust (trust anchors, used
    only when the verifier trusts the file) and whether a verified entry is ``required``."""

    logs: tuple[LogPin, ...] = ()
    required: bool = False


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """A parsed policy file: trusted issuers, the signers an artifact needs, signing time."""

    signers: tuple[SignerRequirement, ...]
    issuers: tuple[IssuerEntry, ...] = ()
    distinct_signers: bool = True
    timestamps: TimestampSettings = TimestampSettings()
    tlog: TlogSettings = TlogSettings()

    def issuer_configs(self) -> dict[str, IssuerConfig]:
        """The :class:`~opkey.issuers.IssuerConfig` of every trusted issuer, by issuer URL."""
        return {trusted.issuer: trusted.config for trusted in self.issuers}

    @property
    def requirement(self) -> Requirement:
        """Who must have signed: the file's signers, distinct unless it says otherwise."""
        return Requirement.sign_off(self.signers, distinct=self.distinct_signers)

    def to_dict(self) -> dict[str, Any]:
        """The file as plain data in the documented schema (what :meth:`to_toml` writes)."""
        data: dict[str, Any] = {"version": FORMAT_VERSION}
        data["distinct_signers"] = self.distinct_signers
        if self.issuers:
            data["issuers"] = [_issuer_to_dict(t) for t in self.issuers]
        data["signers"] = [_signer_to_dict(s) for s in self.signers]
        if self.timestamps != TimestampSettings():
            table: dict[str, Any] = {}
            if self.timestamps.authorities:
                table["authorities"] = [str(path) for path in self.timestamps.authorities]
            if self.timestamps.required:
                table["required"] = True
            data["timestamps"] = table
        if self.tlog != TlogSettings():
            logs: dict[str, Any] = {}
            if self.tlog.logs:
                logs["logs"] = [
                    {"key": str(pin.key_file), "origin": pin.origin} for pin in self.tlog.logs
                ]
            if self.tlog.required:
                logs["required"] = True
            data["tlog"] = logs
        return data

    def to_toml(self) -> str:
        """The file as TOML; :func:`parse_policy_file` of the result gives an equal object."""
        return _dump_toml(self.to_dict())


# -- reading -----------------------------------------------------------------------------------


def load_policy_file(path: str | os.PathLike[str]) -> PolicyFile:
    """Read and parse a policy file; relative key paths resolve against its directory."""
    file = Path(path)
    data = tables.read_config_file(file, what="policy file")
    return parse_policy_file(data, base_dir=file.parent, source=str(file))


def parse_policy_file(
    text: str | bytes, *, base_dir: Path | None = None, source: str = "policy file"
) -> PolicyFile:
    """Parse policy-file TOML. ``base_dir`` resolves relative ``jwks_file``/``archive`` paths."""
    return policy_file_from_dict(tables.parse_toml(text, source=source), base_dir=base_dir)


def policy_file_from_dict(data: Mapping[str, Any], *, base_dir: Path | None = None) -> PolicyFile:
    """Validate decoded policy-file data (from TOML, or JSON with the same structure)."""
    tables.require_table(data, "(top level)")
    tables.reject_unknown(data, _TOP_KEYS, "")
    tables.require_version(data, FORMAT_VERSION)
    distinct = data.get("distinct_signers", True)
    if not isinstance(distinct, bool):
        raise ConfigError(f"distinct_signers: expected a boolean, found {tables.show(distinct)}")

    issuers: list[IssuerEntry] = []
    raw_issuers = data.get("issuers", [])
    tables.require_array(raw_issuers, "issuers")
    for index, entry in enumerate(raw_issuers):
        trusted = _parse_issuer(entry, f"issuers[{index}]", base_dir)
        if any(t.issuer == trusted.issuer for t in issuers):
            raise ConfigError(
                f"issuers[{index}].issuer: {trusted.issuer!r} is already listed", found=trusted
            )
        issuers.append(trusted)

    if "signers" not in data:
        raise ConfigError("signers: required; list at least one [[signers]] table")
    raw_signers = data["signers"]
    tables.require_array(raw_signers, "signers")
    if not raw_signers:
        raise ConfigError("signers: empty; list at least one [[signers]] table")
    if len(raw_signers) > _MAX_SIGNERS:
        raise ConfigError(f"signers: {len(raw_signers)} signers is more than {_MAX_SIGNERS}")
    trusted_urls = {t.issuer for t in issuers}
    signers: list[SignerRequirement] = []
    for index, entry in enumerate(raw_signers):
        signer = _parse_signer(entry, f"signers[{index}]", trusted_urls if issuers else None)
        if any(s.name == signer.name for s in signers):
            raise ConfigError(f"signers[{index}].name: {signer.name!r} is used twice")
        signers.append(signer)
    timestamps = _parse_timestamps(data.get("timestamps"), base_dir)
    return PolicyFile(
        signers=tuple(signers),
        issuers=tuple(issuers),
        distinct_signers=distinct,
        timestamps=timestamps,
        tlog=_parse_tlog(data.get("tlog"), base_dir),
    )


_Item = TypeVar("_Item")


@dataclass(frozen=True)
class _EvidenceTable(Generic[_Item]):
    """A ``[tlog]`` or ``[timestamps]`` table, read: its trust list and ``required``."""

    items: tuple[_Item, ...]
    required: bool


def _parse_evidence_table(
    table: Any,
    name: str,
    keys: tuple[str, str],
    noun: str,
    limit: int,
    parse_item: Callable[[Any, str], _Item],
) -> _EvidenceTable[_Item] | None:
    """Read an evidence table, ``None`` when left out: the bounded array ``keys[0]`` (each
    item read by ``parse_item(value, where)``) and the bool ``keys[1]``. The tables of
    transparency logs and of time-stamping authorities have the same rules: an empty one
    must at least say ``required``, or it says nothing."""
    if table is None:
        return None
    member = keys[0]
    tables.require_table(table, name)
    tables.reject_unknown(table, keys, name)
    raw = table.get(member, [])
    tables.require_array(raw, f"{name}.{member}")
    if len(raw) > limit:
        raise ConfigError(f"{name}.{member}: {len(raw)} {noun} is more than {limit}")
    items = tuple(parse_item(value, f"{name}.{member}[{index}]") for index, value in enumerate(raw))
    required = table.get(keys[1], False)
    tables.require_bool(required, f"{name}.{keys[1]}")
    if not items and not required:
        raise ConfigError(
            f"{name}: empty; name {member} or set required = true (or leave the table out)"
        )
    return _EvidenceTable(items, required)


def _parse_tlog(table: Any, base_dir: Path | None) -> TlogSettings:
    def pin(entry: Any, where: str) -> LogPin:
        tables.require_table(entry, where)
        tables.reject_unknown(entry, _LOG_KEYS, where)
        for name in _LOG_KEYS:
            if name not in entry:
                raise ConfigError(f"{where}.{name}: required")
        key = _parse_path(entry["key"], f"{where}.key", base_dir)
        assert key is not None
        origin = tables.require_string(entry["origin"], f"{where}.origin")
        if not origin or "\n" in origin:
            raise ConfigError(f"{where}.origin: one non-empty line (the checkpoint's first)")
        return LogPin(key, origin)

    read = _parse_evidence_table(table, "tlog", _TLOG_KEYS, "logs", _MAX_TLOGS, pin)
    if read is None:
        return TlogSettings()
    return TlogSettings(logs=read.items, required=read.required)


def _parse_timestamps(table: Any, base_dir: Path | None) -> TimestampSettings:
    def authority(value: Any, where: str) -> Path:
        path = _parse_path(value, where, base_dir)
        assert path is not None
        return path

    read = _parse_evidence_table(
        table, "timestamps", _TIMESTAMP_KEYS, "chains", _MAX_TIMESTAMP_AUTHORITIES, authority
    )
    if read is None:
        return TimestampSettings()
    return TimestampSettings(authorities=read.items, required=read.required)


def _construct(path: str, factory: Callable[[], Policy]) -> Policy:
    """Run a policy constructor, prefixing its :class:`ConfigError` with the key path."""
    try:
        return factory()
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}", expected=exc.expected, found=exc.found) from None


def _parse_issuer(entry: Any, path: str, base_dir: Path | None) -> IssuerEntry:
    tables.require_table(entry, path)
    tables.reject_unknown(entry, _ISSUER_KEYS, path)
    settings = {k: v for k, v in entry.items() if k in SETTINGS_KEYS}
    config = issuer_config(settings, path=path)
    return IssuerEntry(
        config=config,
        jwks_file=_parse_path(entry.get("jwks_file"), f"{path}.jwks_file", base_dir),
        archive=_parse_path(entry.get("archive"), f"{path}.archive", base_dir),
        redefines=redefined_settings(config),
    )


def _parse_path(value: Any, path: str, base_dir: Path | None) -> Path | None:
    if value is None:
        return None
    location = Path(tables.require_string(value, path))
    if base_dir is not None and not location.is_absolute():
        location = base_dir / location
    return location


def _parse_signer(entry: Any, path: str, trusted: set[str] | None) -> SignerRequirement:
    tables.require_table(entry, path)
    if "name" not in entry:
        raise ConfigError(f"{path}.name: required; every signer has a name")
    name = tables.require_string(entry["name"], f"{path}.name")
    description = entry.get("description")
    if description is not None:
        tables.require_string(description, f"{path}.description")
    rule = {k: v for k, v in entry.items() if k not in _SIGNER_KEYS}
    policy = _parse_rule(rule, path, depth=1, extra_keys=_SIGNER_KEYS)
    predicate_type = entry.get("predicate_type")
    if predicate_type is not None:
        predicate_type = tables.require_string(predicate_type, f"{path}.predicate_type")
    conditions = _parse_conditions(entry.get("predicate"), f"{path}.predicate")
    if conditions and predicate_type is None:
        raise ConfigError(f"{path}.predicate: conditions on a predicate need a predicate_type")
    pinned = pinned_issuers(policy)
    if pinned is None and not accepts_any_signer(policy):
        raise ConfigError(
            f"{path}: signer {name!r} does not pin an issuer; add an issuer rule (in all_of) or "
            "use a github/gitlab workload rule, so that no other trusted issuer's tokens can match"
        )
    if pinned is not None and not pinned:
        raise ConfigError(f"{path}: signer {name!r} requires conflicting issuers; none can match")
    if pinned is not None and trusted is not None and not pinned <= trusted:
        missing = ", ".join(sorted(pinned - trusted))
        raise ConfigError(
            f"{path}: signer {name!r} accepts issuer {missing}, which is not in [[issuers]]",
            found=sorted(pinned - trusted),
        )
    try:
        return SignerRequirement(
            name=name,
            policy=policy,
            description=description,
            predicate_type=predicate_type,
            predicate=conditions,
        )
    except ConfigError as exc:
        key = "predicate_type" if "predicate type" in str(exc) else "name"
        raise ConfigError(f"{path}.{key}: {exc}") from None


def _parse_conditions(value: Any, path: str) -> tuple[PredicateCondition, ...]:
    """``predicate = [ { pointer = "/a/b", equals|glob|regex = …, allow_non_ascii = … } ]``."""
    if value is None:
        return ()
    tables.require_array(value, path)
    if not value:
        raise ConfigError(f"{path}: empty; list conditions or leave the key out")
    if len(value) > _MAX_CONDITIONS:
        raise ConfigError(f"{path}: more than {_MAX_CONDITIONS} conditions")
    conditions: list[PredicateCondition] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        tables.require_table(item, where)
        matchers = [m for m in ("equals", "glob", "regex") if m in item]
        if len(matchers) != 1:
            found = " and ".join(matchers) if matchers else "none"
            raise ConfigError(f"{where}: needs exactly one of equals, glob, regex; found {found}")
        matcher: Matcher = (
            "equals" if matchers[0] == "equals" else ("glob" if matchers[0] == "glob" else "regex")
        )
        allowed = ["pointer", matcher] + (["allow_non_ascii"] if matcher != "equals" else [])
        tables.reject_unknown(item, tuple(allowed), where)
        if "pointer" not in item:
            raise ConfigError(f"{where}.pointer: required (a JSON pointer such as /result)")
        pointer = tables.require_string(item["pointer"], f"{where}.pointer")
        target = item[matcher]
        if matcher == "equals":
            if not isinstance(target, (str, int)):
                raise ConfigError(
                    f"{where}.equals: expected a string, integer or boolean, found "
                    f"{tables.show(target)}"
                )
        else:
            tables.require_string(target, f"{where}.{matcher}")
        allow = item.get("allow_non_ascii", False)
        tables.require_bool(allow, f"{where}.allow_non_ascii")
        try:
            conditions.append(PredicateCondition(pointer, matcher, target, allow))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}", found=exc.found) from None
    return tuple(conditions)


def policy_from_dict(rule: Mapping[str, Any], *, path: str = "policy") -> Policy:
    """Build a policy from one rule table of the schema (``{"github": {...}}`` and so on)."""
    return _parse_rule(rule, path, depth=1)


def _parse_rule(rule: Any, path: str, *, depth: int, extra_keys: Sequence[str] = ()) -> Policy:
    tables.require_table(rule, path)
    if depth > _MAX_RULE_DEPTH:
        raise ConfigError(f"{path}: rules nested deeper than {_MAX_RULE_DEPTH} levels")
    kinds = [k for k in _RULE_KINDS if k in rule]
    if not kinds:
        for key in rule:
            if key in (*_CLAIM_MATCHERS, "allow_non_ascii"):
                raise ConfigError(f"{tables.join(path, key)}: needs a claim key naming the claim")
            allowed = (*extra_keys, *_RULE_KINDS)
            raise ConfigError(
                f"{tables.join(path, key)}: unknown key; expected one of {', '.join(allowed)}",
                found=key,
            )
        raise ConfigError(f"{path}: empty rule; give exactly one of {', '.join(_RULE_KINDS)}")
    if len(kinds) > 1:
        raise ConfigError(
            f"{path}: a rule has exactly one of {', '.join(_RULE_KINDS)}; found "
            f"{' and '.join(kinds)} (combine rules with all_of or any_of)",
            found=kinds,
        )
    kind = kinds[0]
    if kind == "claim":
        return _parse_claim_rule(rule, path, extra_keys)
    tables.reject_unknown(rule, (*extra_keys, kind), path)
    key_path = tables.join(path, kind)
    value = rule[kind]
    if kind == "issuer":
        url = tables.require_string(value, key_path)
        return _construct(key_path, lambda: Issuer(url))
    if kind == "subject":
        sub = tables.require_string(value, key_path)
        return _construct(key_path, lambda: Subject(sub))
    if kind in ("github", "gitlab"):
        return _parse_workload(kind, value, key_path)
    if kind in ("all_of", "any_of"):
        tables.require_array(value, key_path)
        if not value:
            raise ConfigError(
                f"{key_path}: empty; an empty {kind} is a mistake (list at least one rule)"
            )
        members = [
            _parse_rule(member, f"{key_path}[{i}]", depth=depth + 1)
            for i, member in enumerate(value)
        ]
        return AllOf(members) if kind == "all_of" else AnyOf(members)
    if value is not True:
        raise ConfigError(
            f"{key_path}: must be true (remove the key to require a real policy), "
            f"found {tables.show(value)}"
        )
    return UnsafeNoPolicy()


def _parse_claim_rule(rule: Mapping[str, Any], path: str, extra_keys: Sequence[str]) -> Policy:
    name = tables.require_string(rule["claim"], tables.join(path, "claim"))
    matchers = [m for m in _CLAIM_MATCHERS if m in rule]
    if len(matchers) != 1:
        found = " and ".join(matchers) if matchers else "none"
        raise ConfigError(
            f"{path}: a claim rule needs exactly one of {', '.join(_CLAIM_MATCHERS)}; found {found}"
        )
    matcher = matchers[0]
    allowed: tuple[str, ...] = (*extra_keys, "claim", matcher)
    if matcher in ("glob", "regex"):
        allowed = (*allowed, "allow_non_ascii")
    tables.reject_unknown(rule, allowed, path)
    key_path = tables.join(path, matcher)
    value = rule[matcher]
    if matcher in ("equals", "contains"):
        if not isinstance(value, (str, int)):
            raise ConfigError(
                f"{key_path}: expected a string, integer or boolean, found {tables.show(value)}",
                found=value,
            )
        if matcher == "equals":
            return _construct(key_path, lambda: ClaimEquals(name, value))
        return _construct(key_path, lambda: ClaimContains(name, value))
    pattern = tables.require_string(value, key_path)
    allow = rule.get("allow_non_ascii", False)
    tables.require_bool(allow, tables.join(path, "allow_non_ascii"))
    if matcher == "glob":
        return _construct(key_path, lambda: ClaimGlob(name, pattern, allow_non_ascii=allow))
    return _construct(key_path, lambda: ClaimRegex(name, pattern, allow_non_ascii=allow))


def _parse_workload(kind: str, table: Any, path: str) -> Policy:
    tables.require_table(table, path)
    cls: type[GitHubWorkflow] | type[GitLabPipeline]
    cls = GitHubWorkflow if kind == "github" else GitLabPipeline
    allowed = (*cls.CLAIMS, "issuer")
    tables.reject_unknown(table, allowed, path)
    if not table:
        raise ConfigError(f"{path}: empty; pin at least the repository or project")
    for key, value in table.items():
        tables.require_string(value, f"{path}.{key}")
        cls.check_value(key, value, label=f"{path}.{key}")
    return _construct(path, lambda: cls(**table))


# -- writing -----------------------------------------------------------------------------------


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The rule table of ``policy`` in the policy-file schema (inverse of policy_from_dict)."""
    if isinstance(policy, Issuer):
        return {"issuer": policy.url}
    if isinstance(policy, Subject):
        return {"subject": policy.value}
    if isinstance(policy, ClaimEquals):
        return {"claim": policy.name, "equals": policy.value}
    if isinstance(policy, ClaimContains):
        return {"claim": policy.name, "contains": policy.value}
    if isinstance(policy, (ClaimGlob, ClaimRegex)):
        matcher = "glob" if isinstance(policy, ClaimGlob) else "regex"
        data: dict[str, Any] = {"claim": policy.name, matcher: policy.pattern}
        if policy.allow_non_ascii:
            data["allow_non_ascii"] = True
        return data
    if isinstance(policy, (GitHubWorkflow, GitLabPipeline)):
        kind = "github" if isinstance(policy, GitHubWorkflow) else "gitlab"
        default = GITHUB_ACTIONS_ISSUER if kind == "github" else GITLAB_ISSUER
        table = {name: getattr(policy, name) for name in policy.CLAIMS}
        pins = {k: v for k, v in table.items() if v is not None}
        if policy.issuer != default:
            pins["issuer"] = policy.issuer
        return {kind: pins}
    if isinstance(policy, (AllOf, AnyOf)):
        kind = "all_of" if isinstance(policy, AllOf) else "any_of"
        return {kind: [policy_to_dict(member) for member in policy.policies]}
    if isinstance(policy, UnsafeNoPolicy):
        return {"unsafe_no_policy": True}
    raise ConfigError(f"{type(policy).__name__} cannot be written to a policy file")


def _issuer_to_dict(trusted: IssuerEntry) -> dict[str, Any]:
    data = issuer_settings(trusted.config)
    if trusted.jwks_file is not None:
        data["jwks_file"] = str(trusted.jwks_file)
    if trusted.archive is not None:
        data["archive"] = str(trusted.archive)
    return data


def _signer_to_dict(signer: SignerRequirement) -> dict[str, Any]:
    data: dict[str, Any] = {"name": signer.name}
    if signer.description is not None:
        data["description"] = signer.description
    data.update(policy_to_dict(signer.policy))
    if signer.predicate_type is not None:
        data["predicate_type"] = signer.predicate_type
    if signer.predicate:
        data["predicate"] = [_condition_to_dict(c) for c in signer.predicate]
    return data


def _condition_to_dict(condition: PredicateCondition) -> dict[str, Any]:
    data: dict[str, Any] = {"pointer": condition.pointer, condition.matcher: condition.value}
    if condition.allow_non_ascii:
        data["allow_non_ascii"] = True
    return data


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_TOML_ESCAPES["\r"] = "\\r"


def _toml_string(text: str) -> str:
    """A TOML basic string; non-ASCII is escaped so confusable characters stay visible."""
    out = []
    for char in text:
        code = ord(char)
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif 0xD800 <= code <= 0xDFFF:
            raise ConfigError(f"cannot write a lone surrogate (U+{code:04X}) to TOML")
        elif code < 0x20 or 0x7F <= code <= 0xFFFF:
            out.append(f"\\u{code:04X}")
        elif code > 0xFFFF:
            out.append(f"\\U{code:08X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any, indent: str = "") -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v, indent)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list):
        if all(not isinstance(v, (Mapping, list)) for v in value):
            return "[" + ", ".join(_toml_value(v) for v in value) + "]"
        # Arrays may span lines, even inside inline tables; one member per line reads best.
        inner = indent + "    "
        lines = [f"{inner}{_toml_value(v, inner)}," for v in value]
        return "[\n" + "\n".join(lines) + f"\n{indent}]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def _dump_toml(data: Mapping[str, Any]) -> str:
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            tables.extend((key, item) for item in value)
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines.append("")
        lines.append(f"[[{_toml_key(key)}]]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"
