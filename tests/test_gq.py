"""GQ256 parameters, encoding and backends."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from opkey import gq
from opkey.errors import SignatureError
from opkey.jose import parse_compact
from tests.helpers import MiniOP, rsa_key


@pytest.fixture
def restore_backend() -> Iterator[None]:
    before = gq.backend()
    yield
    gq.set_backend(before)


def _public(e: int, n: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


@pytest.mark.parametrize(
    ("e", "t", "v_bytes"),
    [(65537, 16, 2), (3, 256, 1), (5, 128, 1), (17, 64, 1), (257, 32, 1), (2**31 - 1, 9, 4)],
)
def test_parameters_follow_openpubkey(e: int, t: int, v_bytes: int) -> None:
    n = rsa_key().public_key().public_numbers().n
    params = gq.GQParams.from_key(_public(e, n))
    assert (params.t, params.v_bytes, params.n_bytes) == (t, v_bytes, 256)


@pytest.mark.parametrize("e", [1, 3, 4, 65536])
def test_provider_keys_with_weak_or_even_exponents_never_reach_gq(e: int) -> None:
    """pyca refuses even exponents; opkey's JWK parser also refuses e <= 3 before GQ sees it."""
    from opkey.errors import FormatError
    from opkey.jose import b64url_encode
    from opkey.keys import PublicJWK

    members = dict(MiniOP().public_jwk.members)
    members["e"] = b64url_encode(e.to_bytes((e.bit_length() + 7) // 8, "big"))
    with pytest.raises(FormatError, match="exponent"):
        PublicJWK.from_dict(members)


def test_signature_length_for_rsa_2048() -> None:
    params = gq.GQParams.from_key(rsa_key().public_key())
    assert params.signature_length == 32 + 16 * 256


def test_backends_produce_identical_tokens(restore_backend: None) -> None:
    pytest.importorskip("gmpy2")
    op = MiniOP()
    token = op.mint(op.claims())
    outputs = {}
    for name in ("python", "gmpy2"):
        gq.set_backend(name)
        assert gq.backend() == name
        rng = random.Random(1234)
        outputs[name] = gq.sign_jwt(token, op.public_jwk, randbelow=rng.randrange)
        gq.verify_jwt(parse_compact(outputs[name]), op.public_jwk)
    assert outputs["python"] == outputs["gmpy2"]
    # and each backend verifies the other's output
    gq.set_backend("python")
    gq.verify_jwt(parse_compact(outputs["gmpy2"]), op.public_jwk)


def test_unknown_backend(restore_backend: None) -> None:
    with pytest.raises(ValueError, match="unknown GQ backend"):
        gq.set_backend("fortran")


def test_wrong_length_and_out_of_range_s_rejected() -> None:
    op = MiniOP()
    token = gq.sign_jwt(op.mint(op.claims()), op.public_jwk)
    jws = parse_compact(token)
    params = gq.GQParams.from_key(rsa_key().public_key())
    identity = gq.original_header(jws).signing_input
    assert gq._verify(params, jws.signature, identity, jws.signing_input)
    assert not gq._verify(params, jws.signature[:-1], identity, jws.signing_input)
    r_len = params.t * params.v_bytes
    zero_s = jws.signature[:r_len] + bytes(params.n_bytes) + jws.signature[r_len + params.n_bytes :]
    assert not gq._verify(params, zero_s, identity, jws.signing_input)
    n_s = (
        jws.signature[:r_len]
        + params.n.to_bytes(params.n_bytes, "big")
        + jws.signature[r_len + params.n_bytes :]
    )
    assert not gq._verify(params, n_s, identity, jws.signing_input)


def test_gq_needs_rsa_provider_key() -> None:
    rsa_op = MiniOP()
    ec_op = MiniOP(alg="ES256", kid="ec")
    token = gq.sign_jwt(rsa_op.mint(rsa_op.claims()), rsa_op.public_jwk)
    with pytest.raises(SignatureError, match="RSA provider key"):
        gq.verify_jwt(parse_compact(token), ec_op.public_jwk)


def test_pre_v025_message_format_does_not_verify() -> None:
    """Tokens whose proof covers only the identity (OpenPubkey < 0.25) are not accepted."""
    op = MiniOP()
    id_token = op.mint(op.claims())
    jws = parse_compact(gq.sign_jwt(id_token, op.public_jwk))
    params = gq.GQParams.from_key(rsa_key().public_key())
    sigma = int.from_bytes(parse_compact(id_token).signature, "big")
    q = pow(sigma, -1, params.n)
    identity = gq.original_header(jws).signing_input
    old_style = gq._sign(params, q, identity, random.Random(1).randrange)
    assert gq._verify(params, old_style, identity, identity)
    assert not gq._verify(params, old_style, identity, jws.signing_input)
