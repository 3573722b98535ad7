"""Core protocol benchmarks: GQ256 against the modexp floor, PK token verification against
the summed cost of its primitive operations.

Run alone with ``python -m benchmarks.bench_core`` or through ``benchmarks/run.py``.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from benchmarks.harness import Figure, best_time, ratio_figure
from opkey import gq
from opkey.cic import ClientInstanceClaims
from opkey.jose import parse_compact
from opkey.keys import PublicJWK, generate_signing_key
from opkey.keyset import KeySet
from opkey.pktoken import PKToken
from opkey.verify import CommitmentType, IssuerConfig, verify_pktoken

__all__ = ["Fixture", "run"]

ISSUER = "https://bench.example.test"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Fixture:
    """An RSA-2048 provider, an RS256 and a GQ256 PK token with ES256 ephemeral keys."""

    def __init__(self) -> None:
        import jwt

        self.op_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.op_jwk = PublicJWK.from_key(self.op_private.public_key(), alg="RS256", kid="k1")
        self.keys = KeySet((self.op_jwk,))
        self.user = generate_signing_key("ES256")
        cic = ClientInstanceClaims.create(self.user.public_jwk)
        iat = int(NOW.timestamp())
        claims = {
            "iss": ISSUER,
            "sub": "repo:o/r:ref:refs/heads/main",
            "iat": iat,
            "nbf": iat - 300,
            "exp": iat + 300,
            "aud": cic.commitment(),
        }
        self.id_token = jwt.encode(
            claims, self.op_private, algorithm="RS256", headers={"kid": "k1", "typ": "JWT"}
        )
        self.rs256_pkt = PKToken.create(self.id_token, cic, self.user)
        self.gq_token = gq.sign_jwt(self.id_token, self.op_jwk)
        self.gq_pkt = PKToken.create(self.gq_token, cic, self.user)
        self.rs256_config = IssuerConfig(issuer=ISSUER, commitment=CommitmentType.AUD)
        self.gq_config = IssuerConfig(
            issuer=ISSUER,
            commitment=CommitmentType.AUD,
            algorithms=frozenset({"GQ256"}),
            require_gq=True,
        )


def _modexp_floor_verify(fx: Fixture) -> float:
    """The exponentiations of one GQ256 verify, done with the fastest backend available."""
    jws = parse_compact(fx.gq_token)
    params = gq.GQParams.from_key(fx.op_private.public_key())
    backend = gq._current()
    n = backend.mpz(params.n)
    t, vb, nb = params.t, params.v_bytes, params.n_bytes
    sig = jws.signature
    rs = [int.from_bytes(sig[i * vb : (i + 1) * vb], "big") for i in range(t)]
    ss = [
        backend.mpz(int.from_bytes(sig[t * vb + i * nb : t * vb + (i + 1) * nb], "big"))
        for i in range(t)
    ]
    g = backend.mpz(gq.gq_identity(gq.original_header(jws).signing_input, nb))
    powmod, v = backend.powmod, params.v

    def floor() -> None:
        for i in range(t):
            powmod(ss[i], v, n)
            powmod(g, rs[i], n)

    return best_time(floor, number=50)


def _modexp_floor_sign(fx: Fixture) -> float:
    params = gq.GQParams.from_key(fx.op_private.public_key())
    backend = gq._current()
    n = backend.mpz(params.n)
    q = backend.mpz(pow(int.from_bytes(parse_compact(fx.id_token).signature, "big"), -1, params.n))
    rs = [backend.mpz(params.n - 12345 - i) for i in range(params.t)]
    exps = [40000 + i for i in range(params.t)]
    powmod, v = backend.powmod, params.v

    def floor() -> None:
        for i in range(params.t):
            powmod(rs[i], v, n)
            powmod(q, exps[i], n)

    return best_time(floor, number=50)


def _pktoken_floor(fx: Fixture) -> float:
    """RS256 verify + ES256 verify + the two SHA3-256 hashes (commitment, PK token hash)."""
    op = fx.rs256_pkt.op.jws(fx.rs256_pkt.payload_b64)
    cic = fx.rs256_pkt.cic.jws(fx.rs256_pkt.payload_b64)
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    der = encode_dss_signature(
        int.from_bytes(cic.signature[:32], "big"), int.from_bytes(cic.signature[32:], "big")
    )
    op_key = fx.op_private.public_key()
    user_key = fx.user.private_key.public_key()
    assert isinstance(user_key, ec.EllipticCurvePublicKey)
    header = fx.rs256_pkt.cic_claims.header_bytes()
    document = fx.rs256_pkt.to_json()

    def floor() -> None:
        op_key.verify(op.signature, op.signing_input, padding.PKCS1v15(), hashes.SHA256())
        user_key.verify(der, cic.signing_input, ec.ECDSA(hashes.SHA256()))
        hashlib.sha3_256(header).digest()
        hashlib.sha3_256(document).digest()

    return best_time(floor, number=500)


def run() -> list[Figure]:
    """Every core figure."""
    fx = Fixture()
    figures: list[Figure] = []
    backend = gq.backend()

    gq_jws = parse_compact(fx.gq_token)
    verify = best_time(lambda: gq.verify_jwt(gq_jws, fx.op_jwk), number=50)
    figures.append(
        ratio_figure(
            f"gq256_verify_vs_modexp_floor[{backend}]", verify, _modexp_floor_verify(fx), target=1.3
        )
    )
    figures.append(
        Figure(
            f"gq256_verify_ms[{backend}]",
            round(verify * 1e3, 3),
            "ms",
            target="< 1.5",
            met=verify < 1.5e-3,
        )
    )
    sign = best_time(lambda: gq.sign_jwt(fx.id_token, fx.op_jwk), number=30)
    figures.append(
        ratio_figure(
            f"gq256_sign_vs_modexp_floor[{backend}]", sign, _modexp_floor_sign(fx), target=1.3
        )
    )
    figures.append(Figure(f"gq256_sign_ms[{backend}]", round(sign * 1e3, 3), "ms"))

    floor = _pktoken_floor(fx)
    data = fx.rs256_pkt.to_json()
    warm = best_time(
        lambda: verify_pktoken(fx.rs256_pkt, fx.rs256_config, fx.keys, now=NOW), number=500
    )
    cold = best_time(
        lambda: verify_pktoken(PKToken.from_json(data), fx.rs256_config, fx.keys, now=NOW),
        number=500,
    )
    figures.append(ratio_figure("pktoken_verify_parsed_vs_primitives", warm, floor, target=1.25))
    figures.append(ratio_figure("pktoken_parse_and_verify_vs_primitives", cold, floor, target=1.25))
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
    sys.exit(0)
