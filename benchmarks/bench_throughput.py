"""Throughput: many bundles from many CI identities, keys fetched from a real JWKS endpoint.

The project's dev OpenID provider (:class:`opkey.sandbox.devidp.DevIdP`, a real HTTP server on
loopback) signs GitHub Actions–style ID tokens for ``identities`` workloads; each workload's
PK token (GQ256, as GitHub tokens always are) signs 100 artifacts. A verifier with a real
:class:`~opkey.jwks.JwksClient` (discovery, then JWKS, over HTTP) checks every bundle from its
bytes against a policy. Every HTTP request the client makes is counted.

Linearity: 10 identities × 100 bundles and 100 identities × 100 bundles have the same mix of
first-seen and already-verified PK tokens, so equal per-bundle times (best of two passes) mean
throughput grows linearly with the number of bundles. Memory: peak memory traced
(``tracemalloc``) while verifying, above what the input bundles already use, for 1,000 and
10,000 bundles from the same 100 identities: it does not grow with the number of bundles,
because every cache (verified PK tokens, parsed PK tokens, JWKS) has a fixed bound.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks import fixtures
from benchmarks.harness import Figure
from opkey import pktoken
from opkey.bundle import Bundle
from opkey.digest import Digest
from opkey.http import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, HttpResponse, RequestsTransport
from opkey.jwks.client import JwksClient
from opkey.jwks.sources import LiveKeys
from opkey.keys import PublicJWK
from opkey.sandbox.devidp import DevIdP

__all__ = ["run"]

PER_IDENTITY = 100


@dataclass
class CountingTransport:
    """The real HTTP transport, counting requests by URL."""

    inner: RequestsTransport = field(default_factory=RequestsTransport)
    requests: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> HttpResponse:
        """See :class:`opkey.http.Transport`."""
        self.requests.append(url)
        return self.inner.request(
            method, url, headers=headers, data=data, timeout=timeout, max_bytes=max_bytes
        )


def _bundles(
    idp: DevIdP, identities: int, per_identity: int = PER_IDENTITY
) -> list[tuple[bytes, Digest]]:
    key = idp.keyring.active
    jwk = PublicJWK.from_key(key.private_key.public_key(), alg="RS256", kid=key.kid)
    signers = [
        fixtures.make_signer(
            jwk, idp.keyring.sign, issuer=idp.issuer, use_gq=True, identity=identity
        )
        for identity in range(identities)
    ]
    result = []
    for n in range(per_identity):  # interleaved, as signatures from many CI runs arrive
        for identity, signer in enumerate(signers):
            digest = Digest.of_bytes(f"artifact {identity}/{n}".encode())
            result.append((signer.sign_digest(digest).to_json(), digest))
    return result


def _verify_all(idp: DevIdP, bundles: list[tuple[bytes, Digest]]) -> tuple[float, list[str]]:
    pktoken._parse_json_parts.cache_clear()
    transport = CountingTransport()
    client = JwksClient([idp.issuer], transport=transport)
    verifier = fixtures.verifier(use_gq=True, issuer=idp.issuer, keys=LiveKeys(client))
    policy = fixtures.policy(idp.issuer)
    start = time.perf_counter()
    for data, digest in bundles:
        verifier.verify_bundle(Bundle.from_json(data), digest, policy=policy)
    return time.perf_counter() - start, transport.requests


def _traced_peak(idp: DevIdP, bundles: list[tuple[bytes, Digest]]) -> int:
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        _verify_all(idp, bundles)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def run(context: dict[str, float] | None = None, *, identities: int = 100) -> list[Figure]:
    """The throughput figures."""
    del context
    from opkey import gq

    gq.set_backend("auto")
    with DevIdP() as idp:
        small = _bundles(idp, identities // 10)
        large = _bundles(idp, identities)
        _verify_all(idp, small[:50])  # warm up imports and the HTTP client
        small_time = min(_verify_all(idp, small)[0] for _ in range(2))
        large_time, fetches = min(_verify_all(idp, large) for _ in range(2))
        few = large[: len(small)]  # the same 100 identities, 10 bundles each
        small_peak = _traced_peak(idp, few)
        large_peak = _traced_peak(idp, large)
    per_small, per_large = small_time / len(small), large_time / len(large)
    growth = large_peak / max(small_peak, 1)
    http: dict[str, Any] = {"http_requests": len(fetches), "urls": sorted(set(fetches))}
    return [
        Figure(
            f"throughput_{len(large)}_bundles_{identities}_identities_s",
            round(large_time, 3),
            "s",
            sides={
                "bundles_per_s": round(len(large) / large_time),
                "jwks_fetches": sum(1 for url in fetches if "jwks" in url),
                **http,
            },
        ),
        Figure(
            "throughput_per_bundle_10k_vs_1k",
            round(per_large / per_small, 3),
            "ratio",
            target="<= 1.1 (linear)",
            met=per_large / per_small <= 1.1,
            sides={
                f"per_bundle_us_{len(small)}": round(per_small * 1e6, 1),
                f"per_bundle_us_{len(large)}": round(per_large * 1e6, 1),
            },
        ),
        Figure(
            "verification_peak_memory_kib",
            round(large_peak / 1024),
            "KiB",
            target="bounded (10k vs 1k <= 2x)",
            met=growth <= 2,
            sides={
                f"peak_kib_{len(few)}_bundles": round(small_peak / 1024),
                f"peak_kib_{len(large)}_bundles": round(large_peak / 1024),
            },
        ),
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
