"""JWKS parsing and exact key lookup, on real GitHub JWKS snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from opkey.errors import FormatError, KeyNotFoundError
from opkey.jwks.keyset import KeySet
from opkey.keys import generate_signing_key

GITHUB = Path(__file__).parent / "data" / "github-actions"


def test_real_github_jwks_parse() -> None:
    ks = KeySet.from_json((GITHUB / "github-jwks_2025_crates-io.json").read_bytes())
    assert len(ks) == 4
    key = ks.by_kid("38826b17-6a30-5f9b-b169-8beb8202f723")
    assert key.kty == "RSA"
    assert key.alg == "RS256"
    assert ks.by_jkt(key.thumbprint()) is key


def test_unknown_kid_is_key_not_found() -> None:
    ks = KeySet.from_json((GITHUB / "github-jwks_2025_crates-io.json").read_bytes())
    with pytest.raises(KeyNotFoundError, match="78167F72"):
        ks.by_kid("78167F727DEC5D801DD1C8784C704A1C880EC0E1")


def test_missing_kid_needs_single_key() -> None:
    ks = KeySet.from_json((GITHUB / "github-jwks_2022_step-security.json").read_bytes())
    with pytest.raises(KeyNotFoundError, match="refusing to guess"):
        ks.by_kid(None)
    one = KeySet(ks.keys[:1])
    assert one.by_kid(None) is ks.keys[0]


def test_duplicate_kids_are_ambiguous() -> None:
    a = generate_signing_key().public_jwk.to_dict()
    b = generate_signing_key().public_jwk.to_dict()
    ks = KeySet.from_dict({"keys": [{**a, "kid": "k"}, {**b, "kid": "k"}]})
    with pytest.raises(KeyNotFoundError, match="ambiguous"):
        ks.by_kid("k")


def test_find_requires_kid_and_jkt_to_agree() -> None:
    ks = KeySet.from_json((GITHUB / "github-jwks_2025_crates-io.json").read_bytes())
    a, b = ks.keys[0], ks.keys[1]
    assert ks.find(kid=a.kid, jkt=a.thumbprint()) is a
    assert ks.find(kid=None, jkt=b.thumbprint()) is b
    with pytest.raises(KeyNotFoundError, match="thumbprint"):
        ks.find(kid=a.kid, jkt=b.thumbprint())


def test_unusable_keys_are_skipped_and_bad_ones_rejected() -> None:
    ec = generate_signing_key().public_jwk.to_dict()
    ks = KeySet.from_dict(
        {
            "keys": [
                {"kty": "oct", "k": "AAAA"},
                {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
                ec,
            ]
        }
    )
    assert len(ks) == 1
    with pytest.raises(FormatError, match="private"):
        KeySet.from_dict({"keys": [{**ec, "d": "AAAA"}]})
    with pytest.raises(FormatError, match="'keys' array"):
        KeySet.from_dict({"keys": {}})
    with pytest.raises(FormatError, match="more than"):
        KeySet.from_dict({"keys": [ec] * 101})


def test_to_dict_round_trip() -> None:
    ks = KeySet.from_json((GITHUB / "github-jwks_2022_step-security.json").read_bytes())
    again = KeySet.from_dict(ks.to_dict())
    assert [k.thumbprint() for k in again] == [k.thumbprint() for k in ks]
