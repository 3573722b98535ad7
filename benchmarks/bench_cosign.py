"""``cosign verify --key`` against ``opkey verify IMAGE``: both as command-line processes, on
the same image in the same loopback registry.

The image (one layer, in a CNCF distribution registry started here, storage in a temporary
directory) carries one opkey signature: a GQ256 PK token from the benchmark provider
(``benchmarks/fixtures.py``), an ES256 ephemeral key. Each side is configured so that it talks
to nothing but the registry:

* opkey: ``opkey verify IMAGE@DIGEST --issuer … --jwks FILE --offline --at T`` with an identity
  policy: the provider's keys are pinned, no JWKS or discovery fetch. It checks the GQ256 PK
  token, the commitment, the OpenPubkey signed message, the cosign signature and the policy;
* cosign: ``cosign verify --key EPHEMERAL.pem --insecure-ignore-tlog=true IMAGE@DIGEST``, the
  ephemeral key exported by ``opkey inspect IMAGE --public-key``; v3.1.3 as it is (it asks for
  OCI 1.1 referrers first, then reads the ``.sig`` tag), v2.6.5 with an empty
  ``--trusted-root`` (else it tries Sigstore's TUF repository first). cosign checks the
  signature under that key and the payload's digest: less than opkey does (no identity). Its
  home and caches are fresh, and its outside traffic is sent to a counting loopback socket that
  must see nothing (``tests/cosign.py``'s tripwire).

The commands run interleaved (opkey, cosign v3, cosign v2, ``python -c pass``, repeatedly, so
that load on the machine hits every side alike), two warm-up rounds first, then ``runs``
rounds; each figure is a median wall time. The CPU time of each (user + system, from
``getrusage`` of the children) is reported beside it, and so is where opkey's time goes: the
interpreter (``python -c pass``), the imports (``python -X importtime``, by top-level package)
and, in-process and warm, the verification itself.

Run alone: ``python benchmarks/bench_cosign.py``; in the table: ``benchmarks/run.py --only
cosign``. Needs docker-registry and cosign built (``python tests/tools/build.py cosign-v2
cosign-v3``); without them the figure says it was skipped and why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import fixtures
from benchmarks.bench_startup import child_environment, opkey_command
from benchmarks.harness import Figure

__all__ = ["cosign_binary", "run"]

ROOT = Path(__file__).resolve().parent.parent
EMPTY_TRUSTED_ROOT = '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}'


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "opkey_tools_build", ROOT / "tests/tools/build.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def cosign_binary(module: str) -> Path | None:
    """The cosign that ``tests/tools/<module>`` builds, or ``None`` when it is not built."""
    build = _build_module()
    version = build.go_version()
    if version is None:
        return None
    found = {m.name: m for m in build.modules()}
    if module not in found:
        return None
    path: Path = build.output_dir(found[module], version) / "cosign"
    return path if path.is_file() else None


@dataclass
class _Timed:
    """One command's wall and CPU times over the measured rounds."""

    command: list[str]
    env: dict[str, str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def once(self, keep: bool) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(self.command, env=self.env, capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.command[:2])} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace')[-800:]}"
            )
        if keep:
            self.wall.append(elapsed)
            self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)

    @property
    def median_ms(self) -> float:
        return round(statistics.median(self.wall) * 1e3, 1)

    @property
    def cpu_ms(self) -> float:
        return round(statistics.median(self.cpu) * 1e3, 1)


def _interleaved(commands: Sequence[_Timed], runs: int) -> None:
    for index in range(runs + 2):
        for timed in commands:
            timed.once(keep=index >= 2)


def _import_breakdown(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Milliseconds spent importing, by top-level package (``python -X importtime``, each
    module's own time, so a package's figure excludes what it imports), one run: the six
    largest and the total."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "opkey", *command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| \s*(\S+)", line)
        if match is not None:
            package = match[2].split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(match[1]) / 1e3
    top = sorted(totals.items(), key=lambda item: -item[1])[:6]
    return {name: round(ms, 1) for name, ms in top} | {"all": round(sum(totals.values()), 1)}


def _in_process_ms(verify: Callable[[], object], rounds: int = 20) -> float:
    verify()
    started = time.perf_counter()
    for _ in range(rounds):
        verify()
    return round((time.perf_counter() - started) / rounds * 1e3, 2)


def _skipped(note: str) -> list[Figure]:
    return [Figure("cosign_peer", 0.0, "skipped", sides={"note": note})]


def run(context: dict[str, float] | None = None, *, runs: int = 15) -> list[Figure]:
    """The cosign figures (see the module docstring)."""
    del context
    from opkey.sandbox.registry import find_registry_binary

    if find_registry_binary() is None:
        return _skipped("skipped: install docker-registry (apt-get install docker-registry)")
    v3, v2 = cosign_binary("cosign-v3"), cosign_binary("cosign-v2")
    if v3 is None or v2 is None:
        return _skipped("skipped: build cosign (python tests/tools/build.py cosign-v2 cosign-v3)")
    with tempfile.TemporaryDirectory() as directory:
        return _measure(Path(directory), v3, v2, runs)


def _measure(directory: Path, v3: Path, v2: Path, runs: int) -> list[Figure]:
    from opkey.cli import main as opkey_main
    from opkey.images import sign_image, verify_image
    from opkey.policy.signoff import Requirement
    from opkey.registry import DockerCredentialStore, ImageReference, RegistryClient
    from opkey.sandbox.registry import LocalRegistry, seed_image
    from tests.cosign import Tripwire

    wire = Tripwire()
    try:
        with LocalRegistry(directory / "registry") as server:
            client = RegistryClient(docker_config=DockerCredentialStore())
            image = seed_image(client, ImageReference.parse(f"{server.host}/bench/app:v1"))
            provider = fixtures.Provider.create()
            signer = fixtures.make_signer(provider.jwk, provider.mint, use_gq=True)
            sign_image(client, image, signer)
            jwks = directory / "jwks.json"
            jwks.write_text(json.dumps(provider.keys.to_dict()))
            key = directory / "ephemeral.pem"
            os.environ["DOCKER_CONFIG"] = str(directory / "docker")
            with contextlib.redirect_stderr(io.StringIO()):
                exported = opkey_main(["inspect", str(image), "--public-key", str(key)])
            if exported != 0:
                raise RuntimeError("opkey inspect --public-key failed")
            root = directory / "trusted_root.json"
            root.write_text(EMPTY_TRUSTED_ROOT)

            opkey_args = [
                "verify",
                str(image),
                "--issuer",
                fixtures.ISSUER,
                "--commitment",
                "aud",
                "--claim-glob",
                "repository=octo-org/*",
                "--claim",
                "ref=refs/heads/main",
                "--jwks",
                str(jwks),
                "--offline",
                "--at",
                fixtures.NOW.isoformat(),
            ]
            opkey_env = child_environment() | {"DOCKER_CONFIG": str(directory / "docker")}
            cosign_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(directory / "cosign-home"),
                "DOCKER_CONFIG": str(directory / "docker"),
                "TUF_ROOT": str(directory / "tuf"),
                "HTTPS_PROXY": wire.url,
                "HTTP_PROXY": wire.url,
            }
            cosign_args = ["verify", "--key", str(key), "--insecure-ignore-tlog=true"]
            opkey = _Timed([*opkey_command(), *opkey_args], opkey_env)
            cosign3 = _Timed([str(v3), *cosign_args, str(image)], cosign_env)
            cosign2 = _Timed(
                [str(v2), *cosign_args, "--trusted-root", str(root), str(image)], cosign_env
            )
            python = _Timed([sys.executable, "-c", "pass"], opkey_env)
            _interleaved([opkey, cosign3, cosign2, python], runs)
            if wire.connections:
                raise RuntimeError(f"cosign made {wire.connections} outside connection(s)")

            imports = _import_breakdown(opkey_args, opkey_env)
            verifier = fixtures.verifier(provider, use_gq=True)
            policy = fixtures.policy()
            warm = _in_process_ms(
                lambda: verify_image(
                    client, image, verifier, Requirement.of(policy), at=fixtures.NOW
                )
            )
    finally:
        wire.close()

    ratio3 = opkey.median_ms / cosign3.median_ms
    ratio2 = opkey.median_ms / cosign2.median_ms
    sides = {
        "opkey_ms": opkey.median_ms,
        "cosign_v3_ms": cosign3.median_ms,
        "cosign_v2_ms": cosign2.median_ms,
        "python_c_pass_ms": python.median_ms,
        "opkey_cpu_ms": opkey.cpu_ms,
        "cosign_v3_cpu_ms": cosign3.cpu_ms,
        "cosign_v2_cpu_ms": cosign2.cpu_ms,
        "python_c_pass_cpu_ms": python.cpu_ms,
        "opkey_imports_ms": imports,
        "opkey_verify_image_in_process_warm_ms": warm,
        "runs": runs,
        "cosign_outside_connections": wire.connections,
    }
    return [
        Figure(
            "cli_opkey_verify_image_vs_cosign_v3_verify_key",
            round(ratio3, 2),
            "ratio",
            target="<= 1.0",
            met=ratio3 <= 1.0,
            sides=sides,
        ),
        Figure(
            "cli_opkey_verify_image_vs_cosign_v2_verify_key",
            round(ratio2, 2),
            "ratio",
            target="<= 1.0",
            met=ratio2 <= 1.0,
            sides={"opkey_ms": opkey.median_ms, "cosign_v2_ms": cosign2.median_ms},
        ),
    ]


if __name__ == "__main__":
    for figure in run():
        print(json.dumps(figure.to_dict()))
