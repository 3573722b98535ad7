"""OpenPubkey Go side by side: in-process PK token and signed-message verification.

The same PK tokens and OSMs (GitHub Actions–style ``aud`` commitment, ES256 ephemeral keys,
an RSA-2048 provider key pinned on both sides) are verified by opkey in this process and by
OpenPubkey Go v0.26.0 in our harness (``tests/interop/openpubkey``, ``opkgo bench``), which
times itself in a loop and reports ns/op. One operation is: parse the PK token's JSON
serialization, verify it (``VerifyPKToken`` with Go's provider settings; opkey's
``Verifier.verify_message``), and verify the OSM with its key.

Two comparisons, RS256 and GQ256:

* ``cold`` (the headline): a pool of distinct, never-seen tokens, each verified once; opkey's
  parse and verification caches are emptied before every pass, so both sides do all the work;
* ``repeated``: one token verified again and again; Go redoes everything each time (it keeps no
  cache), opkey answers from its verified-token cache (still re-checking the key and expiry).

Targets (DESIGN.md §6): opkey/Go ≤ 1.0 with GQ256 and ≤ 2.0 with RS256, on the cold figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.fixtures import DIGEST, Provider, make_signer, verifier
from benchmarks.harness import Figure
from opkey.artifact import artifact_statement
from opkey.pktoken import PKToken, _parse_json_parts
from opkey.policy.claims import UnsafeNoPolicy

ROOT = Path(__file__).resolve().parent.parent
POOL = {"RS256": 300, "GQ256": 150}
GO_ITERATIONS = {"RS256": 3000, "GQ256": 600}
TARGETS = {"RS256": 2.0, "GQ256": 1.0}


def _harness() -> Path | None:
    """The built harness binary, or ``None`` (Go missing or not built)."""
    sys.path.insert(0, str(ROOT))
    from tests.tools import build  # the standard-library build helper

    version = build.go_version()
    if version is None:
        return None
    for module in build.modules():
        if module.name == "openpubkey":
            build.build(module, version)
            path: Path = build.output_dir(module, version) / "opkgo"
            return path if path.is_file() else None
    return None


def _pool(provider: Provider, *, use_gq: bool, size: int) -> list[tuple[bytes, str]]:
    entries = []
    for identity in range(size):
        signer = make_signer(provider.jwk, provider.mint, use_gq=use_gq, identity=identity)
        entries.append((signer.pktoken.to_json(), signer.sign(artifact_statement(DIGEST))))
    return entries


def _go_ns_per_op(
    binary: Path, provider: Provider, entries: list[tuple[bytes, str]], *, use_gq: bool, n: int
) -> float:
    request: dict[str, Any] = {
        "issuer": provider.issuer,
        "style": "github" if use_gq else "aud",
        "jwks": provider.keys.to_dict(),
        "entries": [{"pktoken": text.decode(), "osm": osm} for text, osm in entries],
        "iterations": n,
    }
    result = subprocess.run(
        [str(binary), "bench"],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=600,
        check=True,
    )
    answer = json.loads(result.stdout)
    return float(answer["ns_per_op"])


def _opkey_cold(provider: Provider, entries: list[tuple[bytes, str]], *, use_gq: bool) -> float:
    """Seconds per operation over the pool, caches emptied before each pass; best of 3."""
    policy = UnsafeNoPolicy()
    best = float("inf")
    for _ in range(3):
        _parse_json_parts.cache_clear()
        fresh = verifier(provider, use_gq=use_gq)
        start = time.perf_counter()
        for text, osm in entries:
            fresh.verify_message(PKToken.from_json(text), osm, policy=policy)
        best = min(best, (time.perf_counter() - start) / len(entries))
    return best


def _opkey_repeated(provider: Provider, entry: tuple[bytes, str], *, use_gq: bool, n: int) -> float:
    policy = UnsafeNoPolicy()
    warm = verifier(provider, use_gq=use_gq)
    text, osm = entry
    warm.verify_message(PKToken.from_json(text), osm, policy=policy)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            warm.verify_message(PKToken.from_json(text), osm, policy=policy)
        best = min(best, (time.perf_counter() - start) / n)
    return best


def _figure(name: str, ours: float, go: float, target: float | None) -> Figure:
    value = ours / go
    return Figure(
        name=name,
        value=round(value, 3),
        unit="ratio",
        target=f"<= {target}" if target is not None else "",
        met=None if target is None else value <= target,
        sides={"opkey_us": round(ours * 1e6, 2), "openpubkey_go_us": round(go * 1e6, 2)},
    )


def run(context: dict[str, float] | None = None) -> list[Figure]:
    """The OpenPubkey Go comparison figures (skipped, saying why, without Go)."""
    context = context if context is not None else {}
    binary = _harness()
    if binary is None:
        note = "Go 1.26 is needed to build the OpenPubkey harness (python tests/tools/build.py)"
        return [Figure("openpubkey_go", 0.0, "skipped", sides={"note": note})]
    provider = Provider.create()
    figures = []
    for alg in ("RS256", "GQ256"):
        use_gq = alg == "GQ256"
        entries = _pool(provider, use_gq=use_gq, size=POOL[alg])
        iterations = GO_ITERATIONS[alg]
        go_cold = _go_ns_per_op(binary, provider, entries, use_gq=use_gq, n=iterations) / 1e9
        go_repeated = (
            _go_ns_per_op(binary, provider, entries[:1], use_gq=use_gq, n=iterations) / 1e9
        )
        ours_cold = _opkey_cold(provider, entries, use_gq=use_gq)
        ours_repeated = _opkey_repeated(provider, entries[0], use_gq=use_gq, n=iterations)
        context[f"openpubkey_go_{alg.lower()}_cold_us"] = go_cold * 1e6
        figures.append(
            _figure(f"openpubkey_go_{alg.lower()}_cold", ours_cold, go_cold, TARGETS[alg])
        )
        figures.append(
            _figure(f"openpubkey_go_{alg.lower()}_repeated", ours_repeated, go_repeated, None)
        )
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
