"""Public JWKs, thumbprints, ephemeral keys and signature checks."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from opkey.errors import FormatError, SignatureError
from opkey.jose import b64url_encode
from opkey.keys import PublicJWK, SigningKey, generate_signing_key, verify_signature
from tests.helpers import rsa_key

# RFC 7638 §3.1 example key and its thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
        "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
        "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
        "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
        "Cur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc7638_thumbprint() -> None:
    assert PublicJWK.from_dict(RFC7638_JWK).thumbprint() == RFC7638_THUMBPRINT


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_generated_keys_sign_and_verify(alg: str) -> None:
    key = generate_signing_key(alg)
    assert key.public_jwk.alg == alg
    assert key.public_jwk.members["alg"] == alg
    sig = key.sign(b"message")
    verify_signature(alg, key.public_jwk, b"message", sig)
    with pytest.raises(SignatureError):
        verify_signature(alg, key.public_jwk, b"messagf", sig)


def test_default_key_is_es256() -> None:
    assert generate_signing_key().alg == "ES256"


def test_unknown_algorithm_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        generate_signing_key("HS256")


def test_jwk_round_trip_through_from_key() -> None:
    key = generate_signing_key("ES256")
    again = PublicJWK.from_dict(json.loads(json.dumps(key.public_jwk.to_dict())))
    assert again.thumbprint() == key.public_jwk.thumbprint()
    assert list(key.public_jwk.members) == sorted(key.public_jwk.members)


def test_pem_round_trip() -> None:
    for alg in ("ES256", "EdDSA"):
        key = generate_signing_key(alg)
        again = SigningKey.from_pem(key.private_pem())
        assert again.alg == alg
        assert again.public_jwk.members == key.public_jwk.members
    with pytest.raises(FormatError):
        SigningKey.from_pem(b"not a pem")


def test_es256_signature_is_raw_r_s() -> None:
    key = generate_signing_key("ES256")
    sig = key.sign(b"m")
    assert len(sig) == 64
    der = key.sign_der(b"m")
    r, s = decode_dss_signature(der)
    assert r > 0
    assert s > 0
    # a DER signature must not be accepted where raw r||s is required
    with pytest.raises(SignatureError, match="64 bytes"):
        verify_signature("ES256", key.public_jwk, b"m", der)


def test_es256_rejects_zero_and_out_of_range() -> None:
    key = generate_signing_key("ES256")
    with pytest.raises(SignatureError, match="out of range"):
        verify_signature("ES256", key.public_jwk, b"m", bytes(64))
    with pytest.raises(SignatureError, match="out of range"):
        verify_signature("ES256", key.public_jwk, b"m", b"\xff" * 64)


def test_rsa_signature_length_must_equal_modulus() -> None:
    private = rsa_key()
    jwk = PublicJWK.from_key(private.public_key(), alg="RS256")
    from cryptography.hazmat.primitives.asymmetric import padding

    sig = private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    verify_signature("RS256", jwk, b"m", sig)
    with pytest.raises(SignatureError, match="bytes"):
        verify_signature("RS256", jwk, b"m", b"\x00" + sig)
    with pytest.raises(SignatureError, match="bytes"):
        verify_signature("RS256", jwk, b"m", sig[1:])


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [("RS256", "ES256"), ("ES256", "RS256"), ("EdDSA", "ES256"), ("PS256", "ES256")],
)
def test_key_type_must_match_algorithm(alg: str, key_alg: str) -> None:
    key = generate_signing_key(key_alg)
    with pytest.raises(SignatureError, match="cannot verify"):
        verify_signature(alg, key.public_jwk, b"m", key.sign(b"m"))


def test_declared_jwk_alg_must_match() -> None:
    private = rsa_key()
    jwk = PublicJWK.from_key(private.public_key(), alg="PS256")
    from cryptography.hazmat.primitives.asymmetric import padding

    sig = private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(SignatureError, match="cannot verify RS256"):
        verify_signature("RS256", jwk, b"m", sig)


@pytest.mark.parametrize("alg", ["HS256", "none", "rs256", "RS256 ", "ES512", "GQ256"])
def test_unsupported_algorithms_never_verify(alg: str) -> None:
    key = generate_signing_key("RS256")
    with pytest.raises(SignatureError):
        verify_signature(alg, key.public_jwk, b"m", key.sign(b"m"))


def _rsa_jwk(**overrides: object) -> dict[str, object]:
    members: dict[str, object] = dict(
        PublicJWK.from_key(rsa_key().public_key(), alg="RS256").members
    )
    members.update(overrides)
    return {k: v for k, v in members.items() if v is not None}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kty": "oct"}, "unsupported key type"),
        ({"d": "AQAB"}, "private key members"),
        ({"alg": "ES256"}, "does not fit"),
        ({"use": "enc"}, "use"),
        ({"key_ops": ["encrypt"]}, "key_ops"),
        ({"kid": 5}, "kid must be a string"),
        ({"e": "Aw"}, "exponent 3"),
        ({"e": "AAE"}, "non-canonical|exponent"),
        ({"e": "AQAA"}, "exponent"),
        ({"n": b64url_encode(b"\xff" * 128)}, "outside"),
        ({"n": None}, "must be a base64url string"),
    ],
)
def test_rsa_jwk_rejections(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(FormatError, match=message):
        PublicJWK.from_dict(_rsa_jwk(**overrides))


def test_ec_jwk_rejections() -> None:
    good = dict(generate_signing_key("ES256").public_jwk.members)
    with pytest.raises(FormatError, match="curve"):
        PublicJWK.from_dict({**good, "crv": "P-384"})
    with pytest.raises(FormatError, match="32 bytes"):
        PublicJWK.from_dict({**good, "x": b64url_encode(b"\x01" * 31)})
    # a point that is not on the curve
    with pytest.raises(FormatError, match="invalid EC key"):
        PublicJWK.from_dict({**good, "y": b64url_encode(b"\x01" * 32)})


def test_okp_jwk_rejections() -> None:
    good = dict(generate_signing_key("EdDSA").public_jwk.members)
    with pytest.raises(FormatError, match="curve"):
        PublicJWK.from_dict({**good, "crv": "X25519"})
    with pytest.raises(FormatError, match="32 bytes"):
        PublicJWK.from_dict({**good, "x": b64url_encode(b"\x01" * 33)})


def test_from_key_rejects_other_curves() -> None:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ValueError, match="P-256"):
        PublicJWK.from_key(key, alg="ES256")
