"""Run every opkey benchmark in one process run; print a table and write results.json.

Usage: ``./dev bench`` (or ``python benchmarks/run.py [--only SECTION ...] [--registry]``).

Sections: ``core`` (GQ256 and verification against their primitive floors), ``timestamp``
(one RFC 3161 token verified next to the signature verification it protects), ``startup``
(command-line start-up against ``python -c pass``), ``throughput`` (10,000 bundles from 100
identities, keys from the dev OpenID provider over HTTP), ``peer`` (sigstore-python side by
side; ``--setup-peer`` installs it into ``benchmarks/.peer-venv`` first), ``openpubkey``
(OpenPubkey Go's in-process verification of the same PK tokens and messages), ``admission``
(the admission core on captured AdmissionReviews against a JSON round trip), ``tlog`` (the
offline check of one Rekor entry against its primitives and an ES256 verify, and a log
monitor's checks per second), ``attestations`` (one attestation layer, DSSE envelope to
decision, against its primitive floor, cold and cached) and, with
``--registry``, ``registry`` and ``admission_server`` (the admission gate as an HTTPS server
under an open-loop load; both need the CNCF distribution registry, ``docker-registry``) and,
with ``--cosign``, ``cosign`` (``cosign verify --key`` against ``opkey verify IMAGE`` as
processes; needs docker-registry and cosign built by ``python tests/tools/build.py``).
Each figure is one row of the table and of ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    bench_admission,
    bench_admission_server,
    bench_attestations,
    bench_core,
    bench_cosign,
    bench_openpubkey,
    bench_peer,
    bench_registry,
    bench_startup,
    bench_throughput,
    bench_timestamp,
    bench_tlog,
)
from benchmarks.harness import Figure

SECTIONS: dict[str, Callable[[dict[str, float]], list[Figure]]] = {
    "core": bench_core.run,
    "timestamp": bench_timestamp.run,
    "startup": bench_startup.run,
    "throughput": bench_throughput.run,
    "peer": bench_peer.run,
    "openpubkey": bench_openpubkey.run,
    "registry": bench_registry.run,
    "cosign": bench_cosign.run,
    "admission": bench_admission.run,
    "admission_server": bench_admission_server.run,
    "tlog": bench_tlog.run,
    "attestations": bench_attestations.run,
}
DEFAULT_SECTIONS = (
    "core",
    "timestamp",
    "startup",
    "throughput",
    "peer",
    "openpubkey",
    "admission",
    "tlog",
    "attestations",
)
RESULTS = Path(__file__).resolve().parent / "results.json"


def _table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "target", "met")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        value = str(f.sides.get("note", "")) if f.unit == "skipped" else f"{f.value:g}"
        rows.append((f.name, value, f.unit, f.target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from opkey import gq

    return {
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "gq_backend": gq.backend(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections (all but ``registry`` and ``cosign`` by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SECTIONS), default=None)
    parser.add_argument(
        "--registry",
        action="store_true",
        help="also run the registry and admission_server sections",
    )
    parser.add_argument("--cosign", action="store_true", help="also run the cosign section")
    parser.add_argument(
        "--setup-peer",
        action="store_true",
        help="create benchmarks/.peer-venv with sigstore 4.5 before running",
    )
    parser.add_argument("--no-write", action="store_true", help="do not write results.json")
    args = parser.parse_args(argv)
    if args.setup_peer:
        bench_peer.setup_peer()
    sections = list(args.only or DEFAULT_SECTIONS)
    if args.registry:
        sections.extend(s for s in ("registry", "admission_server") if s not in sections)
    if args.cosign and "cosign" not in sections:
        sections.append("cosign")
    context: dict[str, float] = {}
    figures: list[Figure] = []
    for name in sections:
        print(f"running {name}…", file=sys.stderr, flush=True)
        figures.extend(SECTIONS[name](context))
    print(_table(figures))
    if not args.no_write:
        RESULTS.write_text(
            json.dumps({"machine": _machine(), "figures": [f.to_dict() for f in figures]}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
