"""The admission gate's configuration: which requirement applies to which image, where.

A TOML file (schema: ``spec/admission.md``) lists rules; the first rule whose namespace globs
and image patterns both match an image decides it::

    version = 1
    unmatched = "deny"            # images no rule matches: deny (default), warn or allow

    [[rules]]
    name = "production"
    namespaces = ["prod", "prod-*"]
    images = ["ghcr.io/acme/**"]
    policy = "policies/release.toml"   # an opkey policy file (spec/policy-file.md)
    mode = "enforce"                   # or "warn": admit, and tell the user what failed
    require_digest = true              # default: a tag may move after admission

Image patterns match the image's normalised name, ``registry/repository`` without tag or digest
(``nginx:1.27`` is ``docker.io/library/nginx``, as ``docker pull`` reads it): ``*`` matches
within one path component and ``?`` one character; ``**`` as a whole component matches one or
more components. Namespace globs use ``*`` and ``?``. Patterns are checked when the file is
read, so a typo is an error at start-up, not an unmatched image at deploy time.

Parsing is strict and pure, as :mod:`opkey.policy.file` is: unknown keys, wrong types, empty
lists and invalid patterns are :class:`~opkey.errors.ConfigError` whose message begins with the
key path (``rules[1].images[0]: …``). Policy files are named, not read: the server step loads
and checks them at start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from opkey import tables
from opkey.errors import ConfigError

__all__ = [
    "CONFIG_VERSION",
    "AdmissionConfig",
    "AdmissionRule",
    "ImagePattern",
    "Mode",
    "NamespaceGlob",
    "Unmatched",
    "admission_config_from_dict",
    "load_admission_config",
    "parse_admission_config",
]

#: The ``version`` this module reads.
CONFIG_VERSION = 1
_MAX_RULES = 1024
_Pattern = TypeVar("_Pattern")
_MAX_PATTERNS = 256
_MAX_PATTERN_LENGTH = 512
_TOP_KEYS = ("version", "unmatched", "rules")
_RULE_KEYS = ("name", "namespaces", "images", "policy", "mode", "require_digest")
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# A namespace is a DNS label; a glob adds * and ?.
_NAMESPACE_GLOB = re.compile(r"[a-z0-9*?](?:[a-z0-9*?-]{0,61}[a-z0-9*?])?")
# Registry host[:port] (wildcards allowed), then repository components.
_HOST_COMPONENT = re.compile(r"[A-Za-z0-9*?](?:[A-Za-z0-9*?.-]*[A-Za-z0-9*?])?(?::[0-9*?]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9*?][a-z0-9._*?-]*")


class Mode(str, Enum):
    """What a rule does with an image that fails its requirement."""

    ENFORCE = "enforce"
    WARN = "warn"


class Unmatched(str, Enum):
    """What happens to an image that no rule matches."""

    DENY = "deny"
    WARN = "warn"
    ALLOW = "allow"


def _component_regex(glob: str) -> str:
    """The regex of one glob component: ``*`` any run and ``?`` one character, never ``/``."""
    return "".join(
        "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in glob
    )


def _image_regex(pattern: str) -> re.Pattern[str]:
    """Compile an image pattern: components joined by ``/``; ``**`` is one or more of them."""
    parts = []
    for index, component in enumerate(pattern.split("/")):
        if component == "**":
            parts.append("[^/]+(?:/[^/]+)*" if index == 0 else "(?:/[^/]+)+")
        else:
            parts.append(("/" if index else "") + _component_regex(component))
    return re.compile("".join(parts))


@dataclass(frozen=True, slots=True)
class NamespaceGlob:
    """A namespace glob: ``prod``, ``prod-*``, ``team-??``, ``*``."""

    pattern: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if _NAMESPACE_GLOB.fullmatch(self.pattern) is None:
            raise ConfigError(
                f"{self.pattern!r} is not a namespace glob (lowercase letters, digits, '-', "
                "with * and ?; at most 63 characters)",
                found=self.pattern,
            )
        object.__setattr__(self, "_regex", re.compile(_component_regex(self.pattern)))

    def matches(self, namespace: str) -> bool:
        """Whether ``namespace`` matches."""
        return self._regex.fullmatch(namespace) is not None


@dataclass(frozen=True, slots=True)
class ImagePattern:
    """An image name pattern: ``ghcr.io/acme/*``, ``ghcr.io/acme/**``, ``docker.io/library/nginx``.

    It starts with a registry host (a component with ``.`` or ``:``, ``localhost``, or a
    wildcard), then repository components; no tag or digest (the requirement and
    ``require_digest`` decide those). ``**`` alone matches every image.
    """

    pattern: str
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_image_pattern(self.pattern)
        object.__setattr__(self, "_regex", _image_regex(self.pattern))

    def matches(self, name: str) -> bool:
        """Whether the normalised image name ``registry/repository`` matches."""
        return self._regex.fullmatch(name) is not None


def _check_image_pattern(text: Any) -> None:
    if not isinstance(text, str) or not text:
        raise ConfigError("an image pattern must be a non-empty string", found=text)
    if len(text) > _MAX_PATTERN_LENGTH:
        raise ConfigError(f"image pattern is longer than {_MAX_PATTERN_LENGTH} characters")
    if "@" in text:
        raise ConfigError(
            f"image pattern {text!r} names a digest; patterns match repository names", found=text
        )
    if text == "**":
        return
    host, slash, rest = text.partition("/")
    if _HOST_COMPONENT.fullmatch(host) is None:
        raise ConfigError(f"image pattern {text!r}: invalid registry host {host!r}", found=text)
    if not ("." in host or ":" in host or host == "localhost" or "*" in host or "?" in host):
        raise ConfigError(
            f"image pattern {text!r} must start with a registry host (docker.io/{text} for "
            f"Docker Hub, docker.io/library/{text} for its official images)",
            found=text,
        )
    if not slash:
        raise ConfigError(
            f"image pattern {text!r} names only a registry; add /** to match its images",
            found=text,
        )
    for component in rest.split("/"):
        if component == "**":
            continue
        if "**" in component:
            raise ConfigError(
                f"image pattern {text!r}: ** must be a whole path component", found=text
            )
        if _PATH_COMPONENT.fullmatch(component) is None:
            if ":" in component:
                hint = " (no tag: patterns match repository names)"
            elif component.lower() != component:
                hint = " (repository names are lowercase)"
            else:
                hint = ""
            raise ConfigError(
                f"image pattern {text!r}: invalid repository component {component!r}{hint}",
                found=text,
            )


@dataclass(frozen=True, slots=True)
class AdmissionRule:
    """One rule: where it applies, and what it requires there."""

    name: str
    namespaces: tuple[NamespaceGlob, ...]
    images: tuple[ImagePattern, ...]
    policy: Path
    mode: Mode = Mode.ENFORCE
    require_digest: bool = True

    def matches(self, namespace: str, image_name: str) -> bool:
        """Whether this rule applies to ``image_name`` (normalised) in ``namespace``."""
        return any(g.matches(namespace) for g in self.namespaces) and any(
            p.matches(image_name) for p in self.images
        )


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """A parsed gate configuration: rules in order, and what to do with unmatched images."""

    rules: tuple[AdmissionRule, ...]
    unmatched: Unmatched = Unmatched.DENY

    def rule_for(self, namespace: str, image_name: str) -> AdmissionRule | None:
        """The first rule that applies to ``image_name`` in ``namespace``, if any."""
        for rule in self.rules:
            if rule.matches(namespace, image_name):
                return rule
        return None

    def policy_paths(self) -> tuple[Path, ...]:
        """Every policy file the rules name, once each, in order."""
        return tuple(dict.fromkeys(rule.policy for rule in self.rules))


# -- reading -----------------------------------------------------------------------------------


def load_admission_config(path: str | os.PathLike[str]) -> AdmissionConfig:
    """Read and parse a gate configuration; relative policy paths resolve against its folder."""
    file = Path(path)
    data = tables.read_config_file(file, what="admission config")
    return parse_admission_config(data, base_dir=file.parent, source=str(file))


def parse_admission_config(
    text: str | bytes, *, base_dir: Path | None = None, source: str = "admission config"
) -> AdmissionConfig:
    """Parse gate-configuration TOML. ``base_dir`` resolves relative ``policy`` paths."""
    return admission_config_from_dict(tables.parse_toml(text, source=source), base_dir=base_dir)


def _string(value: Any, path: str) -> str:
    return tables.require_string(value, path)


def _enum(value: Any, path: str, enum: type[Mode] | type[Unmatched]) -> Any:
    name = _string(value, path)
    try:
        return enum(name)
    except ValueError:
        names = ", ".join(member.value for member in enum)
        raise ConfigError(f"{path}: expected one of {names}, found {tables.show(name)}") from None


def _string_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected an array of strings, found {tables.show(value)}")
    if not value:
        raise ConfigError(f"{path}: empty; list at least one")
    if len(value) > _MAX_PATTERNS:
        raise ConfigError(f"{path}: more than {_MAX_PATTERNS} entries")
    return [_string(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _pattern_list(value: Any, path: str, pattern: Callable[[str], _Pattern]) -> list[_Pattern]:
    """An array of patterns; an entry that is not one is named by its index."""
    patterns = []
    for i, text in enumerate(_string_list(value, path)):
        try:
            patterns.append(pattern(text))
        except ConfigError as exc:
            raise ConfigError(f"{path}[{i}]: {exc}", found=text) from None
    return patterns


def admission_config_from_dict(
    data: Mapping[str, Any], *, base_dir: Path | None = None
) -> AdmissionConfig:
    """Validate decoded gate-configuration data (from TOML, or JSON of the same shape)."""
    tables.require_table(data, "(top level)")
    tables.reject_unknown(data, _TOP_KEYS, "")
    tables.require_version(data, CONFIG_VERSION)
    unmatched = _enum(data.get("unmatched", "deny"), "unmatched", Unmatched)
    if "rules" not in data:
        raise ConfigError("rules: required; list at least one [[rules]] table")
    raw_rules = data["rules"]
    if not isinstance(raw_rules, list):
        raise ConfigError(f"rules: expected an array of tables, found {tables.show(raw_rules)}")
    if not raw_rules:
        raise ConfigError("rules: empty; list at least one [[rules]] table")
    if len(raw_rules) > _MAX_RULES:
        raise ConfigError(f"rules: {len(raw_rules)} rules is more than {_MAX_RULES}")
    rules: list[AdmissionRule] = []
    for index, entry in enumerate(raw_rules):
        rule = _parse_rule(entry, f"rules[{index}]", base_dir)
        if any(r.name == rule.name for r in rules):
            raise ConfigError(f"rules[{index}].name: {rule.name!r} is used twice")
        rules.append(rule)
    return AdmissionConfig(rules=tuple(rules), unmatched=unmatched)


def _parse_rule(entry: Any, path: str, base_dir: Path | None) -> AdmissionRule:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{path}: expected a table, found {tables.show(entry)}")
    tables.reject_unknown(entry, _RULE_KEYS, path)
    for key in ("name", "namespaces", "images", "policy"):
        if key not in entry:
            raise ConfigError(f"{path}.{key}: required")
    name = _string(entry["name"], f"{path}.name")
    if _RULE_NAME.fullmatch(name) is None:
        raise ConfigError(
            f"{path}.name: {name!r} is not a rule name (letters, digits, . _ -; "
            "at most 63 characters)",
            found=name,
        )
    namespaces = _pattern_list(entry["namespaces"], f"{path}.namespaces", NamespaceGlob)
    images = _pattern_list(entry["images"], f"{path}.images", ImagePattern)
    policy = Path(_string(entry["policy"], f"{path}.policy"))
    if base_dir is not None and not policy.is_absolute():
        policy = base_dir / policy
    mode = _enum(entry.get("mode", "enforce"), f"{path}.mode", Mode)
    require_digest = entry.get("require_digest", True)
    if not isinstance(require_digest, bool):
        raise ConfigError(
            f"{path}.require_digest: expected a boolean, found {tables.show(require_digest)}"
        )
    return AdmissionRule(
        name=name,
        namespaces=tuple(namespaces),
        images=tuple(images),
        policy=policy,
        mode=mode,
        require_digest=require_digest,
    )
