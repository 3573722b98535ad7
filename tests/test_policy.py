"""Identity policies against real GitHub Actions claims and a realistic GitLab claim set."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opkey.errors import ConfigError, PolicyError
from opkey.issuers import GITHUB_ACTIONS_ISSUER, GITLAB_ISSUER
from opkey.jose import freeze_json, parse_compact, parse_json_object
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
from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline

DATA = Path(__file__).parent / "data" / "github-actions"
TOKEN_FILES = sorted(p.name for p in DATA.glob("*.jwt"))
CYRILLIC_A = "\u0430"


def load_claims(name: str) -> Mapping[str, Any]:
    """The payload of a real GitHub Actions ID token, frozen as the verifier hands it out."""
    jws = parse_compact((DATA / name).read_text().strip())
    return freeze_json(parse_json_object(jws.payload()))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def varunsh() -> Mapping[str, Any]:
    return load_claims("gha-2022-08-05_varunsh-coder_actions-playground.jwt")


@pytest.fixture(scope="module")
def rgl() -> Mapping[str, Any]:
    return load_claims("gha-2025-03-29_rgl.jwt")


def with_claims(claims: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    result = dict(claims)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


# A GitLab CI id_tokens payload with the claim names, types and shapes GitLab documents
# (docs.gitlab.com ci/secrets/id_token_authentication; runner_id is the one integer claim).
GITLAB_CLAIMS: Mapping[str, Any] = freeze_json(
    {
        "namespace_id": "72",
        "namespace_path": "acme",
        "project_id": "20",
        "project_path": "acme/release-tools",
        "user_id": "1",
        "user_login": "ci-bot",
        "user_email": "ci-bot@example.com",
        "user_access_level": "maintainer",
        "pipeline_id": "574",
        "pipeline_source": "push",
        "job_id": "302",
        "ref": "main",
        "ref_type": "branch",
        "ref_path": "refs/heads/main",
        "ref_protected": "true",
        "environment": "production",
        "environment_protected": "true",
        "deployment_tier": "production",
        "runner_id": 1,
        "runner_environment": "gitlab-hosted",
        "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "ci_config_ref_uri": "gitlab.com/acme/release-tools//.gitlab-ci.yml@refs/heads/main",
        "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
        "project_visibility": "public",
        "jti": "235a72e0-5b0b-45e4-9d48-38e5a8a8c1a7",
        "iss": "https://gitlab.com",
        "iat": 1681395193,
        "nbf": 1681395188,
        "exp": 1681398793,
        "sub": "project_path:acme/release-tools:ref_type:branch:ref:main",
        "aud": ["OPENPUBKEY-PKTOKEN:abc", "https://verifier.example"],
    }
)


def passes(policy: Policy, claims: Mapping[str, Any]) -> bool:
    try:
        policy.check(claims)
    except PolicyError:
        return False
    return True


# -- every real token, its own identity ------------------------------------------------------


@pytest.mark.parametrize("name", TOKEN_FILES)
def test_github_workflow_matches_each_real_token_on_its_stable_ids(name: str) -> None:
    claims = load_claims(name)
    policy = GitHubWorkflow(
        repository_id=claims["repository_id"],
        repository_owner_id=claims["repository_owner_id"],
        repository=claims["repository"],
        ref=claims["ref"],
        job_workflow_ref=claims["job_workflow_ref"],
        sha=claims["sha"],
        event_name=claims["event_name"],
    )
    policy.check(claims)
    Issuer(GITHUB_ACTIONS_ISSUER).check(claims)


@pytest.mark.parametrize("name", TOKEN_FILES)
def test_github_workflow_rejects_every_other_real_token(name: str) -> None:
    claims = load_claims(name)
    policy = GitHubWorkflow(repository_id=claims["repository_id"], ref=claims["ref"])
    for other in TOKEN_FILES:
        other_claims = load_claims(other)
        same = (other_claims["repository_id"], other_claims["ref"]) == (
            claims["repository_id"],
            claims["ref"],
        )
        assert passes(policy, other_claims) is same, other


@pytest.mark.parametrize(
    ("field", "wrong"),
    [
        ("repository_id", "433903793"),
        ("repository_owner_id", "25015918"),
        ("repository", "varunsh-coder/actions-playground2"),
        ("repository_owner", "varunsh-coder2"),
        ("ref", "refs/heads/mainx"),
        ("ref_type", "tag"),
        (
            "job_workflow_ref",
            "varunsh-coder/actions-playground/.github/workflows/x.yml@refs/heads/main",
        ),
        ("sha", "0" * 40),
        ("event_name", "push"),
    ],
)
def test_github_workflow_each_field_is_checked(
    varunsh: Mapping[str, Any], field: str, wrong: str
) -> None:
    base = {"repository_id": "433903792"}
    good = GitHubWorkflow(**{**base, field: varunsh[field]})
    good.check(varunsh)
    bad = GitHubWorkflow(**{**base, field: wrong})
    with pytest.raises(PolicyError, match=rf"claim '{field}': expected string") as info:
        bad.check(varunsh)
    assert info.value.expected == wrong
    assert info.value.found == varunsh[field]


def test_github_workflow_fields_absent_from_old_tokens_fail_as_missing(
    varunsh: Mapping[str, Any], rgl: Mapping[str, Any]
) -> None:
    # 2022 tokens have no workflow_ref / runner_environment claims; 2025 tokens do.
    policy = GitHubWorkflow(
        repository_id=rgl["repository_id"],
        workflow_ref=rgl["workflow_ref"],
        job_workflow_sha=rgl["job_workflow_sha"],
        runner_environment="github-hosted",
    )
    policy.check(rgl)
    old = GitHubWorkflow(repository_id="433903792", runner_environment="github-hosted")
    with pytest.raises(PolicyError, match=r"'runner_environment'.*missing"):
        old.check(varunsh)
    env = GitHubWorkflow(repository_id=rgl["repository_id"], environment="production")
    with pytest.raises(PolicyError, match=r"'environment'.*missing"):
        env.check(rgl)


def test_github_workflow_checks_the_issuer_first(varunsh: Mapping[str, Any]) -> None:
    policy = GitHubWorkflow(repository_id="433903792")
    for issuer in (
        GITHUB_ACTIONS_ISSUER + "/",
        "http://token.actions.githubusercontent.com",
        "https://token.actions.githubusercontent.com/acme",
        GITLAB_ISSUER,
    ):
        with pytest.raises(PolicyError, match="claim 'iss'"):
            policy.check(with_claims(varunsh, iss=issuer))
    enterprise = GitHubWorkflow(
        repository_id="433903792", issuer="https://token.actions.githubusercontent.com/acme"
    )
    enterprise.check(with_claims(varunsh, iss="https://token.actions.githubusercontent.com/acme"))
    with pytest.raises(PolicyError, match="claim 'iss'"):
        enterprise.check(varunsh)


def test_github_ids_beat_names_after_a_repository_is_re_registered(
    varunsh: Mapping[str, Any],
) -> None:
    # Someone registers the freed name: same repository string, new numeric IDs.
    squatter = with_claims(varunsh, repository_id="999999999", repository_owner_id="888888888")
    by_name = GitHubWorkflow(repository="varunsh-coder/actions-playground")
    by_id = GitHubWorkflow(repository_id="433903792", repository_owner_id="25015917")
    assert passes(by_name, squatter)
    assert not passes(by_id, squatter)
    assert passes(by_id, varunsh)


def test_github_workflow_rejects_confusable_repository(varunsh: Mapping[str, Any]) -> None:
    fake = "varunsh-coder/actions-pl" + CYRILLIC_A + "yground"
    claims = with_claims(varunsh, repository=fake)
    with pytest.raises(PolicyError, match=r"U\+0430 CYRILLIC SMALL LETTER A at index 24"):
        GitHubWorkflow(repository="varunsh-coder/actions-playground").check(claims)
    with pytest.raises(PolicyError, match="printable ASCII"):
        ClaimGlob("repository", "varunsh-coder/*").check(claims)
    with pytest.raises(PolicyError, match="printable ASCII"):
        ClaimRegex("repository", r"varunsh-coder/[a-z-]+").check(claims)
    with pytest.raises(PolicyError, match="printable ASCII"):
        ClaimGlob("repository", "**").check(claims)
    # the unmodified claims still match, so the failures above are due to the confusable
    ClaimGlob("repository", "varunsh-coder/*").check(varunsh)


def test_github_workflow_rejects_ids_of_the_wrong_json_type(varunsh: Mapping[str, Any]) -> None:
    policy = GitHubWorkflow(repository_id="433903792")
    with pytest.raises(PolicyError, match="found integer 433903792"):
        policy.check(with_claims(varunsh, repository_id=433903792))
    with pytest.raises(PolicyError, match="missing"):
        policy.check(with_claims(varunsh, repository_id=None))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs repository_id"),
        ({"repository_owner_id": "25015917"}, "needs repository_id"),
        ({"repository_id": 433903792}, r"repository_id: expected a string, found integer"),
        ({"repository_id": "0x1a"}, "decimal ID"),
        ({"repository_id": ""}, "must not be empty"),
        ({"repository_id": " 433903792"}, "whitespace"),
        ({"repository": "https://github.com/o/r"}, "owner/name"),
        ({"repository": "o/r" + CYRILLIC_A}, "not printable ASCII"),
        ({"repository_id": "1", "repository_owner": "o/r"}, "no '/'"),
        ({"repository_id": "1", "ref": "main"}, "refs/heads/main"),
        ({"repository_id": "1", "ref_type": "Branch"}, "one of branch, tag"),
        ({"repository_id": "1", "sha": "A" * 40}, "lowercase hex"),
        ({"repository_id": "1", "job_workflow_ref": "o/r/.github/workflows/x.yml"}, "@"),
        ({"repository_id": "1", "issuer": ""}, "issuer: must not be empty"),
    ],
)
def test_github_workflow_construction_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GitHubWorkflow(**kwargs)


# -- GitLab ----------------------------------------------------------------------------------


def test_gitlab_pipeline_matches_and_mismatches() -> None:
    policy = GitLabPipeline(
        project_id="20",
        namespace_id="72",
        ref="main",
        ref_type="branch",
        ref_protected="true",
        pipeline_source="push",
        environment="production",
        ci_config_ref_uri="gitlab.com/acme/release-tools//.gitlab-ci.yml@refs/heads/main",
    )
    policy.check(GITLAB_CLAIMS)
    assert "project_id" in policy.describe()
    for name, wrong in [
        ("project_id", "21"),
        ("namespace_id", "7"),
        ("ref", "Main"),
        ("ref_protected", "false"),
        ("pipeline_source", "merge_request_event"),
        ("environment", "production "),
    ]:
        with pytest.raises(PolicyError, match=f"claim '{name}'"):
            policy.check(with_claims(GITLAB_CLAIMS, **{name: wrong}))
    with pytest.raises(PolicyError, match="claim 'iss'"):
        policy.check(with_claims(GITLAB_CLAIMS, iss="gitlab.com"))  # the old CI_JOB_JWT issuer
    with pytest.raises(PolicyError, match="found integer 20"):
        policy.check(with_claims(GITLAB_CLAIMS, project_id=20))


def test_gitlab_pipeline_self_managed_issuer_and_errors() -> None:
    policy = GitLabPipeline(project_path="acme/release-tools", issuer="https://git.example.com")
    policy.check(with_claims(GITLAB_CLAIMS, iss="https://git.example.com"))
    with pytest.raises(PolicyError, match="claim 'iss'"):
        policy.check(GITLAB_CLAIMS)
    with pytest.raises(ConfigError, match="needs project_id"):
        GitLabPipeline(namespace_id="72")
    with pytest.raises(ConfigError, match="short branch or tag name"):
        GitLabPipeline(project_id="20", ref="refs/heads/main")
    with pytest.raises(ConfigError, match="one of true, false"):
        GitLabPipeline(project_id="20", ref_protected="yes")
    with pytest.raises(ConfigError, match="decimal ID"):
        GitLabPipeline(project_id="acme")
    assert GitLabPipeline(project_id="20").issuer == GITLAB_ISSUER
    # a GitHub token is not a GitLab pipeline even if claim names happened to collide
    assert not passes(GitLabPipeline(project_id="20"), with_claims(GITLAB_CLAIMS, iss="x"))


# -- leaves: exactness -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        "https://token.actions.githubusercontent.com/",
        "https://Token.actions.githubusercontent.com",
        "HTTPS://token.actions.githubusercontent.com",
        " https://token.actions.githubusercontent.com",
        "https://token.actions.githubusercontent.com\n",
        "https://token.actions.githubusercontent",  # substring (PyJWT CVE-2024-53861)
        "token.actions.githubusercontent.com",
        "https://token." + CYRILLIC_A + "ctions.githubusercontent.com",
    ],
)
def test_issuer_is_exact(varunsh: Mapping[str, Any], variant: str) -> None:
    Issuer(GITHUB_ACTIONS_ISSUER).check(varunsh)
    with pytest.raises(PolicyError, match="claim 'iss'"):
        Issuer(GITHUB_ACTIONS_ISSUER).check(with_claims(varunsh, iss=variant))
    if variant.strip() == variant:
        with pytest.raises(PolicyError, match="claim 'iss'"):
            Issuer(variant).check(varunsh)


def test_subject_is_exact(varunsh: Mapping[str, Any]) -> None:
    sub = "repo:varunsh-coder/actions-playground:ref:refs/heads/main"
    Subject(sub).check(varunsh)
    for variant in (sub.upper(), sub + "/", sub + " ", "repo:varunsh-coder/actions-playground"):
        with pytest.raises(PolicyError, match="claim 'sub'"):
            Subject(variant).check(varunsh)
    with pytest.raises(PolicyError, match="missing"):
        Subject(sub).check(with_claims(varunsh, sub=None))


def test_nfc_and_nfd_spellings_never_match_each_other() -> None:
    nfc = unicodedata.normalize("NFC", "café-deploy")
    nfd = unicodedata.normalize("NFD", "café-deploy")
    assert nfc != nfd
    ClaimEquals("environment", nfc).check({"environment": nfc})
    with pytest.raises(PolicyError, match="environment"):
        ClaimEquals("environment", nfc).check({"environment": nfd})
    with pytest.raises(PolicyError, match="environment"):
        ClaimEquals("environment", nfd).check({"environment": nfc})
    glob = ClaimGlob("environment", "caf*", allow_non_ascii=True)
    glob.check({"environment": nfc})
    glob.check({"environment": nfd})  # '*' is a wildcard, so this one is the user's choice
    with pytest.raises(PolicyError, match="printable ASCII"):
        ClaimGlob("environment", "caf*").check({"environment": nfd})


@pytest.mark.parametrize(
    ("expected", "found", "ok"),
    [
        ("6", "6", True),
        ("6", 6, False),
        (6, "6", False),
        (6, 6, True),
        (True, True, True),
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (0, False, False),
        ("true", True, False),
        (True, "true", False),
        ("", "", True),
        (6, 6.0, False),
        ("x", ["x"], False),
        ("x", ("x",), False),
        ("x", None, False),
    ],
)
def test_claim_equals_is_type_exact(expected: Any, found: Any, ok: bool) -> None:
    assert passes(ClaimEquals("c", expected), {"c": found}) is ok


def test_claim_equals_on_real_claims(varunsh: Mapping[str, Any]) -> None:
    ClaimEquals("run_number", "6").check(varunsh)
    ClaimEquals("iat", 1659662993).check(varunsh)
    ClaimEquals("head_ref", "").check(varunsh)
    with pytest.raises(PolicyError, match=r"claim 'run_number': expected integer 6, found string"):
        ClaimEquals("run_number", 6).check(varunsh)
    with pytest.raises(PolicyError, match="missing"):
        ClaimEquals("environment", "production").check(varunsh)


@pytest.mark.parametrize("value", [1.5, None, ["a"], {"a": 1}, b"x"])
def test_claim_equals_rejects_values_without_exact_meaning(value: Any) -> None:
    with pytest.raises(ConfigError, match="expected a string, integer or boolean"):
        ClaimEquals("c", value)
    with pytest.raises(ConfigError, match="expected a string, integer or boolean"):
        ClaimContains("c", value)


@pytest.mark.parametrize("name", ["", None, 3])
def test_claim_names_must_be_strings(name: Any) -> None:
    with pytest.raises(ConfigError, match="claim name"):
        ClaimEquals(name, "x")
    with pytest.raises(ConfigError, match="claim name"):
        ClaimGlob(name, "x")


def test_claim_contains_is_membership_only(varunsh: Mapping[str, Any]) -> None:
    aud_list = {"aud": ("https://github.com/acme", "sigstore"), "groups": ("admins", 1)}
    ClaimContains("aud", "sigstore").check(aud_list)
    ClaimContains("aud", "https://github.com/varunsh-coder").check(varunsh)  # string aud
    ClaimContains("groups", 1).check(aud_list)
    for wrong in ("sig", "https://github.com", "SIGSTORE", "sigstore "):
        with pytest.raises(PolicyError, match="an array containing"):
            ClaimContains("aud", wrong).check(aud_list)
    with pytest.raises(PolicyError, match="an array containing"):
        ClaimContains("aud", "https://github.com").check(varunsh)  # no substring match
    with pytest.raises(PolicyError):
        ClaimContains("groups", True).check(aud_list)  # True is not 1
    with pytest.raises(PolicyError):
        ClaimContains("groups", "1").check(aud_list)
    with pytest.raises(PolicyError, match="found integer"):
        ClaimContains("iat", 1659662993).check(varunsh)
    with pytest.raises(PolicyError, match="missing"):
        ClaimContains("groups", "admins").check(varunsh)
    # a list claim is never equal to a scalar
    with pytest.raises(PolicyError, match="found array"):
        ClaimEquals("aud", "sigstore").check(aud_list)


# -- globs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        ("refs/heads/*", "refs/heads/main", True),
        ("refs/heads/*", "refs/heads/feature/x", False),
        ("refs/heads/**", "refs/heads/feature/x", True),
        ("refs/heads/*", "refs/heads/", True),
        ("refs/heads/*", "refs/heads", False),
        ("refs/heads/*", "xrefs/heads/main", False),
        ("refs/heads/main", "refs/heads/main2", False),
        ("refs/heads/main", "refs/heads/Main", False),
        ("refs/tags/v?.?", "refs/tags/v1.2", True),
        ("refs/tags/v?.?", "refs/tags/v1.23", False),
        ("a?b", "a/b", False),
        ("refs/tags/v[0-9]*", "refs/tags/v1.0", True),
        ("refs/tags/v[0-9]*", "refs/tags/vx", False),
        ("refs/tags/[!x]*", "refs/tags/v1", True),
        ("refs/tags/[!x]*", "refs/tags/x1", False),
        ("a[!x]b", "a/b", False),
        ("a[*]b", "a*b", True),
        ("a[*]b", "axb", False),
        ("a[]]b", "a]b", True),
        ("a[[]b", "a[b", True),
        ("a.b", "axb", False),
        ("a+b", "aab", False),
        ("(a|b)", "a", False),
        ("octo/**/x.yml@refs/heads/main", "octo/r/.github/workflows/x.yml@refs/heads/main", True),
        ("**", "", True),
        ("*", "a/b", False),
        ("a*", "a\nb", True),
    ],
)
def test_glob_semantics(pattern: str, value: str, ok: bool) -> None:
    policy = ClaimGlob("c", pattern, allow_non_ascii="\n" in value)
    assert passes(policy, {"c": value}) is ok


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("refs/[heads", "never closed"),
        ("[z-a]", "reversed"),
        ("", "must not be empty"),
        ("caf\u00e9*", "non-ASCII"),
        ("a\tb", "control"),
    ],
)
def test_glob_construction_errors(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClaimGlob("c", pattern)


def test_glob_on_real_claims(rgl: Mapping[str, Any]) -> None:
    ClaimGlob("job_workflow_ref", "rgl/*/.github/workflows/*.yml@refs/heads/*").check(rgl)
    ClaimGlob("job_workflow_ref", "rgl/**").check(rgl)
    with pytest.raises(PolicyError, match="glob"):
        ClaimGlob("job_workflow_ref", "rgl/*").check(rgl)  # '*' does not cross '/'
    with pytest.raises(PolicyError, match="glob"):
        ClaimGlob("ref", "refs/tags/*").check(rgl)
    with pytest.raises(PolicyError, match="found integer"):
        ClaimGlob("iat", "*").check(rgl)


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30))
def test_glob_star_never_crosses_a_slash(value: str) -> None:
    assert passes(ClaimGlob("c", "*"), {"c": value}) is ("/" not in value)
    assert passes(ClaimGlob("c", "**"), {"c": value})


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="*?["),
        min_size=1,
        max_size=20,
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_glob_without_wildcards_is_exact_equality(pattern: str, value: str) -> None:
    assert passes(ClaimGlob("c", pattern), {"c": value}) is (pattern == value)


# -- regexes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "ok"),
    [
        ("foo", "foo", True),
        ("foo", "xfoo", False),
        ("foo", "foox", False),
        ("foo", "foo\n", False),
        ("^foo", "foox", False),
        ("foo$", "xfoo", False),
        ("a|b", "ab", False),
        ("^a|b$", "ax", False),
        ("refs/tags/v[0-9]+\\.[0-9]+", "refs/tags/v1.20", True),
        ("refs/tags/v[0-9]+\\.[0-9]+", "refs/tags/v1.20-rc", False),
        ("(?i)main", "MAIN", True),
    ],
)
def test_regex_is_always_fully_anchored(pattern: str, value: str, ok: bool) -> None:
    assert passes(ClaimRegex("c", pattern), {"c": value}) is ok


def test_regex_digits_are_ascii_unless_allowed() -> None:
    arabic_indic = "\u0664\u0663\u0663"  # "433" in Arabic-Indic digits
    assert not passes(ClaimRegex("repository_id", r"\d+"), {"repository_id": arabic_indic})
    assert passes(
        ClaimRegex("repository_id", r"\d+", allow_non_ascii=True), {"repository_id": arabic_indic}
    )
    assert passes(ClaimRegex("repository_id", r"\d+"), {"repository_id": "433"})


@pytest.mark.parametrize("pattern", ["(", "[a-", "a{2,1}", "*x", "(?<name", "a)"])
def test_invalid_regex_is_a_config_error_at_construction(pattern: str) -> None:
    with pytest.raises(ConfigError, match="invalid regular expression") as info:
        ClaimRegex("ref", pattern)
    assert info.value.found == pattern


def test_regex_on_real_claims(rgl: Mapping[str, Any]) -> None:
    ClaimRegex("repository_id", "[0-9]+").check(rgl)
    ClaimRegex("sub", r"repo:rgl/[^:]+:ref:refs/heads/main").check(rgl)
    with pytest.raises(PolicyError, match="full match for regex"):
        ClaimRegex("sub", "repo:rgl/").check(rgl)
    with pytest.raises(PolicyError, match="full match for regex"):
        ClaimRegex("repository", "github-actions").check(rgl)


_SAFE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@given(
    st.text(alphabet=_SAFE, min_size=1, max_size=15),
    st.text(alphabet=_SAFE, max_size=8),
    st.text(alphabet=_SAFE, max_size=8),
)
def test_regex_never_matches_a_proper_superstring(core: str, before: str, after: str) -> None:
    policy = ClaimRegex("c", re.escape(core))
    value = before + core + after
    assert passes(policy, {"c": value}) is (value == core)


@given(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text(alphabet=_SAFE, min_size=1))
def test_unanchored_looking_patterns_are_anchored(word: str, extra: str) -> None:
    assert passes(ClaimRegex("c", f"^{word}"), {"c": word})
    assert not passes(ClaimRegex("c", f"^{word}"), {"c": word + extra})
    assert not passes(ClaimRegex("c", f"{word}$"), {"c": extra + word})


# -- composition -----------------------------------------------------------------------------


def test_all_of(varunsh: Mapping[str, Any]) -> None:
    policy = AllOf(
        [Issuer(GITHUB_ACTIONS_ISSUER), ClaimEquals("repository_id", "433903792"), Subject("x")]
    )
    with pytest.raises(PolicyError, match="claim 'sub'"):
        policy.check(varunsh)
    AllOf([Issuer(GITHUB_ACTIONS_ISSUER), ClaimEquals("repository_id", "433903792")]).check(varunsh)
    assert policy.describe().startswith("all of (iss == ")
    assert AllOf([Subject("x")]) == AllOf((Subject("x"),))
    assert isinstance(AllOf([Subject("x")]).policies, tuple)


def test_empty_compositions_are_rejected() -> None:
    with pytest.raises(ConfigError, match="accept every signer"):
        AllOf([])
    with pytest.raises(ConfigError, match="never match"):
        AnyOf([])


def test_compositions_reject_non_policies() -> None:
    with pytest.raises(TypeError, match="member 1"):
        AllOf([Subject("x"), "sub == x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of policies"):
        AnyOf("abc")  # type: ignore[arg-type]


def test_any_of(varunsh: Mapping[str, Any], rgl: Mapping[str, Any]) -> None:
    policy = AnyOf(
        [
            GitHubWorkflow(repository_id="433903792"),
            GitHubWorkflow(repository_id=rgl["repository_id"]),
        ]
    )
    policy.check(varunsh)
    policy.check(rgl)
    other = load_claims("gha-2022-08-08_qoomon_sandbox.jwt")
    with pytest.raises(PolicyError, match=r"none of 2 alternatives holds: \(1\) .*\(2\) ") as info:
        policy.check(other)
    assert isinstance(info.value.found, list)
    assert len(info.value.found) == 2


# -- UnsafeNoPolicy and analysis -------------------------------------------------------------


def test_unsafe_no_policy_accepts_everything_and_says_so(varunsh: Mapping[str, Any]) -> None:
    policy = UnsafeNoPolicy()
    policy.check(varunsh)
    policy.check({})
    assert "UNSAFE" in policy.describe()
    assert accepts_any_signer(policy)
    assert accepts_any_signer(AnyOf([Subject("x"), policy]))
    assert accepts_any_signer(AllOf([policy]))
    assert not accepts_any_signer(AllOf([policy, Subject("x")]))
    assert not accepts_any_signer(GitHubWorkflow(repository_id="1"))


def test_pinned_issuers() -> None:
    gh = GitHubWorkflow(repository_id="1")
    gl = GitLabPipeline(project_id="1")
    assert pinned_issuers(gh) == frozenset({GITHUB_ACTIONS_ISSUER})
    assert pinned_issuers(AnyOf([gh, gl])) == frozenset({GITHUB_ACTIONS_ISSUER, GITLAB_ISSUER})
    assert pinned_issuers(AnyOf([gh, Subject("x")])) is None
    assert pinned_issuers(AllOf([Subject("x"), Issuer("https://a")])) == frozenset({"https://a"})
    assert pinned_issuers(AllOf([Issuer("https://a"), gh])) == frozenset()
    assert pinned_issuers(ClaimEquals("iss", "https://b")) == frozenset({"https://b"})
    assert pinned_issuers(ClaimGlob("iss", "https://*")) is None
    assert pinned_issuers(UnsafeNoPolicy()) is None


@pytest.mark.parametrize(
    "policy",
    [
        Issuer("https://a"),
        Subject("s"),
        ClaimEquals("c", 1),
        ClaimContains("c", "x"),
        ClaimGlob("c", "x*"),
        ClaimRegex("c", "x.*"),
        AllOf([Subject("s")]),
        AnyOf([Subject("s")]),
        GitHubWorkflow(repository_id="1"),
        GitLabPipeline(project_id="1"),
        UnsafeNoPolicy(),
    ],
)
def test_policies_are_frozen_hashable_values(policy: Any) -> None:
    assert hash(policy) == hash(dataclasses.replace(policy))
    assert policy == dataclasses.replace(policy)
    assert isinstance(policy.describe(), str)
    for item in dataclasses.fields(policy):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(policy, item.name, "other")
    assert isinstance(policy, Policy)


def test_regex_and_glob_equality_ignores_compiled_state() -> None:
    assert ClaimRegex("c", "a+") == ClaimRegex("c", "a+")
    assert ClaimRegex("c", "a+") != ClaimRegex("c", "a+", allow_non_ascii=True)
    assert ClaimGlob("c", "a*") != ClaimGlob("d", "a*")
    assert len({ClaimGlob("c", "a*"), ClaimGlob("c", "a*")}) == 1
