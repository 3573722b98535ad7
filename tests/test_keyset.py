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


# -- members and keys opkey does not use -------------------------------------------------------


def _rsa_jwk(**members: object) -> dict[str, object]:
    jwk = generate_signing_key("RS256").public_jwk.to_dict()
    del jwk["alg"]
    jwk.update(members)
    return jwk


def test_unknown_public_members_are_ignored() -> None:
    """Microsoft's keys carry ``issuer`` and ``cloud_instance_name`` (and x5t/x5c): the set
    must stay readable, as it is for OpenPubkey's library."""
    tenant = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
    microsoft = _rsa_jwk(
        use="sig",
        kid="ms-1",
        x5t="ms-1",
        issuer=tenant,
        cloud_instance_name="microsoftonline.com",
    )
    ks = KeySet.from_dict({"keys": [microsoft]})
    assert ks.by_kid("ms-1").members["issuer"] == tenant
    # The thumbprint covers the required members only.
    plain = {k: microsoft[k] for k in ("kty", "n", "e")}
    bare = KeySet.from_dict({"keys": [plain]}).keys[0]
    assert ks.by_kid("ms-1").thumbprint() == bare.thumbprint()


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth"])
def test_private_members_still_make_the_set_unreadable(member: str) -> None:
    with pytest.raises(FormatError, match="private key members"):
        KeySet.from_dict({"keys": [_rsa_jwk(kid="a", **{member: "AQAB"})]})


def test_keycloak_encryption_key_is_skipped() -> None:
    """Keycloak publishes an RSA-OAEP ``use: enc`` key next to its RS256 key by default."""
    signing = _rsa_jwk(kid="sig-1", alg="RS256", use="sig")
    encryption = _rsa_jwk(kid="enc-1", alg="RSA-OAEP", use="enc")
    ks = KeySet.from_dict({"keys": [encryption, signing]})
    assert [key.kid for key in ks] == ["sig-1"]
    # With only the signing key left, a token without kid still resolves unambiguously.
    assert ks.by_kid(None).kid == "sig-1"


@pytest.mark.parametrize(
    "unusable",
    [
        {"use": "enc"},
        {"alg": "RSA-OAEP"},
        {"alg": "RSA-OAEP-256", "use": "enc"},
        {"alg": "RS384"},
        {"key_ops": ["encrypt", "wrapKey"]},
    ],
)
def test_keys_opkey_cannot_use_are_skipped(unusable: dict[str, object]) -> None:
    ks = KeySet.from_dict({"keys": [_rsa_jwk(kid="other", **unusable), _rsa_jwk(kid="mine")]})
    assert [key.kid for key in ks] == ["mine"]


def test_unusable_keys_with_private_members_are_refused() -> None:
    with pytest.raises(FormatError, match="private key members"):
        KeySet.from_dict({"keys": [_rsa_jwk(kid="e", use="enc", d="AQAB"), _rsa_jwk(kid="s")]})


@pytest.mark.parametrize(
    "broken",
    [
        {"alg": "RS256", "n": "not base64!"},
        {"alg": "RS256", "e": "AAE"},
        {"alg": "ES256"},  # an RSA key claiming an EC algorithm
        {"use": 7},
        {"alg": 256},
    ],
)
def test_malformed_key_claiming_a_usable_algorithm_fails_loudly(broken: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        KeySet.from_dict({"keys": [_rsa_jwk(kid="bad", **broken), _rsa_jwk(kid="good")]})
