"""The Verifier: trusted issuers, key sources, bundles, policy enforcement and the cache."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from opkey.bundle import Bundle
from opkey.digest import Digest
from opkey.errors import (
    ConfigError,
    ExpiredError,
    FormatError,
    KeyNotFoundError,
    NetworkError,
    PolicyError,
    SignatureError,
)
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType
from opkey.jwks.keyset import KeySet
from opkey.jwks.sources import PinnedKeys
from opkey.keys import PublicJWK
from opkey.policy.claims import Subject
from opkey.signer import Signer
from opkey.verification.trust import Trust, TrustedIssuer
from opkey.verification.verifier import Verifier
from tests.helpers import NOW, MiniOP, rsa_key

DIGEST = Digest("sha256:" + "ab" * 32)


ANYONE = Subject("user-1234")


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


def _verifier(op: MiniOP, **kwargs: Any) -> Verifier:
    config = op.config(expiry=ExpiryPolicy.never())
    return Verifier(
        Trust([TrustedIssuer(config, [PinnedKeys({op.issuer: op.keyset})])]),
        clock=lambda: NOW,
        **kwargs,
    )


def _bundle(op: MiniOP, digest: Digest = DIGEST, **claims: Any) -> Bundle:
    pkt, key = op.pktoken(**claims)
    return Signer(pkt, key).sign_digest(digest)


def test_bundle_round_trip_and_verify(op: MiniOP) -> None:
    bundle = _bundle(op)
    again = Bundle.from_json(bundle.to_json())
    identity = _verifier(op).verify_bundle(again, DIGEST, policy=ANYONE)
    assert identity.subject == "user-1234"
    assert identity.issuer == op.issuer
    assert identity.key_source == "pinned"
    assert identity.op_algorithm == "RS256"
    assert identity.signature_algorithm == "ES256"
    assert identity.key_thumbprint == bundle.pktoken.cic_claims.upk.thumbprint()
    assert identity.issued_at < NOW < identity.expires_at + timedelta(days=1)


def test_wrong_digest_rejected(op: MiniOP) -> None:
    bundle = _bundle(op)
    other = Digest("sha256:" + "cd" * 32)
    with pytest.raises(SignatureError, match="signs sha256:abab"):
        _verifier(op).verify_bundle(bundle, other, policy=ANYONE)


def test_policy_rejects_other_signer(op: MiniOP) -> None:
    bundle = _bundle(op, sub="someone-else")
    with pytest.raises(PolicyError, match="user-1234"):
        _verifier(op).verify_bundle(bundle, DIGEST, policy=ANYONE)


def test_policy_is_required(op: MiniOP) -> None:
    with pytest.raises(ConfigError, match="policy is required"):
        _verifier(op).verify_bundle(_bundle(op), DIGEST, policy=None)  # type: ignore[arg-type]


def test_untrusted_issuer_rejected_before_key_lookup(op: MiniOP) -> None:
    other = MiniOP(issuer="https://evil.example.test", kid=op.kid)
    with pytest.raises(KeyNotFoundError, match="not trusted by this verifier"):
        _verifier(op).verify_bundle(_bundle(other), DIGEST, policy=ANYONE)


def test_key_source_fallback_and_naming(op: MiniOP) -> None:
    @dataclass(frozen=True)
    class Down:
        name: str = "live"

        def find(self, issuer: str, *, kid: str | None, jkt: str | None = None) -> PublicJWK:
            raise NetworkError("GET https://op/jwks: connection refused")

    config = op.config(expiry=ExpiryPolicy.never())
    pinned = PinnedKeys({op.issuer: op.keyset}, name="archive")
    verifier = Verifier(Trust([TrustedIssuer(config, [Down(), pinned])]), clock=lambda: NOW)
    identity = verifier.verify_bundle(_bundle(op), DIGEST, policy=ANYONE)
    assert identity.key_source == "archive"
    alone = Verifier(Trust([TrustedIssuer(config, [Down()])]), clock=lambda: NOW)
    with pytest.raises(NetworkError, match="no other key source"):
        alone.verify_bundle(_bundle(op), DIGEST, policy=ANYONE)


def test_expiry_at_and_clock(op: MiniOP) -> None:
    config = op.config(expiry=ExpiryPolicy.oidc())
    verifier = Verifier(
        Trust([TrustedIssuer(config, [PinnedKeys({op.issuer: op.keyset})])]),
        clock=lambda: NOW + timedelta(days=30),
    )
    bundle = _bundle(op)
    with pytest.raises(ExpiredError):
        verifier.verify_bundle(bundle, DIGEST, policy=ANYONE)
    verifier.verify_bundle(bundle, DIGEST, policy=ANYONE, at=NOW)


def test_cache_hit_rechecks_expiry_and_key(op: MiniOP) -> None:
    config = op.config(expiry=ExpiryPolicy.oidc())
    keysets = {op.issuer: op.keyset}
    verifier = Verifier(Trust([TrustedIssuer(config, [PinnedKeys(keysets)])]), clock=lambda: NOW)
    bundle = _bundle(op)
    first = verifier.verify_bundle(bundle, DIGEST, policy=ANYONE)
    second = verifier.verify_bundle(bundle, DIGEST, policy=ANYONE)
    assert first == second
    with pytest.raises(ExpiredError):
        verifier.verify_bundle(bundle, DIGEST, policy=ANYONE, at=NOW + timedelta(days=1))
    # the provider key disappears from every source: the cached result is not used
    keysets[op.issuer] = KeySet((MiniOP(private_key=rsa_key(fresh=True), kid="x").public_jwk,))
    with pytest.raises(KeyNotFoundError):
        verifier.verify_bundle(bundle, DIGEST, policy=ANYONE)


def test_cache_is_bounded(op: MiniOP) -> None:
    verifier = _verifier(op, cache_size=3)
    for _ in range(5):
        verifier.verify_bundle(_bundle(op), DIGEST, policy=ANYONE)
    assert len(verifier._cache) == 3


def test_osm_from_another_bundle_rejected(op: MiniOP) -> None:
    a = _bundle(op)
    b = _bundle(op)
    mixed = Bundle(a.pktoken, b.signature)
    with pytest.raises(SignatureError, match="another PK token"):
        _verifier(op).verify_bundle(mixed, DIGEST, policy=ANYONE)


def test_config_errors(op: MiniOP) -> None:
    config = op.config()
    with pytest.raises(ConfigError, match="at least one key source"):
        TrustedIssuer(config, [])
    with pytest.raises(ConfigError, match="at least one trusted issuer"):
        Verifier(Trust([]))
    trusted = TrustedIssuer(config, [PinnedKeys({})])
    with pytest.raises(ConfigError, match="twice"):
        Verifier(Trust([trusted, trusted]))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"mediaType": "x"}, "not an opkey bundle"),
        ({"mediaType": "application/vnd.opkey.bundle.v1+json", "extra": 1}, "unexpected"),
        ({"mediaType": "application/vnd.opkey.bundle.v1+json", "pktoken": "x"}, "pktoken"),
    ],
)
def test_bundle_format_errors(document: dict[str, Any], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Bundle.from_dict(document)


def test_signer_requires_matching_key(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    _, other = op.pktoken()
    with pytest.raises(ValueError, match="does not commit"):
        Signer(pkt, other)


def test_gq_bundle_and_commitment_types(op: MiniOP) -> None:
    pkt, key = op.pktoken(CommitmentType.AUD, gq_sign=True)
    config = op.config(
        CommitmentType.AUD,
        algorithms=frozenset({"GQ256"}),
        require_gq=True,
        expiry=ExpiryPolicy.never(),
    )
    verifier = Verifier(
        Trust([TrustedIssuer(config, [PinnedKeys({op.issuer: op.keyset})])]), clock=lambda: NOW
    )
    identity = verifier.verify_bundle(Signer(pkt, key).sign_digest(DIGEST), DIGEST, policy=ANYONE)
    assert identity.op_algorithm == "GQ256"
