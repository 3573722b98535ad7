"""``until_met``: a verdict that stops reading evidence once the requirement is met decides the
same, and reads nothing more; a rejection still reads every piece (its reasons name them all)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from opkey import Digest, Requirement, gq, issuers
from opkey.cic import ClientInstanceClaims
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import PinnedKeys
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.policy.workloads import GitHubWorkflow
from opkey.sandbox.devidp import DevIdP
from opkey.signer import Signer
from opkey.verification.evidence import BundleEvidence, Evidence
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier

DIGEST = Digest("sha256:" + "c4" * 32)


def _bundle(idp: DevIdP, jti: str) -> BundleEvidence:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    claims = idp.settings.github.claims(
        issuer=idp.issuer, audience=cic.commitment(), issued_at=idp.provider.now(), jti=jti
    )
    token = gq.sign_jwt(idp.provider.sign_claims(claims), idp.keyring.active.public_jwk)
    return BundleEvidence(
        Signer(PKToken.create(token, cic, key), key).sign_digest(DIGEST), label=jti
    )


def _verifier(idp: DevIdP) -> Verifier:
    keys = PinnedKeys({idp.issuer: KeySet.from_dict(idp.keyring.jwks())})
    return Verifier(Trust([TrustedIssuer(issuers.github_actions(issuer=idp.issuer), [keys])]))


class Counted:
    """Evidence that counts how much of it was read."""

    def __init__(self, items: list[Evidence]) -> None:
        self.items = items
        self.read = 0

    def __iter__(self) -> Iterator[Evidence]:
        for item in self.items:
            self.read += 1
            yield item


def test_reading_stops_once_the_requirement_is_met(dev_idp: DevIdP) -> None:
    verifier = _verifier(dev_idp)
    repository = GitHubWorkflow(
        issuer=dev_idp.issuer, repository_id=dev_idp.settings.github.repository_id
    )
    requirement = Requirement.of(repository)
    now = datetime.now(timezone.utc)
    evidence = Counted([_bundle(dev_idp, "first"), _bundle(dev_idp, "second")])
    stopped = verifier.verdict(requirement, DIGEST, evidence, at=now, until_met=True)
    assert stopped.accepted
    assert evidence.read == 1
    assert [o.label for o in stopped.signatures] == ["first"]
    # Without it, everything is read, and the decision is the same.
    whole = Counted(evidence.items)
    full = verifier.verdict(requirement, DIGEST, whole, at=now)
    assert full.accepted
    assert whole.read == 2


def test_a_rejection_still_reads_every_piece(dev_idp: DevIdP) -> None:
    verifier = _verifier(dev_idp)
    other = Requirement.of(GitHubWorkflow(issuer=dev_idp.issuer, repository_id="1"))
    evidence = Counted([_bundle(dev_idp, "a"), _bundle(dev_idp, "b"), _bundle(dev_idp, "c")])
    verdict = verifier.verdict(
        other, DIGEST, evidence, at=datetime.now(timezone.utc), until_met=True
    )
    assert not verdict.accepted
    assert evidence.read == 3
    assert len(verdict.genuine) == 3
