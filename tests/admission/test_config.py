"""The gate's rule file: strict parsing with key paths, glob and pattern matching, first match."""

from __future__ import annotations

from pathlib import Path

import pytest

from opkey import ConfigError
from opkey.admission import (
    AdmissionConfig,
    ImagePattern,
    Mode,
    NamespaceGlob,
    Unmatched,
    load_admission_config,
    parse_admission_config,
)

EXAMPLE = """
version = 1
unmatched = "warn"

[[rules]]
name = "production"
namespaces = ["prod", "prod-*"]
images = ["ghcr.io/acme/**", "docker.io/library/nginx"]
policy = "policies/release.toml"

[[rules]]
name = "staging"
namespaces = ["*"]
images = ["ghcr.io/acme/*"]
policy = "/etc/opkey/staging.toml"
mode = "warn"
require_digest = false
"""


def test_example_parses_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    config = parse_admission_config(EXAMPLE, base_dir=tmp_path)
    assert config.unmatched is Unmatched.WARN
    production, staging = config.rules
    assert production.name == "production"
    assert production.mode is Mode.ENFORCE
    assert production.require_digest is True
    assert production.policy == tmp_path / "policies" / "release.toml"
    assert staging.mode is Mode.WARN
    assert staging.require_digest is False
    assert staging.policy == Path("/etc/opkey/staging.toml")
    assert config.policy_paths() == (production.policy, staging.policy)


def test_load_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "admission.toml"
    path.write_text(EXAMPLE)
    config = load_admission_config(path)
    assert config.rules[0].policy == tmp_path / "policies" / "release.toml"
    with pytest.raises(ConfigError, match="cannot read admission config"):
        load_admission_config(tmp_path / "missing.toml")


def test_first_matching_rule_decides() -> None:
    config = parse_admission_config(EXAMPLE)
    rule = config.rule_for("prod-eu", "ghcr.io/acme/api")
    assert rule is not None
    assert rule.name == "production"
    rule = config.rule_for("dev", "ghcr.io/acme/api")
    assert rule is not None
    assert rule.name == "staging"
    assert config.rule_for("dev", "ghcr.io/acme/team/api") is None  # * stays in one component
    assert config.rule_for("dev", "ghcr.io/other/api") is None
    nginx = config.rule_for("prod", "docker.io/library/nginx")
    assert nginx is not None
    assert nginx.name == "production"
    assert config.rule_for("prod", "docker.io/library/nginx-evil") is None


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("ghcr.io/acme/*", "ghcr.io/acme/api", True),
        ("ghcr.io/acme/*", "ghcr.io/acme/a/b", False),
        ("ghcr.io/acme/*", "ghcr.io/acme", False),
        ("ghcr.io/acme/**", "ghcr.io/acme/a/b/c", True),
        ("ghcr.io/acme/**", "ghcr.io/acme", False),
        ("ghcr.io/acme/**", "ghcr.io/acmeevil/x", False),
        ("ghcr.io/**/tools", "ghcr.io/acme/x/tools", True),
        ("ghcr.io/**/tools", "ghcr.io/tools", False),
        ("ghcr.io/acme/api-?", "ghcr.io/acme/api-1", True),
        ("ghcr.io/acme/api-?", "ghcr.io/acme/api-12", False),
        ("*.example.com/team/app", "eu.example.com/team/app", True),
        ("*.example.com/team/app", "example.com/team/app", False),
        ("registry.example:5000/**", "registry.example:5000/team/app", True),
        ("registry.example:5000/**", "registry.example:5001/team/app", False),
        ("localhost/app", "localhost/app", True),
        ("**", "docker.io/library/nginx", True),
        ("ghcr.io/a.b/c", "ghcr.io/aXb/c", False),  # dots are literal
    ],
)
def test_image_patterns(pattern: str, name: str, matches: bool) -> None:
    assert ImagePattern(pattern).matches(name) is matches


@pytest.mark.parametrize(
    ("glob", "namespace", "matches"),
    [
        ("prod", "prod", True),
        ("prod", "prod-eu", False),
        ("prod-*", "prod-eu", True),
        ("prod-*", "prod-", True),
        ("team-??", "team-ab", True),
        ("team-??", "team-abc", False),
        ("*", "anything", True),
    ],
)
def test_namespace_globs(glob: str, namespace: str, matches: bool) -> None:
    assert NamespaceGlob(glob).matches(namespace) is matches


def _config(rule: str, top: str = "version = 1") -> str:
    base = 'name = "r"\nnamespaces = ["prod"]\nimages = ["ghcr.io/acme/*"]\npolicy = "p.toml"\n'
    return f"{top}\n[[rules]]\n{base}{rule}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "^version: required; this opkey reads version = 1$"),
        ("version = 2\n", "^version: expected 1, found integer 2$"),
        ('version = "1"\n', '^version: expected 1, found string "1"$'),
        ("version = 1\n", r"^rules: required; list at least one \[\[rules\]\] table$"),
        ("version = 1\nrules = []\n", "^rules: empty"),
        ("version = 1\nrules = 3\n", "^rules: expected an array of tables, found integer 3$"),
        (
            "version = 1\nrule = []\n",
            "^rule: unknown key; expected one of version, unmatched, rules$",
        ),
        (
            _config("", 'version = 1\nunmatched = "reject"'),
            "^unmatched: expected one of deny, warn",
        ),
        (_config('mode = "audit"'), r"^rules\[0\]\.mode: expected one of enforce, warn, found"),
        (_config("require_digest = 1"), r"^rules\[0\]\.require_digest: expected a boolean"),
        (_config("polcy = 1"), r"^rules\[0\]\.polcy: unknown key; expected one of name, names"),
        ("version = 1\n[[rules]]\nname = 'r'\n", r"^rules\[0\]\.namespaces: required$"),
        ("version = 1\nrules = [1]\n", r"^rules\[0\]: expected a table, found integer 1$"),
        ("version = 1\n[[rules]\n", "invalid TOML"),
    ],
)
def test_invalid_configs_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_admission_config(text)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", '"has space"', r"^rules\[0\]\.name: 'has space' is not a rule name"),
        ("name", '""', r"^rules\[0\]\.name: must not be empty$"),
        ("namespaces", "[]", r"^rules\[0\]\.namespaces: empty; list at least one$"),
        ("namespaces", '"prod"', r"^rules\[0\]\.namespaces: expected an array of strings"),
        ("namespaces", '["Prod"]', r"^rules\[0\]\.namespaces\[0\]: 'Prod' is not a namespace"),
        ("namespaces", '["prod", 3]', r"^rules\[0\]\.namespaces\[1\]: expected a string"),
        ("images", '["nginx"]', r"^rules\[0\]\.images\[0\]: image pattern 'nginx' must start"),
        ("images", '["ghcr.io"]', r"names only a registry; add /\*\* to match its images$"),
        ("images", '["ghcr.io/acme/app:1.0"]', r"invalid repository component 'app:1.0' \(no tag"),
        ("images", '["ghcr.io/Acme/app"]', r"'Acme' \(repository names are lowercase\)$"),
        ("images", '["ghcr.io/acme/app@sha256:00"]', r"names a digest"),
        ("images", '["ghcr.io/acme/a**"]', r"\*\* must be a whole path component$"),
        ("images", '["ghcr.io/acme//app"]', r"invalid repository component ''"),
        ("images", '["bad_host.io/app"]', r"invalid registry host 'bad_host.io'"),
        ("policy", '""', r"^rules\[0\]\.policy: must not be empty$"),
        ("policy", "3", r"^rules\[0\]\.policy: expected a string, found integer 3$"),
    ],
)
def test_invalid_rule_fields(field: str, value: str, message: str) -> None:
    lines = {
        "name": '"r"',
        "namespaces": '["prod"]',
        "images": '["ghcr.io/acme/*"]',
        "policy": '"p.toml"',
    }
    lines[field] = value
    text = "version = 1\n[[rules]]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items())
    with pytest.raises(ConfigError, match=message):
        parse_admission_config(text)


def test_rule_names_are_unique() -> None:
    rule = '[[rules]]\nname = "r"\nnamespaces = ["a"]\nimages = ["ghcr.io/a/*"]\npolicy = "p"\n'
    with pytest.raises(ConfigError, match=r"^rules\[1\]\.name: 'r' is used twice$"):
        parse_admission_config("version = 1\n" + rule + rule)


def test_size_and_encoding_are_bounded() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        parse_admission_config("#" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_admission_config(b"\xff")


def test_config_is_a_frozen_value() -> None:
    config = parse_admission_config(EXAMPLE)
    assert isinstance(config, AdmissionConfig)
    with pytest.raises(AttributeError):
        config.unmatched = Unmatched.ALLOW  # type: ignore[misc]
    assert parse_admission_config(EXAMPLE) == config
