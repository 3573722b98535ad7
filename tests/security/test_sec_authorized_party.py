"""Nonce and key-bound commitments: the ID token must have been issued *to our client*.

With a ``nonce`` commitment, whoever ran the login chose the nonce, so the commitment (and the
ephemeral key) belongs to the client that obtained the token. A provider can list several
audiences and name the client that obtained the token in ``azp`` (OpenID Connect Core 1.0
§3.1.3.7, steps 3-5). A token for ``[our client, another client]`` with ``azp`` naming the other
client was accepted: the other client — any application the victim signs in to — chose a key
and got an ID token that verified as the victim for us. Key-bound tokens carry the key the
obtaining client asked for in ``cnf.jwk``: the same rule applies.

The rule now: ``aud`` contains the client id; ``azp``, when present, *is* the client id (of any
type other than that exact string: refused); several audiences without ``azp`` are refused
(nothing says which of them obtained the token). One audience without ``azp`` is what most
providers issue to the client that asked, and is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from opkey import issuers
from opkey.cic import ClientInstanceClaims
from opkey.errors import CommitmentError
from opkey.issuers import KEY_BOUND_TYP, CommitmentType, IssuerConfig
from opkey.jose import parse_compact
from opkey.jwks.keyset import KeySet
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.sandbox.devidp import DevIdP
from opkey.signer import Signer
from opkey.verify import verify_pktoken
from tests.helpers import CLIENT_ID, NOW, MiniOP
from tests.security.sec_common import pinned_verifier

OTHER = "some-other-app.example"

#: (aud, azp) pairs that must be refused, and the error each gets.
REFUSED: dict[str, tuple[Any, Any, str]] = {
    "other-azp-among-audiences": ([CLIENT_ID, OTHER], OTHER, r"issued to another client \(azp"),
    "other-azp-single-audience": (CLIENT_ID, OTHER, r"issued to another client \(azp"),
    "other-azp-first-audience": ([OTHER, CLIENT_ID], OTHER, r"issued to another client \(azp"),
    "several-audiences-no-azp": ([CLIENT_ID, OTHER], None, "2 audiences and no azp claim"),
    "duplicate-audience-no-azp": ([CLIENT_ID, CLIENT_ID], None, "2 audiences and no azp claim"),
    "azp-null": ([CLIENT_ID, OTHER], "null", r"issued to another client \(azp None\)"),
    "azp-list": (CLIENT_ID, [CLIENT_ID], "issued to another client"),
    "azp-number": (CLIENT_ID, 7, "issued to another client"),
    "azp-case": (CLIENT_ID, CLIENT_ID.upper(), "issued to another client"),
    "azp-space": (CLIENT_ID, CLIENT_ID + " ", "issued to another client"),
}
ACCEPTED: dict[str, tuple[Any, Any]] = {
    "single-audience-no-azp": (CLIENT_ID, None),
    "single-audience-our-azp": (CLIENT_ID, CLIENT_ID),
    "several-audiences-our-azp": ([OTHER, CLIENT_ID], CLIENT_ID),
}


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


def _claims(op: MiniOP, aud: Any, azp: Any, **extra: Any) -> dict[str, Any]:
    claims = op.claims(aud=aud, **extra)
    if azp == "null":
        claims["azp"] = None  # explicitly null (MiniOP.claims drops None values)
    elif azp is not None:
        claims["azp"] = azp
    return claims


def nonce_token(op: MiniOP, aud: Any, azp: Any) -> PKToken:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    return PKToken.create(op.mint(_claims(op, aud, azp, nonce=cic.commitment())), cic, key)


def key_bound_token(op: MiniOP, aud: Any, azp: Any) -> PKToken:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    jwk = key.public_jwk.public_members() | {"alg": key.alg}
    token = op.mint(_claims(op, aud, azp, cnf={"jwk": jwk}), headers={"typ": KEY_BOUND_TYP})
    return PKToken.create(token, cic, key)


MAKERS: dict[
    str, tuple[Callable[[MiniOP, Any, Any], PKToken], Callable[[MiniOP], IssuerConfig]]
] = {
    "nonce": (nonce_token, lambda op: op.config(CommitmentType.NONCE)),
    "key-bound": (key_bound_token, lambda op: issuers.oidc_key_bound(op.issuer, CLIENT_ID)),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_token_obtained_by_another_client_is_refused(op: MiniOP, kind: str, case: str) -> None:
    make, config = MAKERS[kind]
    aud, azp, message = REFUSED[case]
    pktoken = make(op, aud, azp)
    with pytest.raises(CommitmentError, match=message) as info:
        verify_pktoken(pktoken, config(op), op.keyset, now=NOW)
    assert info.value.expected in (CLIENT_ID, f"azp = {CLIENT_ID!r}")


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_token_issued_to_our_client_is_accepted(op: MiniOP, kind: str, case: str) -> None:
    make, config = MAKERS[kind]
    aud, azp = ACCEPTED[case]
    verify_pktoken(make(op, aud, azp), config(op), op.keyset, now=NOW)


def test_the_attack_through_the_verifier(op: MiniOP) -> None:
    """The victim signs in to the attacker's application, which chose the nonce; the provider
    lists our client too (as providers that add every client of a project do)."""
    from opkey import Digest, Requirement
    from opkey.policy.claims import AllOf, Issuer, Subject
    from opkey.verification.evidence import BundleEvidence

    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    claims = _claims(op, [CLIENT_ID, OTHER], OTHER, nonce=cic.commitment(), sub="victim")
    pktoken = PKToken.create(op.mint(claims), cic, key)
    digest = Digest("sha256:" + "66" * 32)
    bundle = Signer(pktoken, key).sign_digest(digest)
    verifier = pinned_verifier((op.config(CommitmentType.NONCE), op.keyset))
    requirement = Requirement.of(AllOf([Issuer(op.issuer), Subject("victim")]))
    verdict = verifier.verdict(requirement, digest, [BundleEvidence(bundle)], at=NOW)
    assert not verdict.accepted
    assert isinstance(verdict.signatures[0].error, CommitmentError)
    assert "azp 'some-other-app.example'" in str(verdict.signatures[0].error)


def test_dev_idp_tokens_for_another_client(dev_idp: DevIdP) -> None:
    """Real-shaped tokens signed by the dev IdP's key: its own token for our client (azp = our
    client) verifies; the same claims naming another client in azp do not."""
    config = issuers.oidc(dev_idp.issuer, dev_idp.client_id)
    keys = KeySet.from_dict(dev_idp.keyring.jwks())
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    genuine = dev_idp.mint_id_token(nonce=cic.commitment())
    claims = json.loads(parse_compact(genuine).payload())
    assert claims["azp"] == dev_idp.client_id
    verify_pktoken(PKToken.create(genuine, cic, key), config, keys, now=now)
    for aud, azp in (([dev_idp.client_id, OTHER], OTHER), (dev_idp.client_id, OTHER)):
        forged = dev_idp.provider.sign_claims(claims | {"aud": aud, "azp": azp})
        with pytest.raises(CommitmentError, match="issued to another client"):
            verify_pktoken(PKToken.create(forged, cic, key), config, keys, now=now)
    no_azp = {k: v for k, v in claims.items() if k != "azp"}
    several = dev_idp.provider.sign_claims(no_azp | {"aud": [dev_idp.client_id, OTHER]})
    with pytest.raises(CommitmentError, match="2 audiences and no azp"):
        verify_pktoken(PKToken.create(several, cic, key), config, keys, now=now)


def test_aud_and_gq_bound_commitments_do_not_read_azp(op: MiniOP) -> None:
    """The rule is for client-id commitments only: an ``aud`` commitment is the whole ``aud``,
    and a workload token's ``azp`` (if an issuer adds one) names no login client."""
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    token = op.mint(op.claims(aud=cic.commitment(), azp="anything"))
    config = IssuerConfig(op.issuer, CommitmentType.AUD, algorithms=frozenset({"RS256"}))
    verify_pktoken(PKToken.create(token, cic, key), config, op.keyset, now=NOW)
