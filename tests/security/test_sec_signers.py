"""Distinct sign-off means distinct workloads or people, never distinct tokens.

A release that needs two signers ("build" and "release", say, both written against the same
repository) was satisfied by *one* CI job that asked for two ID tokens — they differ only in
``jti`` and ``aud`` — and signed twice, and by one person who logged in twice. Signers are now
told apart by the claims that name the workload or the person (``signer_identity``):

* GitHub/Forgejo Actions: issuer, repository id (else name), ``run_id``, ``job_workflow_ref``,
  ``environment`` — never ``jti``, ``aud``, ``iat``, ``exp``, ``nbf``, ``run_attempt`` or
  ``check_run_id``;
* GitLab CI: issuer, ``project_id``, ``pipeline_id``, ``environment`` — never ``job_id`` or the
  token's audience;
* anyone else: issuer and ``sub``.

The tests use the claims of the real GitHub Actions tokens in ``tests/data`` and real-shaped
tokens signed by the dev IdP's key, run through the whole verifier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from opkey import Digest, Requirement, gq, issuers
from opkey.cic import ClientInstanceClaims
from opkey.errors import PolicyError
from opkey.jose import freeze_json, parse_compact
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import PinnedKeys
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.policy.claims import AllOf, ClaimEquals, Issuer, Subject
from opkey.policy.signoff import SignerRequirement, evaluate_signers, signer_identity
from opkey.policy.workloads import GitHubWorkflow, GitLabPipeline
from opkey.sandbox.devidp import DevIdP
from opkey.sandbox.devidp.identities import GitHubWorkload, GitLabWorkload
from opkey.signer import Signer
from opkey.verification.evidence import BundleEvidence
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.security.sec_common import GHA, MANIFEST

DIGEST = Digest("sha256:" + "51" * 32)
#: Claims that differ from one token of a workload to the next.
PER_TOKEN = {"jti": "another-jti", "aud": "another-audience", "iat": 1, "nbf": 1, "exp": 2}


def real_claims(name: str) -> dict[str, Any]:
    token = (GHA / name).read_text().strip()
    claims: dict[str, Any] = json.loads(parse_compact(token).payload())
    return claims


REAL = [item["file"] for item in MANIFEST]


def two_of(claims: Mapping[str, Any]) -> Requirement:
    """Two requirements that one workload's claims both satisfy."""
    repo = GitHubWorkflow(issuer=claims["iss"], repository_id=claims["repository_id"])
    on_ref = GitHubWorkflow(
        issuer=claims["iss"], repository_id=claims["repository_id"], ref=claims["ref"]
    )
    return Requirement.sign_off(
        [SignerRequirement("build", repo), SignerRequirement("release", on_ref)]
    )


# -- real GitHub Actions claims -----------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_one_real_job_with_two_tokens_is_one_signer(name: str) -> None:
    first = freeze_json(real_claims(name))
    for changed in ({**PER_TOKEN}, {"run_attempt": "2"}, {"check_run_id": "999"}):
        second = freeze_json(real_claims(name) | changed)
        assert signer_identity(first) == signer_identity(second), changed
        result = two_of(first).evaluate([first, second], labels=["token 1", "token 2"])
        assert not result.ok
        assert [u.name for u in result.unmet] == ["release"]
        reason = result.unmet[0].reason
        assert "token 2 is the same GitHub/Forgejo Actions workload" in reason, reason
        assert f"run_id {first['run_id']}" in reason
        with pytest.raises(PolicyError, match="required signers must be distinct"):
            result.raise_for_unmet()


@pytest.mark.parametrize("name", REAL)
def test_other_runs_definitions_and_environments_are_other_signers(name: str) -> None:
    first = real_claims(name)
    for changed in (
        {"run_id": str(int(first["run_id"]) + 1)},
        {"job_workflow_ref": first["job_workflow_ref"].replace("@", "-reusable@")},
        {"environment": "production"},
    ):
        second = first | changed | PER_TOKEN
        assert signer_identity(first) != signer_identity(second), changed
        assert two_of(first).evaluate([first, second]).ok, changed


def test_real_tokens_of_different_repositories_are_different_signers() -> None:
    identities = {signer_identity(real_claims(name)) for name in REAL}
    assert len(identities) == len(REAL)
    assert all(identity.kind == "github-actions" for identity in identities)


def test_a_signer_meets_a_requirement_with_any_of_its_signatures() -> None:
    """Grouping never loses a fit: the job's second token (another ``aud``) may be the one a
    requirement on ``aud`` needs, whichever order the signatures come in."""
    claims = real_claims(REAL[0])
    other = claims | {"aud": "release-audience", "jti": "2"}
    wanted = Requirement.of(AllOf([Issuer(claims["iss"]), ClaimEquals("aud", "release-audience")]))
    for order in ([claims, other], [other, claims]):
        result = wanted.evaluate(order)
        assert result.ok
        assert order[result.assignments["signer"]]["aud"] == "release-audience"


# -- real-shaped tokens from the dev IdP, through the verifier ----------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _github_bundle(idp: DevIdP, workload: GitHubWorkload, jti: str) -> BundleEvidence:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    claims = workload.claims(
        issuer=idp.issuer, audience=cic.commitment(), issued_at=idp.provider.now(), jti=jti
    )
    token = gq.sign_jwt(idp.provider.sign_claims(claims), idp.keyring.active.public_jwk)
    bundle = Signer(PKToken.create(token, cic, key), key).sign_digest(DIGEST)
    return BundleEvidence(bundle, label=f"{workload.workflow}/{jti}")


def _gitlab_bundle(idp: DevIdP, workload: GitLabWorkload, jti: str) -> BundleEvidence:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    claims = workload.claims(issuer=idp.issuer, issued_at=idp.provider.now(), jti=jti)
    token = gq.sign_jwt(
        idp.provider.sign_claims(claims), idp.keyring.active.public_jwk, cic=cic.commitment()
    )
    bundle = Signer(PKToken.create(token, cic, key), key).sign_digest(DIGEST)
    return BundleEvidence(bundle, label=f"job {workload.job_id}/{jti}")


def _person_bundle(idp: DevIdP, client_id: str, sub: str) -> BundleEvidence:
    from opkey.sandbox.devidp.identities import DevUser

    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    user = dataclasses.replace(idp.settings.user, sub=sub)
    assert isinstance(user, DevUser)
    token = idp.provider.mint_id_token(client_id, nonce=cic.commitment(), user=user)
    bundle = Signer(PKToken.create(token, cic, key), key).sign_digest(DIGEST)
    return BundleEvidence(bundle, label=f"{sub} via {client_id}")


def _verifier(idp: DevIdP, *configs: Any) -> Verifier:
    keys = PinnedKeys({idp.issuer: KeySet.from_dict(idp.keyring.jwks())})
    return Verifier(Trust([TrustedIssuer(c, [keys]) for c in configs]))


def test_dev_idp_github_job_signing_twice_is_one_signer(dev_idp: DevIdP) -> None:
    job = dev_idp.settings.github
    verifier = _verifier(dev_idp, issuers.github_actions(issuer=dev_idp.issuer))
    repo = GitHubWorkflow(issuer=dev_idp.issuer, repository_id=job.repository_id)
    on_main = GitHubWorkflow(
        issuer=dev_idp.issuer, repository_id=job.repository_id, ref="refs/heads/main"
    )
    requirement = Requirement.sign_off(
        [SignerRequirement("build", repo), SignerRequirement("release", on_main)]
    )
    twice = [_github_bundle(dev_idp, job, "jti-1"), _github_bundle(dev_idp, job, "jti-2")]
    verdict = verifier.verdict(requirement, DIGEST, twice, at=_now())
    assert len(verdict.genuine) == 2  # both signatures are genuine ...
    assert not verdict.accepted  # ... and count once
    with pytest.raises(PolicyError, match="is the same GitHub/Forgejo Actions workload"):
        verdict.raise_if_rejected()
    # A re-run attempt of the same run is the same workload too.
    rerun = dataclasses.replace(job, run_attempt="2")
    again = [_github_bundle(dev_idp, job, "a"), _github_bundle(dev_idp, rerun, "b")]
    assert not verifier.verdict(requirement, DIGEST, again, at=_now()).accepted
    # A job deploying to an environment, or another run, is another workload.
    deploy = dataclasses.replace(job, environment="production")
    other_run = dataclasses.replace(job, run_id="9000000002")
    for second in (deploy, other_run):
        pair = [_github_bundle(dev_idp, job, "x"), _github_bundle(dev_idp, second, "y")]
        assert verifier.verdict(requirement, DIGEST, pair, at=_now()).accepted, second


def test_dev_idp_gitlab_job_with_two_id_tokens_is_one_signer(dev_idp: DevIdP) -> None:
    job = dev_idp.settings.gitlab
    verifier = _verifier(dev_idp, issuers.gitlab_ci(issuer=dev_idp.issuer))
    project = GitLabPipeline(issuer=dev_idp.issuer, project_id=job.project_id)
    on_main = GitLabPipeline(issuer=dev_idp.issuer, project_id=job.project_id, ref="main")
    requirement = Requirement.sign_off(
        [SignerRequirement("build", project), SignerRequirement("release", on_main)]
    )
    second_token = dataclasses.replace(job, audience="OPENPUBKEY-PKTOKEN:second")
    same_pipeline_other_job = dataclasses.replace(job, job_id="303")
    for second in (second_token, same_pipeline_other_job):
        pair = [_gitlab_bundle(dev_idp, job, "1"), _gitlab_bundle(dev_idp, second, "2")]
        verdict = verifier.verdict(requirement, DIGEST, pair, at=_now())
        assert len(verdict.genuine) == 2
        assert not verdict.accepted
        with pytest.raises(PolicyError, match="is the same GitLab CI workload"):
            verdict.raise_if_rejected()
    for second in (
        dataclasses.replace(job, pipeline_id="575", job_id="310"),
        dataclasses.replace(job, environment="production", job_id="304"),
    ):
        pair = [_gitlab_bundle(dev_idp, job, "1"), _gitlab_bundle(dev_idp, second, "2")]
        assert verifier.verdict(requirement, DIGEST, pair, at=_now()).accepted, second


def test_dev_idp_person_logging_in_twice_is_one_signer(dev_idp: DevIdP) -> None:
    """Two logins (through two clients, with two keys) are one person: iss + sub."""
    config_a = issuers.oidc(dev_idp.issuer, dev_idp.client_id)
    verifier = _verifier(dev_idp, config_a)
    person = AllOf([Issuer(dev_idp.issuer), ClaimEquals("email", dev_idp.settings.user.email)])
    requirement = Requirement.sign_off(
        [SignerRequirement("approver-1", person), SignerRequirement("approver-2", person)]
    )
    sub = dev_idp.settings.user.sub
    twice = [_person_bundle(dev_idp, dev_idp.client_id, sub) for _ in range(2)]
    verdict = verifier.verdict(requirement, DIGEST, twice, at=_now())
    assert len(verdict.genuine) == 2
    assert not verdict.accepted
    with pytest.raises(PolicyError, match=f"is the same subject \\(sub {sub}\\)"):
        verdict.raise_if_rejected()
    other = [
        _person_bundle(dev_idp, dev_idp.client_id, sub),
        _person_bundle(dev_idp, dev_idp.client_id, "dev-user-0002"),
    ]
    assert verifier.verdict(requirement, DIGEST, other, at=_now()).accepted


def test_unknown_issuers_fall_back_to_iss_and_sub() -> None:
    """An issuer opkey knows nothing of: every other claim may differ, one sub is one signer;
    the same sub at another issuer is someone else."""
    base = {"iss": "https://idp.example", "sub": "alice", "aud": "x", "jti": "1"}
    variants = [base | {"email": "a@x", "jti": "2", "aud": "y", "iat": 5, "groups": ["admins"]}]
    for variant in variants:
        assert signer_identity(base) == signer_identity(variant)
    assert signer_identity(base) != signer_identity(base | {"iss": "https://other.example"})
    assert signer_identity(base) != signer_identity(base | {"sub": "bob"})
    wanted = [
        SignerRequirement("one", Subject("alice")),
        SignerRequirement("two", Subject("alice")),
    ]
    assert not evaluate_signers(wanted, [base, *variants]).ok
    assert signer_identity(base).kind == "subject"


def test_workload_claims_of_other_types_fall_back() -> None:
    """Shapes opkey does not recognise (a run_id but no repository, empty or non-string ids)
    are not workloads: iss + sub decides, so forged-looking claims cannot split a signer."""
    for claims in (
        {"iss": "https://i", "sub": "s", "run_id": "1"},
        {"iss": "https://i", "sub": "s", "run_id": "", "repository_id": "1"},
        {"iss": "https://i", "sub": "s", "run_id": True, "repository": "o/r"},
        {"iss": "https://i", "sub": "s", "pipeline_id": "1"},
    ):
        assert signer_identity(claims).kind == "subject", claims
