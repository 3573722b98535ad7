"""Attacks on algorithm choice and on the signature primitives (catalog §1, §4 GQ, §6).

The verifier, never the token, decides which algorithm a signature uses; key type and declared
JWK ``alg`` must fit it; encodings are exact (raw 64-byte ES256, RSA signatures exactly as long
as the modulus); keys are 2048–8192-bit RSA with an odd exponent in (3, 2**32).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from opkey import gq
from opkey.artifact import artifact_statement
from opkey.bundle import Bundle
from opkey.cic import ClientInstanceClaims
from opkey.digest import Digest
from opkey.errors import CommitmentError, ConfigError, FormatError, KeyNotFoundError, SignatureError
from opkey.issuers import CommitmentType, IssuerConfig
from opkey.jose import b64url_decode, b64url_encode, go_json, parse_compact
from opkey.jwks.keyset import KeySet
from opkey.keys import PublicJWK, generate_signing_key, verify_signature
from opkey.message import sign_message, verify_message
from opkey.policy.claims import UnsafeNoPolicy
from opkey.verify import verify_pktoken
from tests.helpers import CLIENT_ID, ISSUER, NOW, MiniOP, rsa_key
from tests.security.sec_common import (
    GH_2022,
    GH_2025,
    GH_GQ,
    GH_KID_2022,
    GH_KID_2022_OTHER,
    GH_RS256,
    compact,
    doc,
    forge,
    gh_at,
    gh_gq_token,
    gh_key,
    gh_keyset,
    gh_pktoken,
    header,
    hmac_signer,
    jwks,
    parse,
    pinned_verifier,
    pktoken_doc,
    rsa_signer,
    set_header,
)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
DIGEST = Digest("sha256:" + "5e" * 32)
#: Every OP algorithm opkey supports except GQ256: the widest configuration a verifier can have.
EVERY_ALG = frozenset({"RS256", "PS256", "ES256", "EdDSA"})


@pytest.fixture(scope="module")
def op() -> MiniOP:
    return MiniOP()


def test_real_token_reaches_the_commitment_step() -> None:
    """Control: unmodified, a real GitHub token passes every check before the commitment."""
    pkt = gh_pktoken(GH_2022, gq_form=False).pktoken
    with pytest.raises(CommitmentError, match="aud does not commit"):
        verify_pktoken(pkt, GH_RS256, gh_keyset(GH_2022), now=gh_at(GH_2022))


@pytest.mark.parametrize(
    "alg",
    ["none", "None", "NONE", "HS256", "HS384", "HS512", "ES512", "PS384", "rs256", "Rs256",
     "RS256 ", " RS256", "RS256\n", "RS256\u0000", "RS 256", "RS512"],
)  # fmt: skip
def test_real_token_with_a_non_allowed_alg_is_rejected(alg: str) -> None:
    """CVE-2025-3757 class: any alg the verifier did not list fails at the algorithm check."""
    d = doc(gh_pktoken(GH_2022, gq_form=False).pktoken)
    h = header(d, 0)
    h["alg"] = alg
    set_header(d, 0, h)
    with pytest.raises(SignatureError, match="is not allowed"):
        verify_pktoken(parse(d), GH_RS256, gh_keyset(GH_2022), now=gh_at(GH_2022))


@pytest.mark.parametrize(("alg", "signature"), [("none", b""), ("ES512", b"\x01" * 132)])
def test_unknown_alg_never_skips_signature_verification(
    op: MiniOP, alg: str, signature: bytes
) -> None:
    """The OpenPubkey < 0.10 bug: an alg without a case fell through to the commitment check.

    Here the commitment, the CIC signature and the issuer are all right; only the OP signature
    is missing or garbage. The widest possible configuration still rejects it.
    """
    forged = forge(op, {"alg": alg, "kid": op.kid, "typ": "JWT"}, lambda _: signature)
    config = IssuerConfig(
        ISSUER, CommitmentType.NONCE, algorithms=EVERY_ALG | {"GQ256"}, client_id=CLIENT_ID
    )
    with pytest.raises(SignatureError, match=f"'{alg}' is not allowed"):
        verify_pktoken(parse(forged.document), config, op.keyset, now=NOW)


def _public_key_encodings(key: rsa.RSAPublicKey, jwk: PublicJWK) -> dict[str, bytes]:
    """Every form of the RSA public key a confused HMAC verifier might use as its secret."""
    return {
        "spki-pem": key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "pkcs1-pem": key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "spki-der": key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "openssh": key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        "jwk-json": go_json(jwk.to_dict()),
        "modulus": b64url_decode(jwk.members["n"]),
    }


@pytest.mark.parametrize(
    "encoding", ["spki-pem", "pkcs1-pem", "spki-der", "openssh", "jwk-json", "modulus"]
)
def test_hs256_with_the_rsa_public_key_as_secret_is_rejected(op: MiniOP, encoding: str) -> None:
    """RS/HS key confusion (PyJWT CVE-2022-29217, python-jose CVE-2024-33663 and kin)."""
    secret = _public_key_encodings(op.private_key.public_key(), op.public_jwk)[encoding]
    hs = forge(op, {"alg": "HS256", "kid": op.kid, "typ": "JWT"}, hmac_signer(secret))
    with pytest.raises(SignatureError, match="'HS256' is not allowed"):
        verify_pktoken(parse(hs.document), op.config(), op.keyset, now=NOW)
    # The same HMAC under a header that claims RS256 is simply not an RSA signature.
    rs = forge(op, {"alg": "RS256", "kid": op.kid, "typ": "JWT"}, hmac_signer(secret))
    with pytest.raises(SignatureError, match="RS256 signature is 32 bytes, the modulus 256"):
        verify_pktoken(parse(rs.document), op.config(), op.keyset, now=NOW)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "none"])
def test_hmac_and_none_cannot_even_be_configured(op: MiniOP, alg: str) -> None:
    with pytest.raises(ConfigError, match="unsupported algorithms"):
        IssuerConfig(ISSUER, CommitmentType.AUD, algorithms=frozenset({alg}))
    with pytest.raises(SignatureError, match=f"cannot verify {alg}"):
        verify_signature(alg, op.public_jwk, b"data", b"\x00" * 32)


def test_an_oct_key_in_the_jwks_is_never_an_hmac_key(op: MiniOP) -> None:
    """A symmetric key published under the token's kid is skipped, not used for HS256."""
    secret = b"shared-secret-from-the-jwks"
    document = {
        "keys": [
            {"kty": "oct", "kid": "hmac", "k": b64url_encode(secret), "alg": "HS256"},
            op.public_jwk.to_dict(),
        ]
    }
    keys = KeySet.from_dict(document)
    assert [key.kid for key in keys] == [op.kid]
    forged = forge(op, {"alg": "HS256", "kid": "hmac", "typ": "JWT"}, hmac_signer(secret))
    with pytest.raises(SignatureError, match="'HS256' is not allowed"):
        verify_pktoken(parse(forged.document), op.config(), keys, now=NOW)
    forged = forge(op, {"alg": "RS256", "kid": "hmac", "typ": "JWT"}, hmac_signer(secret))
    with pytest.raises(KeyNotFoundError, match="no key with kid 'hmac'"):
        verify_pktoken(parse(forged.document), op.config(), keys, now=NOW)


def test_key_type_must_fit_the_alg(op: MiniOP) -> None:
    """An ES256 or EdDSA header naming an RSA key: the key cannot verify that algorithm."""
    config = op.config(algorithms=EVERY_ALG)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    forged = forge(
        op,
        {"alg": "ES256", "kid": op.kid, "typ": "JWT"},
        lambda data: b"".join(
            n.to_bytes(32, "big")
            for n in decode_dss_signature(ec_key.sign(data, ec.ECDSA(hashes.SHA256())))
        ),
    )
    with pytest.raises(SignatureError, match="kty RSA, alg RS256\\) cannot verify ES256"):
        verify_pktoken(parse(forged.document), config, op.keyset, now=NOW)
    ec_op = MiniOP(alg="ES256", kid="ec-key")
    forged = forge(ec_op, {"alg": "RS256", "kid": ec_op.kid, "typ": "JWT"}, rsa_signer(rsa_key()))
    config = ec_op.config(algorithms=EVERY_ALG)
    with pytest.raises(SignatureError, match="cannot verify RS256"):
        verify_pktoken(parse(forged.document), config, ec_op.keyset, now=NOW)


def test_the_jwks_alg_pins_the_algorithm(op: MiniOP) -> None:
    """A PS256 signature by the provider's RS256 key is refused though PS256 is configured."""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    forged = forge(
        op,
        {"alg": "PS256", "kid": op.kid, "typ": "JWT"},
        lambda data: op.private_key.sign(data, pss, hashes.SHA256()),
    )
    config = op.config(algorithms=frozenset({"RS256", "PS256"}))
    with pytest.raises(SignatureError, match="alg RS256\\) cannot verify PS256"):
        verify_pktoken(parse(forged.document), config, op.keyset, now=NOW)


@pytest.mark.parametrize("alg", ["none", "HS256", "ES512", "es256", "GQ256"])
def test_cic_alg_outside_the_user_algorithms_is_rejected(op: MiniOP, alg: str) -> None:
    pkt, _ = op.pktoken()
    d = doc(pkt)
    cic_header = header(d, 1)
    cic_header["alg"] = alg
    set_header(d, 1, cic_header)
    with pytest.raises(FormatError, match=f"CIC alg '{alg}' is not one of"):
        parse(d)


def test_cic_alg_must_equal_upk_alg(op: MiniOP) -> None:
    pkt, _ = op.pktoken(user_alg="EdDSA")
    d = doc(pkt)
    cic_header = header(d, 1)
    cic_header["alg"] = "ES256"
    set_header(d, 1, cic_header)
    with pytest.raises(FormatError, match="differs from upk alg 'EdDSA'"):
        parse(d)


def test_osm_with_an_hmac_alg_is_rejected(op: MiniOP) -> None:
    """An OSM signed with HMAC keyed by the (public) upk: alg must be the CIC's."""
    pkt, _ = op.pktoken()
    secret = go_json(pkt.cic_claims.upk.to_dict())
    osm = compact(
        {"alg": "HS256", "kid": pkt.hash(), "typ": "osm"},
        artifact_statement(DIGEST),
        hmac_signer(secret),
    )
    verifier = pinned_verifier((op.config(), op.keyset))
    with pytest.raises(SignatureError, match="alg 'HS256' differs from the PK token key's"):
        verifier.verify_bundle(Bundle(pkt, osm), DIGEST, policy=UnsafeNoPolicy())


def _with_cic_signature(op: MiniOP, signature: bytes | None = None, *, der: bool = False) -> Any:
    pkt, key = op.pktoken()
    d = doc(pkt)
    if der:
        signing_input = f"{d['signatures'][1]['protected']}.{d['payload']}".encode()
        signature = key.sign_der(signing_input)
    assert signature is not None
    d["signatures"][1]["signature"] = b64url_encode(signature)
    return parse(d)


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 0), (0, 1), (1, 0), (P256_ORDER, 1), (1, P256_ORDER), (P256_ORDER + 1, 1)],
    ids=["r=s=0", "r=0", "s=0", "r=n", "s=n", "r=n+1"],
)
def test_psychic_es256_signature_in_the_cic_is_rejected(op: MiniOP, r: int, s: int) -> None:
    """CVE-2022-21449: r or s of 0 (or >= n) must fail, never verify."""
    pkt = _with_cic_signature(op, r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    with pytest.raises(SignatureError, match="r or s out of range"):
        verify_pktoken(pkt, op.config(), op.keyset, now=NOW)


def test_psychic_es256_signature_in_an_osm_is_rejected(op: MiniOP) -> None:
    pkt, _ = op.pktoken()
    osm = compact(
        {"alg": "ES256", "kid": pkt.hash(), "typ": "osm"}, artifact_statement(DIGEST),
        lambda _: bytes(64),
    )  # fmt: skip
    with pytest.raises(SignatureError, match="r or s out of range"):
        verify_message(osm, pkt)


def test_der_encoded_es256_in_the_cic_is_rejected(op: MiniOP) -> None:
    pkt = _with_cic_signature(op, der=True)
    with pytest.raises(SignatureError, match="must be 64 bytes \\(r\\|\\|s\\)"):
        verify_pktoken(pkt, op.config(), op.keyset, now=NOW)


def test_der_encoded_es256_in_an_osm_is_rejected(op: MiniOP) -> None:
    pkt, key = op.pktoken()
    osm = compact(
        {"alg": "ES256", "kid": pkt.hash(), "typ": "osm"}, artifact_statement(DIGEST),
        key.sign_der,
    )  # fmt: skip
    with pytest.raises(SignatureError, match="must be 64 bytes"):
        verify_message(osm, pkt)


def test_high_s_es256_is_accepted_with_identical_content(op: MiniOP) -> None:
    """Decision, documented in spec/threat-model.md: high-S is not rejected.

    Go's crypto/ecdsa (OpenPubkey) neither normalises nor rejects high-S, so refusing it would
    break interoperability. The malleated signature says exactly what the original says, and
    nothing in opkey uses signature bytes as an identity (the PK token hash changes with them).
    """
    pkt, key = op.pktoken()
    osm = sign_message(artifact_statement(DIGEST), pkt, key)
    head, body, sig = osm.split(".")
    raw = b64url_decode(sig)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    high_s = r.to_bytes(32, "big") + (P256_ORDER - s).to_bytes(32, "big")
    flipped = f"{head}.{body}.{b64url_encode(high_s)}"
    assert flipped != osm
    assert verify_message(flipped, pkt) == verify_message(osm, pkt) == artifact_statement(DIGEST)


def test_rsa_signature_with_its_leading_zero_stripped_is_rejected(op: MiniOP) -> None:
    """A signature shorter than the modulus (lenient verifiers left-pad it) is refused."""
    key = generate_signing_key()
    cic = ClientInstanceClaims.create(key.public_jwk)
    for jti in range(4000):
        claims = op.claims(nonce=cic.commitment(), jti=str(jti))
        token = op.mint(claims)
        signature = b64url_decode(token.split(".")[2])
        if signature[0] == 0:
            break
    else:  # pragma: no cover - probability (255/256)**4000
        pytest.fail("no RSA signature with a leading zero byte")
    head, body, _ = token.split(".")
    short = pktoken_doc(f"{head}.{body}.{b64url_encode(signature[1:])}", key, cic)
    with pytest.raises(SignatureError, match="RS256 signature is 255 bytes, the modulus 256"):
        verify_pktoken(parse(short), op.config(), op.keyset, now=NOW)
    good = pktoken_doc(token, key, cic)
    verify_pktoken(parse(good), op.config(), op.keyset, now=NOW)


@pytest.mark.parametrize("change", ["prepend-zero", "truncate", "append-zero"])
def test_real_rsa_signature_of_the_wrong_length_is_rejected(change: str) -> None:
    d = doc(gh_pktoken(GH_2025, gq_form=False).pktoken)
    signature = b64url_decode(d["signatures"][0]["signature"])
    changed = {
        "prepend-zero": b"\x00" + signature,
        "truncate": signature[:-1],
        "append-zero": signature + b"\x00",
    }[change]
    d["signatures"][0]["signature"] = b64url_encode(changed)
    with pytest.raises(SignatureError, match=f"RS256 signature is {len(changed)} bytes"):
        verify_pktoken(parse(d), GH_RS256, gh_keyset(GH_2025), now=gh_at(GH_2025))


def _rsa_jwk(n: int, e: int = 65537, **extra: Any) -> dict[str, Any]:
    def b64(v: int) -> str:
        return b64url_encode(v.to_bytes((v.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "kid": "k", "n": b64(n), "e": b64(e), **extra}


@pytest.mark.parametrize("bits", [512, 1024, 2047, 8193, 8200, 16384])
def test_jwks_with_too_small_or_too_large_rsa_modulus_is_rejected(bits: int) -> None:
    n = (1 << (bits - 1)) | 1  # only the size matters: it is checked before anything else
    with pytest.raises(FormatError, match=f"RSA modulus of {bits} bits is outside 2048..8192"):
        KeySet.from_dict({"keys": [_rsa_jwk(n)]})


def test_real_1024_bit_provider_key_is_rejected() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    jwk = _rsa_jwk(weak.public_key().public_numbers().n)
    with pytest.raises(FormatError, match="1024 bits"):
        KeySet.from_dict({"keys": [jwk]})


def test_1024_bit_ephemeral_rsa_key_in_the_cic_is_rejected(op: MiniOP) -> None:
    pkt, _ = op.pktoken(user_alg="RS256")
    d = doc(pkt)
    cic_header = header(d, 1)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    cic_header["upk"] = _rsa_jwk(weak.public_key().public_numbers().n, alg="RS256")
    del cic_header["upk"]["kid"]
    set_header(d, 1, cic_header)
    with pytest.raises(FormatError, match="CIC upk: RSA modulus of 1024 bits"):
        parse(d)


@pytest.mark.parametrize("e", [1, 3, 4, 65536, 2**32 + 1, 2**40 + 1])
def test_jwks_with_a_weak_or_even_rsa_exponent_is_rejected(e: int) -> None:
    n = rsa_key().public_key().public_numbers().n
    with pytest.raises(FormatError, match=f"RSA public exponent {e} is not odd in"):
        KeySet.from_dict({"keys": [_rsa_jwk(n, e)]})


def test_gq_proof_checked_with_another_provider_key_is_rejected() -> None:
    """A real GQ256 token against GitHub's *other* 2022 key: by kid+jkt, then directly."""
    pkt = gh_pktoken(GH_2022).pktoken
    other = gh_keyset(GH_2022).by_kid(GH_KID_2022_OTHER)
    relabelled = PublicJWK.from_dict({**other.to_dict(), "kid": GH_KID_2022})
    with pytest.raises(KeyNotFoundError, match="thumbprint"):
        verify_pktoken(pkt, GH_GQ, KeySet((relabelled,)), now=gh_at(GH_2022))
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        gq.verify_jwt(parse_compact(gh_gq_token(GH_2022)), other)


def _same_modulus_with_exponent(private: rsa.RSAPrivateKey, e: int) -> rsa.RSAPrivateKey | None:
    numbers = private.private_numbers()
    p, q = numbers.p, numbers.q
    lam = (p - 1) * (q - 1)
    try:
        d = pow(e, -1, lam)
    except ValueError:
        return None
    return rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    ).private_key()


def test_gq_with_an_unusual_exponent_keeps_its_soundness_and_binds_the_exponent(
    op: MiniOP,
) -> None:
    """e = 17: 64 rounds of 4 bits (>= 256 bits of challenge), and a proof for one exponent
    never verifies under another exponent of the same modulus (issue #230 / PR #231 class)."""
    base = rsa_key(fresh=True)
    e17 = _same_modulus_with_exponent(base, 17)
    while e17 is None:  # pragma: no cover - needs gcd(17, phi) = 1, true 15/16 of the time
        base = rsa_key(fresh=True)
        e17 = _same_modulus_with_exponent(base, 17)
    key17 = PublicJWK.from_key(e17.public_key(), alg="RS256", kid="e17")
    key65537 = PublicJWK.from_key(base.public_key(), alg="RS256", kid="e65537")
    params = gq.GQParams.from_key(e17.public_key())
    assert (params.t, params.v_bytes) == (64, 1)
    claims = op.claims()
    token17 = compact({"alg": "RS256", "kid": "e17", "typ": "JWT"}, claims, rsa_signer(e17))
    proof17 = parse_compact(gq.sign_jwt(token17, key17))
    gq.verify_jwt(proof17, key17)
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        gq.verify_jwt(proof17, key65537)
    token = compact({"alg": "RS256", "kid": "e65537", "typ": "JWT"}, claims, rsa_signer(base))
    proof = parse_compact(gq.sign_jwt(token, key65537))
    with pytest.raises(SignatureError, match="GQ256 signature does not verify"):
        gq.verify_jwt(proof, key17)


def test_gq_required_refuses_the_bearer_rs256_form_of_a_real_token() -> None:
    """A GQ-only issuer never accepts a replayable RS256 ID token."""
    pkt = gh_pktoken(GH_2025, gq_form=False).pktoken
    with pytest.raises(SignatureError, match="GQ256 is required"):
        verify_pktoken(pkt, GH_GQ, gh_keyset(GH_2025), now=gh_at(GH_2025))


def test_gq_proof_relabelled_as_rs256_is_rejected() -> None:
    d = doc(gh_pktoken(GH_2025).pktoken)
    gq_header = header(d, 0)
    original = json.loads(b64url_decode(gq_header["kid"]))
    gq_header.update(alg="RS256", kid=original["kid"])
    set_header(d, 0, gq_header)
    with pytest.raises(SignatureError, match="RS256 signature is 4128 bytes"):
        verify_pktoken(parse(d), GH_RS256, gh_keyset(GH_2025), now=gh_at(GH_2025))


def test_keys_come_only_from_the_configured_jwks_snapshot() -> None:
    """The 2022 key is absent from the 2025 snapshots: a clean KeyNotFoundError."""
    pkt = gh_pktoken(GH_2022).pktoken
    for name in ("github-jwks_2025_crates-io.json", "github-jwks_2025_openpubkey-docs.json"):
        with pytest.raises(KeyNotFoundError, match="thumbprint"):
            verify_pktoken(pkt, GH_GQ, jwks(name), now=gh_at(GH_2022))
    assert gh_key(GH_2022).kid == GH_KID_2022
