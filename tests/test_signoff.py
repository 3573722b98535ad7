"""Multi-signer sign-off over the claims of real GitHub Actions tokens."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from opkey.errors import ConfigError, PolicyError
from opkey.jose import freeze_json, parse_compact, parse_json_object
from opkey.policy.claims import AllOf, ClaimGlob, Issuer, UnsafeNoPolicy
from opkey.policy.file import parse_policy_file
from opkey.policy.signoff import SignerRequirement, evaluate_signers
from opkey.policy.workloads import GitHubWorkflow

DATA = Path(__file__).parent / "data" / "github-actions"


def claims_of(name: str) -> Mapping[str, Any]:
    jws = parse_compact((DATA / name).read_text().strip())
    return freeze_json(parse_json_object(jws.payload()))  # type: ignore[no-any-return]


# Three real workloads stand in for build, scan and deploy workflows of one release.
BUILD = claims_of("gha-2025-03-29_rgl.jwt")
SCAN = claims_of("gha-2026-04-22_marchenko1985_github_oidc_token_demo.jwt")
DEPLOY = claims_of("gha-2023-03-28_segiddins_oidc-test.jwt")

POLICY_FILE = f"""
version = 1

[[issuers]]
issuer = "https://token.actions.githubusercontent.com"
commitment = "aud"
require_gq = true

[[signers]]
name = "build"
[signers.github]
repository_id = "{BUILD["repository_id"]}"
job_workflow_ref = "{BUILD["job_workflow_ref"]}"

[[signers]]
name = "scan"
[signers.github]
repository_id = "{SCAN["repository_id"]}"
repository_owner_id = "{SCAN["repository_owner_id"]}"

[[signers]]
name = "staging-deploy"
github = {{ repository_id = "{DEPLOY["repository_id"]}", runner_environment = "github-hosted" }}
"""


def test_all_required_signers_present_passes_in_any_order() -> None:
    policy_file = parse_policy_file(POLICY_FILE)
    for order in itertools.permutations([BUILD, SCAN, DEPLOY]):
        result = policy_file.requirement.evaluate(list(order))
        assert result.ok
        result.raise_for_unmet()
        assert {name: order[i] for name, i in result.assignments.items()} == {
            "build": BUILD,
            "scan": SCAN,
            "staging-deploy": DEPLOY,
        }


def test_extra_signatures_do_not_hurt() -> None:
    unrelated = claims_of("gha-2022-08-08_qoomon_sandbox.jwt")
    result = parse_policy_file(POLICY_FILE).requirement.evaluate([unrelated, DEPLOY, SCAN, BUILD])
    assert result.ok
    assert result.assignments == {"build": 3, "scan": 2, "staging-deploy": 1}


def test_one_missing_signer_fails_naming_it() -> None:
    result = parse_policy_file(POLICY_FILE).requirement.evaluate([BUILD, DEPLOY])
    assert not result.ok
    assert [u.name for u in result.unmet] == ["scan"]
    assert "none of 2 signers satisfies it" in result.unmet[0].reason
    assert "claim 'repository_id'" in result.unmet[0].reason
    assert result.assignments == {"build": 0, "staging-deploy": 1}
    with pytest.raises(PolicyError, match=r"1 required signer missing: 'scan': ") as info:
        result.raise_for_unmet()
    assert info.value.expected == ["scan"]


def test_no_signatures_at_all() -> None:
    result = parse_policy_file(POLICY_FILE).requirement.evaluate([])
    assert [u.name for u in result.unmet] == ["build", "scan", "staging-deploy"]
    assert all(u.reason == "no valid signature" for u in result.unmet)
    with pytest.raises(PolicyError, match="3 required signers missing"):
        result.raise_for_unmet()


def test_one_signature_cannot_satisfy_two_distinct_requirements() -> None:
    # Both requirements match the build workflow's claims.
    requirements = [
        SignerRequirement("build", GitHubWorkflow(repository_id=BUILD["repository_id"])),
        SignerRequirement(
            "review",
            GitHubWorkflow(
                repository_owner_id="43356", repository="rgl/github-actions-validate-jwt"
            ),
        ),
    ]
    result = evaluate_signers(requirements, [BUILD])
    assert not result.ok
    assert result.assignments == {"build": 0}
    assert [u.name for u in result.unmet] == ["review"]
    assert "signer 0 (used for 'build')" in result.unmet[0].reason
    assert "distinct" in result.unmet[0].reason
    # the same ID token presented twice (one PK token signing twice) is still one signer
    assert not evaluate_signers(requirements, [BUILD, dict(BUILD)]).ok
    # when distinctness is not required, one signature may meet both
    relaxed = evaluate_signers(requirements, [BUILD], distinct=False)
    assert relaxed.ok
    assert relaxed.assignments == {"build": 0, "review": 0}


def test_distinct_signers_false_in_the_file() -> None:
    text = POLICY_FILE.replace("version = 1\n", "version = 1\ndistinct_signers = false\n", 1)
    build_id = BUILD["repository_id"]
    text += f'\n[[signers]]\nname = "build-again"\ngithub = {{ repository_id = "{build_id}" }}\n'
    assert parse_policy_file(text).requirement.evaluate([BUILD, SCAN, DEPLOY]).ok
    strict = text.replace("distinct_signers = false", "distinct_signers = true")
    result = parse_policy_file(strict).requirement.evaluate([BUILD, SCAN, DEPLOY])
    assert [u.name for u in result.unmet] == ["build-again"]


def test_matching_is_not_greedy() -> None:
    # "any-rgl" fits both rgl tokens; "main-only" fits only the first. A greedy pass that gives
    # the first token to "any-rgl" would wrongly fail "main-only".
    # (A tag push starts another workflow run: another signer.)
    on_tag = dict(BUILD, ref="refs/tags/v1", run_id="14144996999", jti="another-token")
    requirements = [
        SignerRequirement("any-rgl", GitHubWorkflow(repository_id=BUILD["repository_id"])),
        SignerRequirement(
            "main-only",
            AllOf(
                [
                    GitHubWorkflow(repository_id=BUILD["repository_id"]),
                    ClaimGlob("ref", "refs/heads/*"),
                ]
            ),
        ),
    ]
    for identities in ([BUILD, on_tag], [on_tag, BUILD]):
        result = evaluate_signers(requirements, identities)
        assert result.ok, result.unmet
        assert identities[result.assignments["main-only"]] is BUILD


def test_requirement_validation() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        evaluate_signers([], [BUILD])
    twice = SignerRequirement("a", Issuer("https://a"))
    with pytest.raises(ConfigError, match=r"unique; repeated: \['a'\]"):
        evaluate_signers([twice, twice], [BUILD])
    with pytest.raises(ConfigError, match="non-empty"):
        SignerRequirement("", UnsafeNoPolicy())
    with pytest.raises(TypeError, match="policy is str"):
        SignerRequirement("a", "sub == x")  # type: ignore[arg-type]


def test_many_reasons_are_truncated() -> None:
    requirement = SignerRequirement("x", GitHubWorkflow(repository_id="1"))
    identities = [dict(BUILD, run_id=str(i)) for i in range(8)]
    result = evaluate_signers([requirement], identities)
    assert "none of 8 signers" in result.unmet[0].reason
    assert "and 3 more" in result.unmet[0].reason
