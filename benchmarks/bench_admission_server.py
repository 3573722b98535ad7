"""The admission gate as a server: latency under an open-loop load, saturated rate, memory.

Runs standalone (``python -m benchmarks.bench_admission_server``) or through
``benchmarks/run.py --only admission_server`` (also included by ``--registry``). It needs the
CNCF distribution registry (Debian ``docker-registry``) and the ``admission`` extra.

Set-up, all on loopback: a registry with storage in a temporary directory; images pushed and
each signed with a PK token of its own (a fresh ephemeral key and GQ256-signed ID token per
image, as every CI run makes one); ``opkey admission serve --policy`` as a separate process
(as a Deployment runs it) with the provider's keys pinned (``--jwks --offline``), a serving
certificate of a throwaway CA, and JSON logs at ``info`` written to a file.

The load generator is ours (asyncio, TLS, HTTP/1.1 keep-alive), in this process: 16
connections, **open loop** at 200 admissions per second (each request has a scheduled start;
its latency counts from that moment, so a slow answer delays the requests queued behind it and
is counted against them too, with no coordinated omission); its own cycle collector is off while
it measures, so that its pauses are not counted as the gate's. Bodies are the AdmissionReview a
real API server sent for a Pod (``tests/data/admission/captured/pod-create.json``), with the
image and ``uid`` replaced.

* **first-seen**: one request in ten (20/s) names an image the gate has never seen (pinned by
  digest), amid cached ones: the gate reads its manifest and signature layer from the registry
  and verifies the PK token (GQ256), the signed message and the policy. (Every request naming a
  new image would ask for 200 verifications a second, more than two shared cores serve: the
  **verifications/s** figure measures that capacity, never-seen images back to back);
* **cached**: images verified before, again: the verdict cache answers; the same requests are
  sent at the same rate to a bare aiohttp HTTPS server that only ``json.loads`` the body and
  answers allowed (the floor: what any webhook on this stack pays), for a ratio;
* **saturated**: 16 connections, closed loop (each sends again as soon as answered), cached
  images: admissions per second the gate serves;
* **memory**: the verdict cache in this process with 100,000 distinct images' verdicts, and again
  after 200,000 (the bound holds it at 100,000); and the gate process's resident memory after
  the runs.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import fixtures
from benchmarks.harness import Figure, ratio_figure

__all__ = ["run"]

ROOT = Path(__file__).resolve().parent.parent
CAPTURED = ROOT / "tests" / "data" / "admission" / "captured" / "pod-create.json"
CONNECTIONS = 16
RATE = 200.0
#: Requests of each open-loop run (10 s at 200/s).
REQUESTS = 2000
#: In the mixed run, one request in this many names an image never seen before (20/s).
FRESH_EVERY = 10
#: Images verified first, then admitted again and again from the cache.
KNOWN = 50
#: Never-seen images admitted back to back to measure how many verifications a second fit.
CAPACITY = 240
SATURATED_SECONDS = 5.0
CACHE_IMAGES = 100_000
TARGETS = {"cached_p99_ms": 5.0, "first_seen_p99_ms": 50.0, "saturated_per_s": 500.0}


# -- the load generator --------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What one run measured: latency of each request sent (seconds, by request number; NaN
    for requests not sent), elapsed seconds, and how many were allowed."""

    latencies: tuple[float, ...]
    elapsed: float
    allowed: int

    def sent(self, numbers: Sequence[int] | None = None) -> list[float]:
        """The latencies of the requests ``numbers`` (default: all sent), sorted."""
        chosen = self.latencies if numbers is None else [self.latencies[n] for n in numbers]
        return sorted(x for x in chosen if x == x)

    @staticmethod
    def quantile(values: Sequence[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    @property
    def count(self) -> int:
        return len(self.sent())

    @property
    def rate(self) -> float:
        return self.count / self.elapsed

    @property
    def denied(self) -> int:
        return self.count - self.allowed


def _request(body: bytes) -> bytes:
    head = (
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bool:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the gate answered {head.splitlines()[0]!r}: {body[:200]!r}")
    return b'"allowed":true' in body


async def _load(
    port: int,
    context: ssl.SSLContext,
    requests: Sequence[bytes],
    *,
    rate: float | None = None,
    seconds: float | None = None,
) -> Load:
    """:func:`_measured_load` with this process's cycle collector off: the instrument's own
    collection pauses would count as the gate's latency (a run allocates little that lives)."""
    gc.collect()
    gc.disable()
    try:
        return await _measured_load(port, context, requests, rate=rate, seconds=seconds)
    finally:
        gc.enable()


async def _measured_load(
    port: int,
    context: ssl.SSLContext,
    requests: Sequence[bytes],
    *,
    rate: float | None = None,
    seconds: float | None = None,
) -> Load:
    """Send ``requests`` over 16 connections: open loop at ``rate``; else closed loop (each
    connection sends its next request when answered), for ``seconds`` cycling through
    ``requests``, or through ``requests`` once when ``seconds`` is ``None``."""
    connections = [
        await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
        for _ in range(CONNECTIONS)
    ]
    latencies = [float("nan")] * (len(requests) if seconds is None else 0)
    cycled: list[float] = []
    allowed = 0
    start = time.perf_counter() + 0.2
    next_number = 0

    async def open_loop(index: int) -> None:
        nonlocal allowed
        reader, writer = connections[index]
        assert rate is not None
        for number in range(index, len(requests), CONNECTIONS):
            scheduled = start + number / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            ok = await _exchange(reader, writer, requests[number])
            allowed += ok  # after the await: the sum is read and written at once
            latencies[number] = time.perf_counter() - scheduled

    async def closed_loop(index: int) -> None:
        nonlocal allowed, next_number
        reader, writer = connections[index]
        stop = start + (seconds or 0.0)
        while True:
            number = next_number
            if seconds is None and number >= len(requests):
                return
            if seconds is not None and time.perf_counter() >= stop:
                return
            next_number += 1
            sent = time.perf_counter()
            ok = await _exchange(reader, writer, requests[number % len(requests)])
            allowed += ok
            if seconds is None:
                latencies[number] = time.perf_counter() - sent
            else:
                cycled.append(time.perf_counter() - sent)

    worker = open_loop if rate is not None else closed_loop
    await asyncio.sleep(max(start - time.perf_counter(), 0))
    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    elapsed = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
    return Load(tuple(latencies if seconds is None else cycled), elapsed, allowed)


# -- the floor: the same stack answering without judging -----------------------------------------


def _floor_server(port: int, cert: str, key: str) -> None:
    """aiohttp over TLS answering every POST with ``allowed`` after ``json.loads`` of the body:
    what any webhook on this stack pays before judging anything."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        uid = json.loads(await request.read())["request"]["uid"]
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
        body = json.dumps({**review, "response": {"uid": uid, "allowed": True}}).encode()
        return web.Response(body=body, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/validate", answer)
    app.router.add_get("/readyz", ready)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, access_log=None,
                print=None)  # fmt: skip


def _floor(root: Path, requests: Sequence[bytes]) -> Load:
    from tests.admission.kube import free_port

    cert, key, ca = _certificates(root)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_admission_server", "--floor-server", str(port),
         str(cert), str(key)],
        stdin=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(ca))
        _wait_ready(port, context, process)
        asyncio.run(_load(port, context, requests[:200], seconds=0.5))
        return asyncio.run(_load(port, context, requests, rate=RATE))
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- set-up --------------------------------------------------------------------------------------


def _review_template() -> dict[str, object]:
    review = json.loads(CAPTURED.read_bytes())
    spec = review["request"]["object"]["spec"]
    spec.pop("initContainers", None)
    return review  # type: ignore[no-any-return]


def _http_request(template: dict[str, object], image: str) -> bytes:
    request = dict(template["request"])  # type: ignore[call-overload]
    obj = json.loads(json.dumps(request["object"]))
    obj["spec"]["containers"][0]["image"] = image
    request["object"] = obj
    request["uid"] = str(uuid.uuid4())
    return _request(json.dumps({**template, "request": request}).encode())


def _certificates(root: Path) -> tuple[Path, Path, Path]:
    from tests.admission.kube import ClusterPKI

    if not (root / "pki" / "ca.pem").exists():
        ClusterPKI(root / "pki")
    pki = root / "pki"
    return pki / "webhook.pem", pki / "webhook-key.pem", pki / "ca.pem"


def _policy(root: Path, provider: fixtures.Provider) -> tuple[Path, Path]:
    jwks = root / "jwks.json"
    jwks.write_text(json.dumps(provider.keys.to_dict()))
    policy = root / "policy.toml"
    policy.write_text(
        f"""version = 1

[[issuers]]
issuer = "{provider.issuer}"
commitment = "aud"
require_gq = true
expiry = "never"

[[signers]]
name = "release"
all_of = [
  {{ issuer = "{provider.issuer}" }},
  {{ claim = "repository", glob = "octo-org/*" }},
  {{ claim = "ref", equals = "refs/heads/main" }},
]
"""
    )
    return policy, jwks


def _signed_images(registry_host: str, provider: fixtures.Provider, count: int) -> list[str]:
    """Push ``count`` images and sign each with a PK token of its own (8 threads)."""
    from concurrent.futures import ThreadPoolExecutor

    from opkey.images import sign_image
    from opkey.registry import DockerCredentialStore, ImageReference, RegistryClient
    from opkey.registry.retry import RetryPolicy
    from opkey.sandbox.registry import seed_image

    client = RegistryClient(
        docker_config=DockerCredentialStore(),
        retry=RetryPolicy(max_attempts=8, base_delay=0.02, max_delay=0.5, deadline=60),
    )

    def one(n: int) -> str:
        ref = ImageReference.parse(f"{registry_host}/octo-org/app-{n % 50}:build-{n}")
        pushed = seed_image(client, ref)
        signer = fixtures.make_signer(provider.jwk, provider.mint, use_gq=True, identity=n % 50)
        sign_image(client, pushed, signer)
        return str(pushed)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _wait_ready(port: int, context: ssl.SSLContext, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gate exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(
                f"https://127.0.0.1:{port}/readyz", context=context, timeout=2
            ) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the gate was not ready within 30 s")


def _cache_memory() -> tuple[float, float, int]:
    """KiB the verdict cache holds with 100,000 distinct images, and after 200,000 inserts."""
    from opkey.admission.cache import CacheKey, VerdictCache
    from opkey.digest import Digest

    policy = "f" * 64
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = VerdictCache(max_entries=CACHE_IMAGES)
    for n in range(CACHE_IMAGES):
        repository = f"ghcr.io/octo-org/service-{n % 5000:04d}"
        digest = "sha256:" + base64.b16encode(os.urandom(32)).decode().lower()
        cache.passed(CacheKey(repository, Digest(digest), policy))
    full = tracemalloc.get_traced_memory()[0] - before
    for n in range(CACHE_IMAGES):
        digest = "sha256:" + base64.b16encode(os.urandom(32)).decode().lower()
        cache.passed(CacheKey(f"ghcr.io/octo-org/more-{n}", Digest(digest), policy))
    after = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return full / 1024, after / 1024, len(cache)


# -- the run -------------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _latency_figure(name: str, values: Sequence[float], target: float, **sides: object) -> Figure:
    p99 = Load.quantile(values, 0.99) * 1000
    return Figure(
        name=name,
        value=round(p99, 3),
        unit="ms p99",
        target=f"<= {target:g}",
        met=p99 <= target,
        sides={
            "p50_ms": _ms(Load.quantile(values, 0.5)),
            "p99_ms": round(p99, 3),
            "max_ms": _ms(values[-1]),
            "requests": len(values),
            **sides,
        },
    )


@dataclass(frozen=True)
class Runs:
    """The loads of one benchmark run."""

    cached: Load
    mixed: Load
    fresh_numbers: tuple[int, ...]
    saturated: Load
    capacity: Load
    rss_kib: int
    floor: Load


def _gate(root: Path, registry_host: str, provider: fixtures.Provider, count: int) -> Runs:
    """Sign ``count`` images, start the gate, run every load against it, stop it."""
    from tests.admission.kube import free_port

    print(f"  signing {count} images…", file=sys.stderr, flush=True)
    images = _signed_images(registry_host, provider, count)
    cert, key, ca = _certificates(root)
    policy, jwks = _policy(root, provider)
    port = free_port()
    with (root / "gate.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "opkey", "admission", "serve", "--policy", str(policy),
             "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key),
             "--jwks", str(jwks), "--offline"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(ca))
        _wait_ready(port, context, process)
        template = _review_template()
        known, fresh = images[:KNOWN], iter(images[KNOWN:])
        print("  loads…", file=sys.stderr, flush=True)
        warm = [_http_request(template, image) for image in known]
        asyncio.run(_load(port, context, warm))  # verified once: cached from now on
        again = [_http_request(template, known[n % KNOWN]) for n in range(REQUESTS)]
        cached = asyncio.run(_load(port, context, again, rate=RATE))
        floor = _floor(root, again)
        mixed_requests, fresh_numbers = [], []
        for n in range(REQUESTS):
            if n % FRESH_EVERY == FRESH_EVERY // 2:
                fresh_numbers.append(n)
                mixed_requests.append(_http_request(template, next(fresh)))
            else:
                mixed_requests.append(_http_request(template, known[n % KNOWN]))
        mixed = asyncio.run(_load(port, context, mixed_requests, rate=RATE))
        saturated = asyncio.run(_load(port, context, again, seconds=SATURATED_SECONDS))
        rest = [_http_request(template, image) for image in fresh]
        capacity = asyncio.run(_load(port, context, rest))
        rss = _rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)
        refused = [
            line for line in (root / "gate.log").read_text().splitlines() if '"denied"' in line
        ]
        if refused:
            print(f"  {len(refused)} refused, e.g. {refused[0][:600]}", file=sys.stderr)
    return Runs(cached, mixed, tuple(fresh_numbers), saturated, capacity, rss, floor)


def measure() -> list[Figure]:
    """Start everything, run the loads, stop everything; the figures."""
    from opkey.sandbox.registry import LocalRegistry, find_registry_binary

    binary = find_registry_binary()
    if binary is None:
        return [Figure("admission server", 0.0, "skipped", sides={"note": "no docker-registry"})]
    count = KNOWN + REQUESTS // FRESH_EVERY + CAPACITY
    with tempfile.TemporaryDirectory(prefix="opkey-bench-gate-") as tmp:
        root = Path(tmp)
        registry = LocalRegistry(root / "registry", binary=binary)
        registry.start()
        try:
            runs = _gate(root, registry.host, fixtures.Provider.create(), count)
        finally:
            registry.stop()
    loads = (runs.cached, runs.mixed, runs.saturated, runs.capacity)
    if any(load.denied for load in loads):
        counts = [(load.count, load.allowed) for load in loads]
        raise RuntimeError(f"signed images were refused (sent, allowed: {counts})")
    fresh = set(runs.fresh_numbers)
    cached_in_mix = runs.mixed.sent([n for n in range(REQUESTS) if n not in fresh])
    cache_kib, cache_after_kib, entries = _cache_memory()
    open_loop = {"offered_per_s": RATE, "connections": CONNECTIONS}
    return [
        _latency_figure(
            "admission over HTTPS, cached verdict, 200/s open loop (16 connections)",
            runs.cached.sent(),
            TARGETS["cached_p99_ms"],
            achieved_per_s=round(runs.cached.rate, 1),
            floor_p50_ms=_ms(Load.quantile(runs.floor.sent(), 0.5)),
            floor_p99_ms=_ms(Load.quantile(runs.floor.sent(), 0.99)),
            **open_loop,
        ),
        ratio_figure(
            "admission over HTTPS, cached verdict p50 vs bare aiohttp JSON echo, 200/s",
            Load.quantile(runs.cached.sent(), 0.5),
            Load.quantile(runs.floor.sent(), 0.5),
            target=2.0,
            ours_label="gate_p50",
            floor_label="echo_p50",
        ),
        _latency_figure(
            "admission over HTTPS, first-seen image (loopback registry), in 200/s open loop",
            runs.mixed.sent(runs.fresh_numbers),
            TARGETS["first_seen_p99_ms"],
            first_seen_per_s=RATE / FRESH_EVERY,
            cached_alongside_p50_ms=_ms(Load.quantile(cached_in_mix, 0.5)),
            cached_alongside_p99_ms=_ms(Load.quantile(cached_in_mix, 0.99)),
            **open_loop,
        ),
        Figure(
            name="admission over HTTPS, cached verdicts, saturated (16 connections, closed loop)",
            value=round(runs.saturated.rate, 1),
            unit="per s",
            target=f">= {TARGETS['saturated_per_s']:g}",
            met=runs.saturated.rate >= TARGETS["saturated_per_s"],
            sides={
                "p50_ms": _ms(Load.quantile(runs.saturated.sent(), 0.5)),
                "p99_ms": _ms(Load.quantile(runs.saturated.sent(), 0.99)),
                "requests": runs.saturated.count,
            },
        ),
        Figure(
            name="admission over HTTPS, first-seen images back to back (verifications/s)",
            value=round(runs.capacity.rate, 1),
            unit="per s",
            sides={
                "p50_ms": _ms(Load.quantile(runs.capacity.sent(), 0.5)),
                "p99_ms": _ms(Load.quantile(runs.capacity.sent(), 0.99)),
                "requests": runs.capacity.count,
                "note": "each image has a PK token of its own (GQ256), read from the registry",
            },
        ),
        Figure(
            name="verdict cache memory, 100,000 distinct images (bounded at 100,000)",
            value=round(cache_kib / 1024, 1),
            unit="MiB",
            target="bounded",
            met=entries == CACHE_IMAGES and cache_after_kib <= cache_kib * 1.25,
            sides={
                "bytes_per_entry": round(cache_kib * 1024 / CACHE_IMAGES),
                "after_200000_inserts_mib": round(cache_after_kib / 1024, 1),
                "entries_after": entries,
                "gate_rss_after_runs_mib": round(runs.rss_kib / 1024, 1),
            },
        ),
    ]


def run(context: dict[str, float] | None = None) -> list[Figure]:
    """The figures of this section (see the module doc)."""
    return measure()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--floor-server"]:
        _floor_server(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        sys.exit(0)
    for figure in measure():
        print(json.dumps(figure.to_dict()))
