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
    before = gq._mode or "auto"
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


def test_auto_backend_starts_with_python_then_loads_gmpy2(
    restore_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One-shot commands skip the gmpy2 import; busy processes switch; the bytes agree."""
    pytest.importorskip("gmpy2")
    op = MiniOP()
    token = op.mint(op.claims())
    monkeypatch.setattr(gq, "_auto_operations", 0)
    gq.set_backend("auto")
    used, outputs = [], set()
    for _ in range(gq.AUTO_PYTHON_OPERATIONS + 2):
        used.append(gq.backend())
        signed = gq.sign_jwt(token, op.public_jwk, randbelow=random.Random(7).randrange)
        outputs.add(signed)
    assert used[: gq.AUTO_PYTHON_OPERATIONS] == ["python"] * gq.AUTO_PYTHON_OPERATIONS
    assert used[gq.AUTO_PYTHON_OPERATIONS :] == ["gmpy2", "gmpy2"]
    assert len(outputs) == 1
    gq.verify_jwt(parse_compact(outputs.pop()), op.public_jwk)


def test_auto_backend_without_gmpy2_stays_python(
    restore_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gq, "_gmpy2_backend", lambda: None)
    monkeypatch.setattr(gq, "_auto_operations", gq.AUTO_PYTHON_OPERATIONS)
    gq.set_backend("auto")
    assert gq.backend() == "python"
    with pytest.raises(RuntimeError, match="not installed"):
        gq.set_backend("gmpy2")


@pytest.mark.parametrize("name", ["python", "gmpy2"])
@pytest.mark.parametrize("bits", [8, 16, 32])
def test_shared_base_powers_equal_separate_exponentiations(
    restore_backend: None, name: str, bits: int
) -> None:
    if name == "gmpy2":
        pytest.importorskip("gmpy2")
    gq.set_backend(name)
    be = gq._current()
    rng = random.Random(bits)
    n = rsa_key().public_key().public_numbers().n
    base = rng.randrange(2, n)
    exponents = [0, 1, 15, 16, 2**bits - 1, 2 ** (bits - 1)]
    exponents += [rng.randrange(2**bits) for _ in range(20)]
    powers = gq._shared_base_powers(be.mpz(base), exponents, bits, be.mpz(n))
    assert [int(p) for p in powers] == [pow(base, e, n) for e in exponents]


def test_environment_pins_the_backend(
    restore_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gq, "_mode", None)
    monkeypatch.setattr(gq, "_backend", None)
    monkeypatch.setenv("OPKEY_GQ_BACKEND", "python")
    monkeypatch.setattr(gq, "_auto_operations", gq.AUTO_PYTHON_OPERATIONS)
    assert gq.backend() == "python"
    assert gq._mode == "python"
    monkeypatch.setattr(gq, "_mode", None)
    monkeypatch.setattr(gq, "_backend", None)
    monkeypatch.setattr(gq, "_gmpy2_backend", lambda: None)
    monkeypatch.setenv("OPKEY_GQ_BACKEND", "gmpy2")
    with pytest.raises(RuntimeError, match="OPKEY_GQ_BACKEND=gmpy2"):
        gq.backend()
