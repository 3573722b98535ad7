"""Pure PK token verification: every step of verify_pktoken, accept and reject."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from opkey import gq
from opkey.cic import ClientInstanceClaims
from opkey.errors import (
    CommitmentError,
    ConfigError,
    ExpiredError,
    FormatError,
    KeyNotFoundError,
    SignatureError,
)
from opkey.expiry import ExpiryPolicy
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import b64url_decode, b64url_encode, go_json
from opkey.jwks.keyset import KeySet
from opkey.keys import generate_signing_key
from opkey.pktoken import PKToken
from opkey.verify import verify_pktoken
from tests.helpers import CLIENT_ID, ISSUER, NOW, NOW_TS, MiniOP, rsa_key


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


@pytest.mark.parametrize("user_alg", ["ES256", "EdDSA", "RS256"])
@pytest.mark.parametrize(
    ("commitment", "gq_sign"),
    [
        (CommitmentType.NONCE, False),
        (CommitmentType.NONCE, True),
        (CommitmentType.AUD, False),
        (CommitmentType.AUD, True),
        (CommitmentType.GQ_BOUND, True),
    ],
)
def test_accepts_valid_tokens(
    op: MiniOP, commitment: CommitmentType, gq_sign: bool, user_alg: str
) -> None:
    pkt, key = op.pktoken(commitment, gq_sign=gq_sign, user_alg=user_alg)
    algorithms = frozenset({"GQ256"}) if gq_sign else frozenset({"RS256"})
    config = op.config(commitment, algorithms=algorithms, require_gq=gq_sign)
    verified = verify_pktoken(pkt, config, op.keyset, now=NOW)
    assert verified.issuer == ISSUER
    assert verified.subject == "user-1234"
    assert verified.op_algorithm == ("GQ256" if gq_sign else "RS256")
    assert verified.upk.members == key.public_jwk.members
    assert verified.op_key_thumbprint == op.public_jwk.thumbprint()
    assert verified.pktoken_hash == pkt.hash()


@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA"])
def test_other_op_algorithms(alg: str) -> None:
    op = MiniOP(alg=alg, kid=f"{alg}-key")
    pkt, _ = op.pktoken()
    verify_pktoken(pkt, op.config(), op.keyset, now=NOW)
    with pytest.raises(SignatureError, match="not allowed"):
        verify_pktoken(pkt, op.config(algorithms=frozenset({"RS256"})), op.keyset, now=NOW)


def test_issuer_must_match_exactly(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    for issuer in (ISSUER + "/", ISSUER.replace("https", "http"), ISSUER.upper(), "https://op"):
        with pytest.raises(KeyNotFoundError, match="not the trusted issuer"):
            verify_pktoken(pkt, op.config(issuer=issuer), op.keyset, now=NOW)


def test_gq_required_rejects_rs256(op: MiniOP) -> None:
    pkt, _ = op.pktoken(CommitmentType.AUD)
    config = op.config(CommitmentType.AUD, algorithms=frozenset({"GQ256"}), require_gq=True)
    with pytest.raises(SignatureError, match="GQ256 is required"):
        verify_pktoken(pkt, config, op.keyset, now=NOW)


def test_unknown_kid_and_wrong_keyset(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    other = MiniOP(private_key=rsa_key(fresh=True), kid="other")
    with pytest.raises(KeyNotFoundError, match="no key with kid"):
        verify_pktoken(pkt, op.config(), other.keyset, now=NOW)
    # the same kid but another key: the signature fails
    impostor = MiniOP(private_key=rsa_key(fresh=True), kid=op.kid)
    with pytest.raises(SignatureError):
        verify_pktoken(pkt, op.config(), impostor.keyset, now=NOW)


def test_gq_jkt_must_match_key(op: MiniOP) -> None:
    pkt, _ = op.pktoken(CommitmentType.AUD, gq_sign=True)
    config = op.config(CommitmentType.AUD, algorithms=frozenset({"GQ256"}), require_gq=True)
    impostor = MiniOP(private_key=rsa_key(fresh=True), kid=op.kid)
    with pytest.raises(KeyNotFoundError, match="thumbprint"):
        verify_pktoken(pkt, config, impostor.keyset, now=NOW)


def test_cic_signature_checked(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    doc = json.loads(pkt.to_json())
    sig = bytearray(b64url_decode(doc["signatures"][1]["signature"]))
    sig[5] ^= 1
    doc["signatures"][1]["signature"] = b64url_encode(bytes(sig))
    with pytest.raises(SignatureError, match="ES256 signature does not verify"):
        verify_pktoken(PKToken.from_json(json.dumps(doc)), op.config(), op.keyset, now=NOW)


def test_cic_substitution_from_another_token_fails(op: MiniOP) -> None:
    """A CIC (with its valid signature) moved under another ID token breaks the commitment."""
    a, _ = op.pktoken()
    b, _ = op.pktoken()
    doc_a = json.loads(a.to_json())
    doc_b = json.loads(b.to_json())
    doc_a["signatures"][1] = doc_b["signatures"][1]
    mixed = PKToken.from_json(json.dumps(doc_a))
    with pytest.raises((SignatureError, CommitmentError)):
        verify_pktoken(mixed, op.config(), op.keyset, now=NOW)


def test_attacker_key_with_victim_id_token_fails(op: MiniOP) -> None:
    """Re-signing the victim's payload with the attacker's own CIC: commitment mismatch."""
    victim, _ = op.pktoken()
    attacker = generate_signing_key()
    cic = ClientInstanceClaims.create(attacker.public_jwk)
    forged = PKToken.create(victim.op_token(), cic, attacker)
    with pytest.raises(CommitmentError, match="nonce does not commit"):
        verify_pktoken(forged, op.config(), op.keyset, now=NOW)


@pytest.mark.parametrize(
    ("commitment", "wrong"),
    [
        (CommitmentType.NONCE, CommitmentType.AUD),
        (CommitmentType.AUD, CommitmentType.NONCE),
        (CommitmentType.AUD, CommitmentType.GQ_BOUND),
    ],
)
def test_commitment_type_is_the_verifiers_choice(
    op: MiniOP, commitment: CommitmentType, wrong: CommitmentType
) -> None:
    pkt, _ = op.pktoken(commitment, gq_sign=True)
    config = op.config(wrong, algorithms=frozenset({"GQ256"}), require_gq=True)
    with pytest.raises(CommitmentError):
        verify_pktoken(pkt, config, op.keyset, now=NOW)


def test_gq_bound_requires_prefix(op: MiniOP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = op.mint(op.claims(aud="not-prefixed"))
    pkt = PKToken.create(gq.sign_jwt(id_token, op.public_jwk, cic=cic.commitment()), cic, key)
    with pytest.raises(CommitmentError, match="OPENPUBKEY-PKTOKEN:"):
        verify_pktoken(pkt, op.config(CommitmentType.GQ_BOUND), op.keyset, now=NOW)
    id_token = op.mint(op.claims(aud="OPENPUBKEY-PKTOKEN:abc"))
    pkt = PKToken.create(gq.sign_jwt(id_token, op.public_jwk, cic=cic.commitment()), cic, key)
    verify_pktoken(pkt, op.config(CommitmentType.GQ_BOUND), op.keyset, now=NOW)
    # OpenPubkey requires a string aud: a list is refused even with a prefixed member.
    id_token = op.mint(op.claims(aud=["x", "OPENPUBKEY-PKTOKEN:abc"]))
    pkt = PKToken.create(gq.sign_jwt(id_token, op.public_jwk, cic=cic.commitment()), cic, key)
    with pytest.raises(CommitmentError, match="single string"):
        verify_pktoken(pkt, op.config(CommitmentType.GQ_BOUND), op.keyset, now=NOW)


def test_gq_cic_on_non_bound_issuer_rejected(op: MiniOP) -> None:
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    id_token = op.mint(op.claims(aud=cic.commitment()))
    pkt = PKToken.create(gq.sign_jwt(id_token, op.public_jwk, cic=cic.commitment()), cic, key)
    config = op.config(CommitmentType.AUD, algorithms=frozenset({"GQ256"}), require_gq=True)
    with pytest.raises(CommitmentError, match="GQ-bound"):
        verify_pktoken(pkt, config, op.keyset, now=NOW)


def test_client_id_rule(op: MiniOP) -> None:
    pkt, _ = op.pktoken(aud="someone-else")
    with pytest.raises(CommitmentError, match="does not include client id"):
        verify_pktoken(pkt, op.config(), op.keyset, now=NOW)
    pkt, _ = op.pktoken(aud=["someone-else", CLIENT_ID], azp=CLIENT_ID)
    verify_pktoken(pkt, op.config(), op.keyset, now=NOW)
    pkt, _ = op.pktoken(aud=["someone-else", CLIENT_ID])
    with pytest.raises(CommitmentError, match="2 audiences and no azp"):
        verify_pktoken(pkt, op.config(), op.keyset, now=NOW)


def test_expiry_default_is_never_as_spec_time_says(op: MiniOP) -> None:
    """One default everywhere (spec/time.md): signatures outlive their ID tokens."""
    pkt, _ = op.pktoken()
    config = op.config()
    assert str(config.expiry) == "never"
    verify_pktoken(pkt, config, op.keyset, now=NOW + timedelta(days=3650))
    with pytest.raises(ExpiredError, match="issued in the future"):
        verify_pktoken(pkt, config, op.keyset, now=NOW - timedelta(hours=1))


@pytest.mark.parametrize(
    ("policy", "offset", "ok"),
    [
        ("oidc", timedelta(minutes=4), True),
        ("oidc", timedelta(minutes=6), False),
        ("12h", timedelta(hours=11), True),
        ("12h", timedelta(hours=13), False),
        ("48h", timedelta(hours=47), True),
        ("1w", timedelta(days=6), True),
        ("1w", timedelta(days=8), False),
        ("never", timedelta(days=3650), True),
    ],
)
def test_expiry_policies(op: MiniOP, policy: str, offset: timedelta, ok: bool) -> None:
    pkt, _ = op.pktoken()
    config = op.config(expiry=ExpiryPolicy.parse(policy, leeway=0))
    if ok:
        verify_pktoken(pkt, config, op.keyset, now=NOW + offset)
    else:
        with pytest.raises(ExpiredError):
            verify_pktoken(pkt, config, op.keyset, now=NOW + offset)


def test_future_iat_and_nbf_rejected_even_with_never(op: MiniOP) -> None:
    config = op.config(expiry=ExpiryPolicy.never(leeway=30))
    pkt, _ = op.pktoken(iat=NOW_TS + 120, exp=NOW_TS + 400)
    with pytest.raises(ExpiredError, match="issued in the future"):
        verify_pktoken(pkt, config, op.keyset, now=NOW)
    pkt, _ = op.pktoken(nbf=NOW_TS + 120)
    with pytest.raises(ExpiredError, match="not valid before"):
        verify_pktoken(pkt, config, op.keyset, now=NOW)
    pkt, _ = op.pktoken(iat=NOW_TS + 20)
    verify_pktoken(pkt, config, op.keyset, now=NOW)  # within leeway


def test_exp_before_iat_rejected(op: MiniOP) -> None:
    pkt, _ = op.pktoken(exp=NOW_TS - 3600)
    with pytest.raises(ExpiredError, match="exp < iat"):
        verify_pktoken(pkt, op.config(), op.keyset, now=NOW)


def test_now_must_be_aware(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_pktoken(pkt, op.config(), op.keyset, now=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"commitment": CommitmentType.NONCE}, "client_id"),
        ({"commitment": CommitmentType.GQ_BOUND}, "require_gq"),
        ({"commitment": CommitmentType.AUD, "algorithms": frozenset({"HS256"})}, "unsupported"),
        ({"commitment": CommitmentType.AUD, "algorithms": frozenset()}, "at least one"),
        ({"commitment": CommitmentType.AUD, "require_gq": True}, "only GQ256"),
        ({"commitment": CommitmentType.AUD, "issuer": ""}, "issuer"),
    ],
)
def test_issuer_config_validation(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("issuer", ISSUER)
    with pytest.raises(ConfigError, match=message):
        IssuerConfig(**kwargs)


@pytest.mark.parametrize("alg", ["none", "HS256", "ES512", "RS256 ", "rs256", "GQ256"])
def test_op_alg_outside_allowlist_rejected(op: MiniOP, alg: str) -> None:
    """CVE-2025-3757 class: an unexpected OP alg must fail, never skip verification."""
    pkt, _ = op.pktoken()
    doc = json.loads(pkt.to_json())
    header = json.loads(b64url_decode(doc["signatures"][0]["protected"]))
    header["alg"] = alg
    doc["signatures"][0]["protected"] = b64url_encode(go_json(header))
    tampered = PKToken.from_json(json.dumps(doc))
    with pytest.raises((SignatureError, FormatError)):
        verify_pktoken(tampered, op.config(), op.keyset, now=NOW)


def test_key_bound_token_for_a_nonce_issuer_is_refused(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    doc = json.loads(pkt.to_json())
    header = json.loads(b64url_decode(doc["signatures"][0]["protected"]))
    header["typ"] = "dpop+id_token"
    doc["signatures"][0]["protected"] = b64url_encode(go_json(header))
    with pytest.raises(CommitmentError, match="key-bound"):
        verify_pktoken(PKToken.from_json(json.dumps(doc)), op.config(), op.keyset, now=NOW)


def test_cross_issuer_keys_are_not_used(op: MiniOP) -> None:
    """A token from issuer A verified with B's configuration, even with A's keys merged in."""
    other = MiniOP(issuer="https://other.example.test", kid="b")
    pkt, _ = op.pktoken()
    merged = KeySet((*op.keyset.keys, *other.keyset.keys))
    with pytest.raises(KeyNotFoundError, match="not the trusted issuer"):
        verify_pktoken(pkt, other.config(), merged, now=NOW)


def test_expired_now_default_window() -> None:
    assert NOW.tzinfo is timezone.utc
