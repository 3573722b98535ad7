"""Command-line start-up: ``opkey --version`` and an offline ``opkey verify`` of a GQ256 bundle
with a pinned JWKS, as wall-time ratios against ``python -c pass`` on the same interpreter.

Each command runs as a fresh process; the figure is the median of ``runs`` runs after two
warm-up runs. Bytecode caching is left on (``PYTHONDONTWRITEBYTECODE`` is removed from the
children's environment), as it is for any installed package: otherwise every run would compile
opkey's sources again and measure the compiler.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import fixtures
from benchmarks.harness import Figure

__all__ = ["child_environment", "median_wall_time", "opkey_command", "run"]


def child_environment() -> dict[str, str]:
    """The environment for timed child processes (bytecode caching on)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def median_wall_time(
    command: Sequence[str], *, runs: int = 15, cwd: str | None = None, expect: int = 0
) -> float:
    """Median wall time in seconds of ``command`` as a fresh process (after two warm-ups)."""
    env = child_environment()
    times = []
    for index in range(runs + 2):
        start = time.perf_counter()
        result = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if result.returncode != expect:
            raise RuntimeError(
                f"{' '.join(command)} exited {result.returncode}: {result.stderr.decode()[-500:]}"
            )
        if index >= 2:
            times.append(elapsed)
    return statistics.median(times)


def opkey_command() -> list[str]:
    """The ``opkey`` console script next to this interpreter (as users run it)."""
    script = Path(sys.executable).with_name("opkey")
    return [str(script)] if script.exists() else [sys.executable, "-m", "opkey"]


def write_offline_case(directory: Path) -> list[str]:
    """A GQ256-signed file, its bundle and the provider's JWKS; the verify arguments."""
    import json

    provider = fixtures.Provider.create()
    signer = fixtures.make_signer(provider.jwk, provider.mint, use_gq=True)
    artifact = directory / "artifact.bin"
    artifact.write_bytes(b"opkey benchmark artifact\n")
    bundle = signer.sign_digest(fixtures.DIGEST)
    (directory / "artifact.bin.opkey.json").write_bytes(bundle.to_json())
    (directory / "jwks.json").write_text(json.dumps(provider.keys.to_dict()))
    return [
        "verify",
        "--file",
        str(artifact),
        "--issuer",
        fixtures.ISSUER,
        "--commitment",
        "aud",
        "--claim-glob",
        "repository=octo-org/*",
        "--claim",
        "ref=refs/heads/main",
        "--jwks",
        str(directory / "jwks.json"),
        "--offline",
        "--at",
        fixtures.NOW.isoformat(),
    ]


def run(context: dict[str, float] | None = None, *, runs: int = 15) -> list[Figure]:
    """The start-up figures; records the seconds of each command in ``context``."""
    context = context if context is not None else {}
    opkey = opkey_command()
    with tempfile.TemporaryDirectory() as directory:
        verify_args = write_offline_case(Path(directory))
        baseline = median_wall_time([sys.executable, "-c", "pass"], runs=runs)
        version = median_wall_time([*opkey, "--version"], runs=runs)
        verify = median_wall_time([*opkey, *verify_args], runs=runs)
        modules = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from opkey.cli import main; code = main(sys.argv[1:]); "
                "print(','.join(m for m in ('requests', 'authlib', 'jwt', 'gmpy2') "
                "if m in sys.modules), file=sys.stderr)",
                *verify_args,
            ],
            env=child_environment(),
            capture_output=True,
            text=True,
            check=True,
        ).stderr.strip()
    context.update(python_pass=baseline, opkey_version=version, opkey_verify_offline=verify)
    ms = {"python_c_pass_ms": round(baseline * 1e3, 1)}
    return [
        Figure(
            "cli_version_vs_python",
            round(version / baseline, 2),
            "ratio",
            target="<= 3",
            met=version / baseline <= 3,
            sides={"opkey_ms": round(version * 1e3, 1), **ms},
        ),
        Figure(
            "cli_verify_offline_gq256_vs_python",
            round(verify / baseline, 2),
            "ratio",
            target="<= 10",
            met=verify / baseline <= 10,
            sides={
                "opkey_ms": round(verify * 1e3, 1),
                **ms,
                "network_libraries_loaded": modules or "none",
            },
        ),
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
