"""Policy files: schema, round trip, errors that name the key path, issuer settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opkey.errors import ConfigError
from opkey.expiry import ExpiryPolicy
from opkey.issuers import GITHUB_ACTIONS_ISSUER, CommitmentType, IssuerConfig
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
    pinned_issuers,
)
from opkey.policy.file import (
    IssuerEntry,
    PolicyFile,
    load_policy_file,
    parse_policy_file,
    policy_file_from_dict,
    policy_from_dict,
    policy_to_dict,
)
from opkey.policy.signoff import SignerRequirement
from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline

SPEC = Path(__file__).parent.parent / "spec" / "policy-file.md"
SPEC_EXAMPLES = re.findall(r"```toml\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.DOTALL)

GITHUB = """
version = 1

[[issuers]]
issuer = "https://token.actions.githubusercontent.com"
commitment = "aud"
require_gq = true
expiry = "48h"
leeway = 30
jwks_file = "keys/github.json"
archive = "/var/lib/opkey/archive.sqlite"

[[signers]]
name = "build"
description = "release build"
github = { repository_id = "433903792", repository_owner_id = "25015917" }

[[signers]]
name = "scan"
all_of = [
    { github = { repository_id = "433903792" } },
    { claim = "ref", glob = "refs/tags/v*" },
    { any_of = [
        { claim = "event_name", equals = "push" },
        { claim = "event_name", regex = 'workflow_(dispatch|call)' },
    ] },
]
"""


def roundtrip(policy_file: PolicyFile) -> None:
    assert parse_policy_file(policy_file.to_toml()) == policy_file
    assert policy_file_from_dict(policy_file.to_dict()) == policy_file


def test_spec_has_examples() -> None:
    assert len(SPEC_EXAMPLES) >= 4


@pytest.mark.parametrize("text", SPEC_EXAMPLES)
def test_every_spec_example_parses_and_round_trips(text: str) -> None:
    parsed = parse_policy_file(text)
    assert parsed.signers
    roundtrip(parsed)
    assert parse_policy_file(parsed.to_toml()).to_toml() == parsed.to_toml()


def test_parsed_objects_are_the_expected_values() -> None:
    parsed = parse_policy_file(GITHUB)
    assert parsed == PolicyFile(
        issuers=(
            IssuerEntry(
                config=IssuerConfig(
                    issuer=GITHUB_ACTIONS_ISSUER,
                    commitment=CommitmentType.AUD,
                    algorithms=frozenset({"GQ256"}),
                    require_gq=True,
                    expiry=ExpiryPolicy.max_age_of(48 * 3600, leeway=30),
                ),
                jwks_file=Path("keys/github.json"),
                archive=Path("/var/lib/opkey/archive.sqlite"),
            ),
        ),
        signers=(
            SignerRequirement(
                "build",
                GitHubWorkflow(repository_id="433903792", repository_owner_id="25015917"),
                description="release build",
            ),
            SignerRequirement(
                "scan",
                AllOf(
                    [
                        GitHubWorkflow(repository_id="433903792"),
                        ClaimGlob("ref", "refs/tags/v*"),
                        AnyOf(
                            [
                                ClaimEquals("event_name", "push"),
                                ClaimRegex("event_name", "workflow_(dispatch|call)"),
                            ]
                        ),
                    ]
                ),
            ),
        ),
        distinct_signers=True,
    )
    configs = parsed.issuer_configs()
    assert list(configs) == [GITHUB_ACTIONS_ISSUER]
    assert configs[GITHUB_ACTIONS_ISSUER].require_gq
    assert configs[GITHUB_ACTIONS_ISSUER] is parsed.issuers[0].config
    assert GITHUB_ACTIONS_ISSUER + "/" not in configs
    roundtrip(parsed)


def test_issuer_defaults_and_every_setting() -> None:
    text = """
version = 1
[[issuers]]
issuer = "https://idp.example"
commitment = "aud"
[[issuers]]
issuer = "https://login.example"
commitment = "nonce"
client_id = "opkey"
algorithms = ["RS256", "ES256"]
expiry = "oidc"
[[issuers]]
issuer = "https://gitlab.example"
commitment = "gq-bound"
require_gq = true
algorithms = ["GQ256"]
gq_audience_prefix = "OPENPUBKEY-PKTOKEN:opkey:"
expiry = "never"
leeway = 0
[[signers]]
name = "a"
issuer = "https://idp.example"
"""
    parsed = parse_policy_file(text)
    plain, login, gitlab = (t.config for t in parsed.issuers)
    # The defaults of spec/policy-file.md: GQ256 required unless the commitment is a nonce,
    # and expiry "never" (spec/time.md), the same as for command-line flags.
    assert plain.algorithms == {"GQ256"}
    assert plain.require_gq
    assert plain.expiry == ExpiryPolicy.never()
    assert login.commitment is CommitmentType.NONCE
    assert login.client_id == "opkey"
    assert login.algorithms == {"RS256", "ES256"}
    assert login.expiry == ExpiryPolicy.oidc()
    assert gitlab.commitment is CommitmentType.GQ_BOUND
    assert gitlab.gq_audience_prefix == "OPENPUBKEY-PKTOKEN:opkey:"
    assert gitlab.expiry == ExpiryPolicy.never(leeway=0)
    roundtrip(parsed)


@pytest.mark.parametrize("expiry", ["oidc", "12h", "24h", "48h", "1w", "never"])
def test_every_expiry_name_round_trips(expiry: str) -> None:
    text = f"""
version = 1
[[issuers]]
issuer = "https://idp.example"
commitment = "aud"
expiry = "{expiry}"
[[signers]]
name = "a"
issuer = "https://idp.example"
"""
    parsed = parse_policy_file(text)
    assert str(parsed.issuers[0].config.expiry) == expiry
    roundtrip(parsed)


def test_relative_key_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(GITHUB, encoding="utf-8")
    loaded = load_policy_file(tmp_path / "policy.toml")
    assert loaded.issuers[0].jwks_file == tmp_path / "keys" / "github.json"
    assert loaded.issuers[0].archive == Path("/var/lib/opkey/archive.sqlite")
    assert parse_policy_file(loaded.to_toml()) == loaded


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read policy file"):
        load_policy_file(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_bytes(b'version = 1\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 2"):
        parse_policy_file("version = 1\nsigners = [ = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        parse_policy_file('version = 1\nversion = 1\n[[signers]]\nname = "a"\n')
    with pytest.raises(ConfigError, match="larger than"):
        parse_policy_file("#" * (1024 * 1024 + 1))


SIGNER = '[[signers]]\nname = "a"\n'
ISSUER = '[[issuers]]\nissuer = "https://idp.example"\ncommitment = "aud"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # top level
        ("", r"^version: required"),
        ("version = 2\n" + SIGNER + "issuer = 'x'", r"^version: expected 1, found integer 2"),
        ('version = "1"\n', r'^version: expected 1, found string "1"'),
        ("version = 1\nsigner = 1\n", r"^signer: unknown key"),
        ("version = 1\n", r"^signers: required"),
        ("version = 1\nsigners = []\n", r"^signers: empty"),
        ("version = 1\nsigners = 3\n", r"^signers: expected an array, found integer 3"),
        ("version = 1\ndistinct_signers = 'yes'\n", r"^distinct_signers: expected a boolean"),
        # signers
        ("version = 1\n[[signers]]\nissuer = 'x'\n", r"^signers\[0\]\.name: required"),
        ("version = 1\n" + SIGNER, r"^signers\[0\]: empty rule"),
        (
            "version = 1\n" + SIGNER + "github = { repository_id = 123 }",
            r"^signers\[0\]\.github\.repository_id: expected a string, found integer 123$",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "issuer = 'https://a'\n"
            + SIGNER.replace('"a"', '"b"')
            + "github = { repository_id = 123 }",
            r"^signers\[1\]\.github\.repository_id: expected a string, found integer 123$",
        ),
        (
            "version = 1\n" + SIGNER + "github = { repo = 'x' }",
            r"^signers\[0\]\.github\.repo: unknown key",
        ),
        ("version = 1\n" + SIGNER + "github = {}", r"^signers\[0\]\.github: empty"),
        (
            "version = 1\n" + SIGNER + "github = { ref = 'refs/heads/main' }",
            r"^signers\[0\]\.github: GitHubWorkflow needs repository_id",
        ),
        (
            "version = 1\n" + SIGNER + "github = { repository_id = '1', ref = 'main' }",
            r"^signers\[0\]\.github\.ref: GitHub refs are full names",
        ),
        (
            "version = 1\n" + SIGNER + "gitlab = { project_id = 'acme' }",
            r"^signers\[0\]\.gitlab\.project_id: expected a decimal ID",
        ),
        (
            "version = 1\n" + SIGNER + "issuer = 'https://a'\nsubject = 'x'",
            r"^signers\[0\]: a rule has exactly one of .* found issuer and subject",
        ),
        ("version = 1\n" + SIGNER + "issuer = 1", r"^signers\[0\]\.issuer: expected a string"),
        ("version = 1\n" + SIGNER + "issuer = ''", r"^signers\[0\]\.issuer: must not be empty"),
        ("version = 1\n" + SIGNER + "all_of = []", r"^signers\[0\]\.all_of: empty"),
        ("version = 1\n" + SIGNER + "any_of = []", r"^signers\[0\]\.any_of: empty"),
        ("version = 1\n" + SIGNER + "any_of = {}", r"^signers\[0\]\.any_of: expected an array"),
        (
            "version = 1\n" + SIGNER + "all_of = [{ issuer = 'https://a' }, {}]",
            r"^signers\[0\]\.all_of\[1\]: empty rule",
        ),
        (
            "version = 1\n" + SIGNER + "all_of = [{ issuer = 'https://a' }, 'sub']",
            r"^signers\[0\]\.all_of\[1\]: expected a table, found string",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'ref', regex = '(' }]",
            r"^signers\[0\]\.all_of\[1\]\.regex: .*invalid regular expression",
        ),
        (
            "version = 1\n" + SIGNER + "all_of = [{ issuer = 'https://a' }, { claim = 'r' }]",
            r"^signers\[0\]\.all_of\[1\]: a claim rule needs exactly one of",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'r', equals = 'x', glob = 'x' }]",
            r"^signers\[0\]\.all_of\[1\]: a claim rule needs exactly one of .*equals and glob",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'r', glob = '[x' }]",
            r"^signers\[0\]\.all_of\[1\]\.glob: .*never closed",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'r', equals = 1.5 }]",
            r"^signers\[0\]\.all_of\[1\]\.equals: expected a string, integer or boolean, "
            r"found number 1\.5",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'r', equals = 'x', "
            "allow_non_ascii = true }]",
            r"^signers\[0\]\.all_of\[1\]\.allow_non_ascii: unknown key",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'r', glob = 'x', "
            "allow_non_ascii = 1 }]",
            r"^signers\[0\]\.all_of\[1\]\.allow_non_ascii: expected a boolean",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { claim = 'r', glob = 'caf\u00e9' }]",
            r"^signers\[0\]\.all_of\[1\]\.glob: .*non-ASCII",
        ),
        (
            "version = 1\n" + SIGNER + "all_of = [{ issuer = 'https://a' }, { equals = 'x' }]",
            r"^signers\[0\]\.all_of\[1\]\.equals: needs a claim key",
        ),
        (
            "version = 1\n" + SIGNER + "all_of = [{ issuer = 'https://a', frobnicate = 1 }]",
            r"^signers\[0\]\.all_of\[0\]\.frobnicate: unknown key",
        ),
        ("version = 1\n" + SIGNER + "color = 'red'", r"^signers\[0\]\.color: unknown key"),
        (
            "version = 1\n" + SIGNER + "unsafe_no_policy = false",
            r"^signers\[0\]\.unsafe_no_policy: must be true",
        ),
        (
            "version = 1\n" + SIGNER + "subject = 'x'",
            r"^signers\[0\]: signer 'a' does not pin an issuer",
        ),
        (
            "version = 1\n" + SIGNER + "any_of = [{ issuer = 'https://a' }, { subject = 'x' }]",
            r"^signers\[0\]: signer 'a' does not pin an issuer",
        ),
        (
            "version = 1\n"
            + SIGNER
            + "all_of = [{ issuer = 'https://a' }, { issuer = 'https://b' }]",
            r"^signers\[0\]: signer 'a' requires conflicting issuers",
        ),
        (
            "version = 1\n" + SIGNER + "issuer = 'https://a'\n" + SIGNER + "issuer = 'https://a'",
            r"^signers\[1\]\.name: 'a' is used twice",
        ),
        (
            "version = 1\n" + ISSUER + SIGNER + "issuer = 'https://other.example'",
            r"^signers\[0\]: signer 'a' accepts issuer https://other\.example, which is not in",
        ),
        (
            "version = 1\n" + ISSUER + SIGNER + "github = { repository_id = '1' }",
            r"^signers\[0\]: signer 'a' accepts issuer https://token\.actions",
        ),
        (
            "version = 1\n" + SIGNER + 'name2 = 1\nissuer = "https://a"\ndescription = 3',
            r"^signers\[0\]\.description: expected a string",
        ),
        # issuers
        ("version = 1\nissuers = 1\n", r"^issuers: expected an array"),
        ("version = 1\nissuers = [1]\n", r"^issuers\[0\]: expected a table, found integer 1"),
        ("version = 1\n[[issuers]]\ncommitment = 'aud'\n", r"^issuers\[0\]\.issuer: required"),
        (
            "version = 1\n[[issuers]]\nissuer = 'https://a'\n",
            r"^issuers\[0\]\.commitment: required",
        ),
        (
            "version = 1\n[[issuers]]\nissuer = 'https://a '\ncommitment = 'aud'\n",
            r"^issuers\[0\]\.issuer: has leading or trailing whitespace",
        ),
        (
            "version = 1\n" + ISSUER + "colour = 1\n",
            r"^issuers\[0\]\.colour: unknown key",
        ),
        (
            "version = 1\n" + ISSUER.replace("aud", "audience"),
            r"^issuers\[0\]\.commitment: expected one of nonce, aud, gq-bound, key-bound, "
            "found string",
        ),
        (
            "version = 1\n" + ISSUER + "require_gq = 'yes'\n",
            r"^issuers\[0\]\.require_gq: expected a boolean",
        ),
        (
            "version = 1\n" + ISSUER + "algorithms = 'RS256'\n",
            r"^issuers\[0\]\.algorithms: expected an array",
        ),
        (
            "version = 1\n" + ISSUER + "algorithms = ['RS256', 256]\n",
            r"^issuers\[0\]\.algorithms\[1\]: expected a string, found integer 256",
        ),
        (
            "version = 1\n" + ISSUER + "algorithms = ['RS256', 'RS256']\n",
            r"^issuers\[0\]\.algorithms: lists an algorithm twice",
        ),
        (
            "version = 1\n" + ISSUER + "algorithms = ['HS256']\n",
            r"^issuers\[0\]: unsupported algorithms \['HS256'\]",
        ),
        (
            "version = 1\n" + ISSUER + "algorithms = []\n",
            r"^issuers\[0\]: at least one OP algorithm",
        ),
        (
            "version = 1\n" + ISSUER + "require_gq = true\nalgorithms = ['RS256', 'GQ256']\n",
            r"^issuers\[0\]: require_gq allows only GQ256",
        ),
        (
            "version = 1\n[[issuers]]\nissuer = 'https://a'\ncommitment = 'gq-bound'\n"
            "require_gq = false\n",
            r"^issuers\[0\]: GQ-bound commitments need require_gq",
        ),
        (
            "version = 1\n[[issuers]]\nissuer = 'https://a'\ncommitment = 'nonce'\n",
            r"^issuers\[0\]: issuer https://a: nonce commitments need a client_id",
        ),
        (
            "version = 1\n" + ISSUER + "expiry = '2d'\n",
            r"^issuers\[0\]\.expiry: expected one of oidc, 12h, 24h, 48h, 1w, never, "
            r'found string "2d"',
        ),
        ("version = 1\n" + ISSUER + "leeway = 3600\n", r"^issuers\[0\]\.leeway: leeway must be"),
        (
            "version = 1\n" + ISSUER + "leeway = true\n",
            r"^issuers\[0\]\.leeway: expected an integer",
        ),
        (
            "version = 1\n" + ISSUER + "client_id = 5\n",
            r"^issuers\[0\]\.client_id: expected a string",
        ),
        (
            "version = 1\n" + ISSUER + "jwks_file = ''\n",
            r"^issuers\[0\]\.jwks_file: must not be empty",
        ),
        ("version = 1\n" + ISSUER + "archive = []\n", r"^issuers\[0\]\.archive: expected a string"),
        (
            "version = 1\n" + ISSUER + ISSUER,
            r"^issuers\[1\]\.issuer: 'https://idp\.example' is already listed",
        ),
    ],
)
def test_errors_name_the_key_path(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy_file(body)


def test_rules_nested_too_deeply_are_rejected() -> None:
    rule: dict[str, Any] = {"issuer": "https://a"}
    for _ in range(20):
        rule = {"all_of": [rule]}
    with pytest.raises(ConfigError, match="nested deeper than"):
        policy_file_from_dict({"version": 1, "signers": [{"name": "a", **rule}]})


def test_unsafe_no_policy_is_explicit_and_exempt_from_issuer_pinning() -> None:
    parsed = parse_policy_file("version = 1\n" + SIGNER + "unsafe_no_policy = true\n")
    assert parsed.signers[0].policy == UnsafeNoPolicy()
    roundtrip(parsed)


def test_policy_dict_round_trip_for_every_kind() -> None:
    policy = AllOf(
        [
            Issuer("https://gitlab.example"),
            Subject("project_path:acme/app:ref_type:branch:ref:main"),
            ClaimEquals("runner_id", 1),
            ClaimEquals("email_verified", True),
            ClaimContains("groups", "release"),
            ClaimGlob("ref", "release/*"),
            ClaimGlob("environment", "caf\u00e9-*", allow_non_ascii=True),
            ClaimRegex("ref", r"v\d+"),
            AnyOf([GitLabPipeline(project_id="20", issuer="https://gitlab.example")]),
            GitHubWorkflow(
                repository="acme/app", issuer="https://token.actions.githubusercontent.com/acme"
            ),
            UnsafeNoPolicy(),
        ]
    )
    data = policy_to_dict(policy)
    assert policy_from_dict(data) == policy
    assert data["all_of"][2] == {"claim": "runner_id", "equals": 1}
    assert data["all_of"][3] == {"claim": "email_verified", "equals": True}
    assert data["all_of"][8] == {
        "any_of": [{"gitlab": {"project_id": "20", "issuer": "https://gitlab.example"}}]
    }


def test_custom_policies_cannot_be_written() -> None:
    class Custom:
        def check(self, claims: Any) -> None:
            """Accept."""

        def describe(self) -> str:
            return "custom"

    with pytest.raises(ConfigError, match="Custom cannot be written"):
        policy_to_dict(Custom())


def test_to_toml_escapes_non_ascii_and_quotes() -> None:
    tricky = 'octo/\u0430pp "quoted" back\\slash\ttab \U0001f600'
    policy_file = PolicyFile(
        signers=(
            SignerRequirement(
                "a",
                AllOf(
                    [Issuer("https://a"), ClaimEquals("repository", tricky)],
                ),
                description="line\nbreak",
            ),
        )
    )
    text = policy_file.to_toml()
    assert text.isascii()
    assert "\\u0430" in text
    assert "\\U0001F600" in text
    roundtrip(policy_file)


# -- property: any policy the schema can express survives the round trip --------------------

_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], max_codepoint=0x10FFFF),
    min_size=1,
    max_size=12,
)
_ascii = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
_value = st.one_of(_text, st.integers(-(2**63), 2**63 - 1), st.booleans())
_glob = _ascii.filter(lambda s: "[" not in s)
_leaf: st.SearchStrategy[Policy] = st.one_of(
    st.builds(Issuer, _ascii.map(str.strip).filter(bool)),
    st.builds(Subject, _text),
    st.builds(ClaimEquals, _text, _value),
    st.builds(ClaimContains, _text, _value),
    st.builds(ClaimGlob, _text, _glob),
    st.builds(ClaimRegex, _text, _ascii.map(re.escape)),
    st.builds(
        GitHubWorkflow,
        repository_id=st.integers(1, 10**12).map(str),
        ref=st.sampled_from([None, "refs/heads/main", "refs/tags/v1"]),
        environment=st.one_of(st.none(), _text.map(str.strip).filter(bool)),
    ),
    st.builds(GitLabPipeline, project_path=st.sampled_from(["acme/app", "a/b/c"])),
    st.just(UnsafeNoPolicy()),
)
_rule: st.SearchStrategy[Policy] = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(AllOf),
        st.lists(inner, min_size=1, max_size=3).map(AnyOf),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_rule, min_size=1, max_size=3),
    st.booleans(),
    st.lists(st.text(min_size=1, max_size=8).map(str.strip).filter(bool), min_size=3, unique=True),
)
def test_round_trip_property(rules: list[Policy], distinct: bool, names: list[str]) -> None:
    # Every signer must pin a (non-contradictory) issuer to be a valid file.
    pinned = [
        rule if pinned_issuers(rule) else AllOf([Issuer("https://a"), rule]) for rule in rules
    ]
    assume(all(pinned_issuers(rule) != frozenset() for rule in pinned))
    signers = tuple(SignerRequirement(names[i], rule) for i, rule in enumerate(pinned))
    policy_file = PolicyFile(signers=signers, distinct_signers=distinct)
    assert parse_policy_file(policy_file.to_toml()) == policy_file
    assert policy_file_from_dict(policy_file.to_dict()) == policy_file
