"""Side by side with the peer users would otherwise pick: sigstore-python 4.5.

sigstore is not an opkey dependency. It lives in its own virtual environment,
``benchmarks/.peer-venv`` (``python benchmarks/run.py --setup-peer`` creates it with
``python -m venv`` and ``pip install "sigstore>=4.5,<4.6"``); without it the figures say they
were skipped and how to install it.

What is compared, in the same run:

* in-process: sigstore's ``Verifier.staging(offline=True).verify_artifact`` of the real
  staging-signed artifact in ``tests/data/sigstore-peer`` (bundle parsed each time), timed by
  ``peer_sigstore.py`` in the peer's interpreter, against opkey's cold verification of one
  image signature (from its annotations) with a GQ256 and with an RS256 PK token;
* command line: ``sigstore --staging verify identity --offline …`` against the offline
  ``opkey verify`` of a GQ256 bundle with a pinned JWKS (both median wall time of fresh
  processes, bytecode cached).

sigstore's ``--offline`` uses the trusted root shipped inside the package (copied to its cache
directory) and skips the TUF refresh. An audit hook in ``peer_sigstore.py`` counts socket
connects and name lookups in both modes: the figures report the count, which must be 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_startup import child_environment, median_wall_time
from benchmarks.harness import Figure

__all__ = ["PEER_PYTHON", "run", "setup_peer"]

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".peer-venv"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_REQUIREMENT = "sigstore>=4.5,<4.6"
FIXTURE = HERE.parent / "tests" / "data" / "sigstore-peer"
IDENTITY = "william@yossarian.net"
OIDC_ISSUER = "https://github.com/login/oauth"
INSTALL_HINT = "skipped: install with `python benchmarks/run.py --setup-peer`"


def setup_peer() -> None:
    """Create ``benchmarks/.peer-venv`` and install sigstore 4.5 into it (not into opkey's)."""
    if not PEER_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run(
        [
            str(PEER_PYTHON),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            PEER_REQUIREMENT,
        ],
        check=True,
    )


def _cli_arguments() -> list[str]:
    return [
        "--staging",
        "verify",
        "identity",
        "--offline",
        "--bundle",
        "bundle_v3.txt.sigstore",
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        OIDC_ISSUER,
        "bundle_v3.txt",
    ]


def _skipped(reason: str) -> list[Figure]:
    return [Figure("sigstore_peer", 0.0, "skipped", sides={"note": reason})]


def run(context: dict[str, float] | None = None, *, runs: int = 15) -> list[Figure]:
    """The peer figures; uses (or measures) opkey's figures from ``context``."""
    context = context if context is not None else {}
    if not PEER_PYTHON.exists():
        return _skipped(INSTALL_HINT)
    probe = subprocess.run(
        [str(PEER_PYTHON), "-c", "import sigstore; print(sigstore.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return _skipped(INSTALL_HINT)
    script = str(HERE / "peer_sigstore.py")
    in_process = json.loads(
        subprocess.run(
            [str(PEER_PYTHON), script, str(FIXTURE), IDENTITY, OIDC_ISSUER],
            capture_output=True,
            text=True,
            check=True,
            env=child_environment(),
        ).stdout
    )
    cli_check = subprocess.run(
        [str(PEER_PYTHON), script, "--cli", *_cli_arguments()],
        cwd=FIXTURE,
        capture_output=True,
        text=True,
        check=True,
        env=child_environment(),
    )
    cli_network = json.loads(cli_check.stderr.strip().splitlines()[-1])["network_events"]
    peer_cli = median_wall_time(
        [str(PEER_VENV / "bin" / "sigstore"), *_cli_arguments()], runs=runs, cwd=str(FIXTURE)
    )
    peer_pass = median_wall_time([str(PEER_PYTHON), "-c", "pass"], runs=runs)

    if "image_gq256_cold" not in context:
        from benchmarks import bench_core

        bench_core.run(context, pool=50)
    if "opkey_verify_offline" not in context:
        from benchmarks import bench_startup

        bench_startup.run(context, runs=runs)

    sigstore_s = in_process["seconds_per_verification"]
    version = in_process["version"]
    peer = {f"sigstore_{version}_us": round(sigstore_s * 1e6, 1)}
    figures = [
        Figure(
            "sigstore_verify_artifact_in_process_us",
            round(sigstore_s * 1e6, 1),
            "us",
            sides={"network_events": in_process["network_events"], "version": version},
        )
    ]
    for kind, target in (("gq256", 1.0), ("rs256", 0.25)):
        ours = context[f"image_{kind}_cold"]
        ratio = ours / sigstore_s
        figures.append(
            Figure(
                f"image_{kind}_cold_vs_sigstore_in_process",
                round(ratio, 3),
                "ratio",
                target=f"< {target}" if target == 1.0 else f"<= {target}",
                met=ratio < target if target == 1.0 else ratio <= target,
                sides={"opkey_us": round(ours * 1e6, 1), **peer},
            )
        )
    ours_cli = context["opkey_verify_offline"]
    figures += [
        Figure(
            "cli_verify_offline_vs_sigstore_cli",
            round(ours_cli / peer_cli, 3),
            "ratio",
            target="<= 0.3",
            met=ours_cli / peer_cli <= 0.3,
            sides={
                "opkey_ms": round(ours_cli * 1e3, 1),
                "sigstore_ms": round(peer_cli * 1e3, 1),
                "sigstore_network_events": cli_network,
            },
        ),
        Figure(
            "sigstore_cli_vs_its_python",
            round(peer_cli / peer_pass, 2),
            "ratio",
            sides={"python_c_pass_ms": round(peer_pass * 1e3, 1)},
        ),
    ]
    return figures


if __name__ == "__main__":
    for figure in run():
        print(figure.to_dict())
