"""Core benchmarks: GQ256 against its modular-exponentiation floor, and verification from the
serialized input to the verified identity against the summed cost of its primitives.

Verification is measured the way a deploy gate meets it, from bytes: a bundle document
(``Bundle.from_json`` + ``Verifier.verify_bundle``) or an image signature layer's annotations
(the per-layer check of ``opkey.images.verify_image``: simple-signing payload, PK token,
detached OSM, cosign signature). *Cold* passes use a pool of distinct PK tokens (fresh
ephemeral key and ID token each) with a new verifier and empty parse caches, so nothing is
remembered; *cached* passes verify the same pool again with everything remembered, as when one
CI run signed many artifacts.

The floor of a cold verification is the cryptography it cannot skip, timed with pyca/
cryptography (keys already loaded) and hashlib on the same inputs: the OP signature (RS256
verify, or the GQ256 exponentiations with the fastest big-integer backend plus its SHA-256 and
SHAKE256), the CIC and message ES256 verifies (and for images the cosign ES256 verify), the
SHA3-256 commitment and PK token hash, and the SHA-256 key thumbprint the identity reports. A
cached verification still checks the message (and cosign) signature: that is its floor.

Run alone with ``python -m benchmarks.bench_core`` or through ``benchmarks/run.py``.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from benchmarks import fixtures
from benchmarks.harness import Figure, best_time, ratio_figure
from opkey import gq, pktoken
from opkey.bundle import Bundle
from opkey.cosign import COSIGN_SIGNATURE, OPKEY_OSM
from opkey.digest import Digest
from opkey.jose import CompactJWS, b64url_encode, go_json, parse_compact
from opkey.registry.signatures import SignatureLayer
from opkey.verification.evidence import CosignLayerEvidence

__all__ = ["run"]

T = TypeVar("T")

_SHA256 = hashes.SHA256()
_ECDSA = ec.ECDSA(_SHA256)
_PKCS1 = padding.PKCS1v15()


def _fastest_backend() -> str:
    try:
        gq.set_backend("gmpy2")
    except RuntimeError:
        gq.set_backend("python")
    return gq.backend()


# -- GQ256 against the modexp floor -----------------------------------------------------------


def _gq_parts(
    token: str, provider: fixtures.Provider
) -> tuple[gq.GQParams, list[int], list[int], int]:
    jws = parse_compact(token)
    params = gq.GQParams.from_key(provider.private_key.public_key())
    t, vb, nb = params.t, params.v_bytes, params.n_bytes
    sig = jws.signature
    rs = [int.from_bytes(sig[i * vb : (i + 1) * vb], "big") for i in range(t)]
    ss = [int.from_bytes(sig[t * vb + i * nb : t * vb + (i + 1) * nb], "big") for i in range(t)]
    g = gq.gq_identity(gq.original_header(jws).signing_input, nb)
    return params, rs, ss, g


def _modexp_floor_verify(token: str, provider: fixtures.Provider) -> Callable[[], None]:
    """The exponentiations of one GQ256 verify, each done separately with the backend."""
    params, rs, ss, g_int = _gq_parts(token, provider)
    backend = gq._current()
    n = backend.mpz(params.n)
    s_native = [backend.mpz(s) for s in ss]
    g = backend.mpz(g_int)
    powmod, v = backend.powmod, params.v

    def floor() -> None:
        for s_i, r_i in zip(s_native, rs, strict=True):
            powmod(s_i, v, n)
            powmod(g, r_i, n)

    return floor


def _modexp_floor_sign(id_token: str, provider: fixtures.Provider) -> Callable[[], None]:
    params = gq.GQParams.from_key(provider.private_key.public_key())
    backend = gq._current()
    n = backend.mpz(params.n)
    q = backend.mpz(pow(int.from_bytes(parse_compact(id_token).signature, "big"), -1, params.n))
    rs = [backend.mpz(params.n - 12345 - i) for i in range(params.t)]
    exps = [40000 + 1013 * i for i in range(params.t)]
    powmod, v = backend.powmod, params.v

    def floor() -> None:
        for r_i, e_i in zip(rs, exps, strict=True):
            powmod(r_i, v, n)
            powmod(q, e_i, n)

    return floor


def _gq_figures(provider: fixtures.Provider) -> list[Figure]:
    backend = _fastest_backend()
    signer = fixtures.make_signer(provider.jwk, provider.mint, use_gq=False)
    id_token = signer.pktoken.op_token()
    gq_token = gq.sign_jwt(id_token, provider.jwk)
    gq_jws = parse_compact(gq_token)
    verify = best_time(lambda: gq.verify_jwt(gq_jws, provider.jwk), number=50)
    sign = best_time(lambda: gq.sign_jwt(id_token, provider.jwk), number=30)
    figures = [
        ratio_figure(
            f"gq256_verify_vs_modexp_floor[{backend}]",
            verify,
            best_time(_modexp_floor_verify(gq_token, provider), number=50),
            target=1.3,
        ),
        Figure(
            f"gq256_verify_ms[{backend}]",
            round(verify * 1e3, 3),
            "ms",
            target="< 1.5",
            met=verify < 1.5e-3,
        ),
        ratio_figure(
            f"gq256_sign_vs_modexp_floor[{backend}]",
            sign,
            best_time(_modexp_floor_sign(id_token, provider), number=30),
            target=1.3,
        ),
        Figure(f"gq256_sign_ms[{backend}]", round(sign * 1e3, 3), "ms"),
    ]
    gq.set_backend("python")
    python_verify = best_time(lambda: gq.verify_jwt(gq_jws, provider.jwk), number=5, repeat=3)
    figures.append(
        Figure(
            "gq256_verify_ms[python]",
            round(python_verify * 1e3, 3),
            "ms",
            sides={"note": "used for the first operations of a process (auto backend)"},
        )
    )
    _fastest_backend()
    return figures


# -- verification from bytes against its primitives ------------------------------------------


@dataclass
class _Primitives:
    """The inputs of the primitive operations one verification performs."""

    op: CompactJWS
    upk: ec.EllipticCurvePublicKey
    cic_input: bytes
    cic_der: bytes
    osm_input: bytes
    osm_der: bytes
    cic_header: bytes
    pktoken_json: bytes
    thumbprint_input: bytes
    cosign_payload: bytes = b""
    cosign_der: bytes = b""


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _primitives(signer: Any, osm: str, layer: SignatureLayer | None) -> _Primitives:
    pkt = signer.pktoken
    cic = pkt.cic.jws(pkt.payload_b64)
    osm_jws = parse_compact(osm)
    public = signer.signing_key.private_key.public_key()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    members = pkt.cic_claims.upk.members
    prims = _Primitives(
        op=pkt.op.jws(pkt.payload_b64),
        upk=ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point),
        cic_input=cic.signing_input,
        cic_der=_der(cic.signature),
        osm_input=osm_jws.signing_input,
        osm_der=_der(osm_jws.signature),
        cic_header=go_json(pkt.cic_claims.header()),
        pktoken_json=pkt.to_json(),
        thumbprint_input=go_json({k: members[k] for k in ("crv", "kty", "x", "y")}),
    )
    if layer is not None:
        prims.cosign_payload = layer.payload
        prims.cosign_der = base64.b64decode(layer.annotations[COSIGN_SIGNATURE])
    return prims


class _Floor:
    """The primitive operations of one verification (see the module doc), on its inputs."""

    def __init__(self, provider: fixtures.Provider, *, use_gq: bool, cached: bool) -> None:
        op_key = provider.private_key.public_key()
        assert isinstance(op_key, rsa.RSAPublicKey)
        self.op_key, self.use_gq, self.cached = op_key, use_gq, cached
        self.backend = gq._current()
        self.params = gq.GQParams.from_key(op_key)
        self.n = self.backend.mpz(self.params.n)
        self.gq_inputs: dict[int, tuple[bytes, list[Any], list[int]]] = {}

    def prepare(self, items: Sequence[_Primitives]) -> _Floor:
        """Split every GQ256 signature into its numbers (outside the timing)."""
        t, vb, nb = self.params.t, self.params.v_bytes, self.params.n_bytes
        for p in items if self.use_gq else ():
            sig = p.op.signature
            rs = [int.from_bytes(sig[i * vb : (i + 1) * vb], "big") for i in range(t)]
            ss = [
                self.backend.mpz(
                    int.from_bytes(sig[t * vb + i * nb : t * vb + (i + 1) * nb], "big")
                )
                for i in range(t)
            ]
            self.gq_inputs[id(p)] = (gq.original_header(p.op).signing_input, ss, rs)
        return self

    def _op(self, p: _Primitives) -> None:
        if not self.use_gq:
            self.op_key.verify(p.op.signature, p.op.signing_input, _PKCS1, _SHA256)
            return
        original, ss, rs = self.gq_inputs[id(p)]
        powmod, n, params = self.backend.powmod, self.n, self.params
        g = self.backend.mpz(gq.gq_identity(original, params.n_bytes))  # includes the SHA-256
        w = b"".join(
            int(powmod(s_i, params.v, n) * powmod(g, r_i, n) % n).to_bytes(params.n_bytes, "big")
            for s_i, r_i in zip(ss, rs, strict=True)
        )
        hashlib.shake_256(w + p.op.signing_input).digest(params.t * params.v_bytes)

    def __call__(self, p: _Primitives) -> None:
        if not self.cached:
            self._op(p)
            p.upk.verify(p.cic_der, p.cic_input, _ECDSA)
            hashlib.sha3_256(p.cic_header).digest()
            hashlib.sha3_256(p.pktoken_json).digest()
            hashlib.sha256(p.thumbprint_input).digest()
        p.upk.verify(p.osm_der, p.osm_input, _ECDSA)
        if p.cosign_der:
            p.upk.verify(p.cosign_der, p.cosign_payload, _ECDSA)


def _per_item(
    items: Sequence[T], prepare: Callable[[], Callable[[T], object]], *, repeat: int = 7
) -> float:
    """Seconds per item: the best of ``repeat`` passes over ``items``, each pass set up by
    ``prepare`` (outside the timing) which returns the function to apply to every item."""
    best = float("inf")
    for _ in range(repeat):
        apply = prepare()
        start = time.perf_counter()
        for item in items:
            apply(item)
        best = min(best, (time.perf_counter() - start) / len(items))
    return best


def _clear_parse_caches() -> None:
    pktoken._parse_json_parts.cache_clear()
    pktoken._parse_compact_text.cache_clear()


@dataclass
class PipelineTimes:
    """Seconds per verification, kept for the peer comparison."""

    cold: float
    cached: float


def _pipeline(
    provider: fixtures.Provider, *, use_gq: bool, image: bool, pool: int, figures: list[Figure]
) -> PipelineTimes:
    kind = ("image" if image else "bundle") + ("_gq256" if use_gq else "_rs256")
    signers = [
        fixtures.make_signer(provider.jwk, provider.mint, use_gq=use_gq) for _ in range(pool)
    ]
    policy = fixtures.policy()
    prims: list[_Primitives] = []
    if image:
        layers = [fixtures.image_layer(s) for s in signers]
        for signer, layer in zip(signers, layers, strict=True):
            header, _, signature = layer.annotations[OPKEY_OSM].split(".")
            osm = f"{header}.{b64url_encode(layer.payload)}.{signature}"
            prims.append(_primitives(signer, osm, layer))

        image_digest = Digest(fixtures.IMAGE_DIGEST)

        def verify_with(verifier: Any) -> Callable[[Any], object]:
            def verify(layer: SignatureLayer) -> object:
                evidence = CosignLayerEvidence(layer.payload, layer.annotations)
                identity = verifier.check(evidence, image_digest)
                policy.check(identity.claims)
                return identity

            return verify

        items: Sequence[Any] = layers
    else:
        documents = [s.sign_digest(fixtures.DIGEST).to_json() for s in signers]
        for signer, document in zip(signers, documents, strict=True):
            prims.append(_primitives(signer, Bundle.from_json(document).signature, None))

        def verify_with(verifier: Any) -> Callable[[Any], object]:
            return lambda data: verifier.verify_bundle(
                Bundle.from_json(data), fixtures.DIGEST, policy=policy
            )

        items = documents

    def cold() -> Callable[[Any], object]:
        _clear_parse_caches()
        return verify_with(fixtures.verifier(provider, use_gq=use_gq))

    warm_verifier = fixtures.verifier(provider, use_gq=use_gq)
    for item in items:  # check every item verifies before timing anything
        verify_with(warm_verifier)(item)
    cold_time = _per_item(items, cold)
    cached_time = _per_item(items, lambda: verify_with(warm_verifier))
    floors = {}
    for cached in (False, True):
        floor = _Floor(provider, use_gq=use_gq, cached=cached).prepare(prims)
        floors[cached] = _per_item(prims, lambda: floor)  # noqa: B023 - used at once
    label = "RS256 OP" if not use_gq else "GQ256 OP"
    figures += [
        Figure(
            f"{kind}_cold_per_s",
            round(1 / cold_time),
            "verifications/s",
            sides={"per_verification_us": round(cold_time * 1e6, 1), "op": label},
        ),
        ratio_figure(f"{kind}_cold_vs_primitives", cold_time, floors[False], target=1.25),
        Figure(
            f"{kind}_cached_per_s",
            round(1 / cached_time),
            "verifications/s",
            sides={"per_verification_us": round(cached_time * 1e6, 1)},
        ),
        ratio_figure(f"{kind}_cached_vs_primitives", cached_time, floors[True], target=1.25),
    ]
    return PipelineTimes(cold_time, cached_time)


def _primitive_figures(provider: fixtures.Provider) -> list[Figure]:
    """The primitives themselves, and what loading a fresh ephemeral key adds."""
    user = ec.generate_private_key(ec.SECP256R1())
    data = b"x" * 900
    der = user.sign(data, _ECDSA)
    public = user.public_key()
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    op_key = provider.private_key.public_key()
    rs_sig = provider.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    es256 = best_time(lambda: public.verify(der, data, _ECDSA), number=300)
    rs256 = best_time(
        lambda: op_key.verify(rs_sig, data, padding.PKCS1v15(), hashes.SHA256()), number=300
    )
    fresh = best_time(
        lambda: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point).verify(
            der, data, _ECDSA
        ),
        number=300,
    )
    return [
        Figure("es256_verify_us", round(es256 * 1e6, 1), "us"),
        Figure("rs256_verify_us", round(rs256 * 1e6, 1), "us"),
        Figure(
            "p256_fresh_key_overhead_us",
            round((fresh - es256) * 1e6, 1),
            "us",
            sides={"note": "loading an ephemeral P-256 key and its first verify, minus a verify"},
        ),
    ]


def run(context: dict[str, float] | None = None, *, pool: int = 200) -> list[Figure]:
    """Every core figure; records per-verification seconds in ``context`` for the peer."""
    context = context if context is not None else {}
    provider = fixtures.Provider.create()
    figures = _gq_figures(provider)
    figures += _primitive_figures(provider)
    for image in (False, True):
        for use_gq in (False, True):
            times = _pipeline(provider, use_gq=use_gq, image=image, pool=pool, figures=figures)
            key = ("image" if image else "bundle") + ("_gq256" if use_gq else "_rs256")
            context[f"{key}_cold"] = times.cold
            context[f"{key}_cached"] = times.cached
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
    sys.exit(0)
