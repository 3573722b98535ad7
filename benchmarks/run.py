"""Run every opkey benchmark in one process run; print a table and write results.json.

Usage: ``./dev bench`` (or ``python benchmarks/run.py [--only SECTION ...]``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_core
from benchmarks.harness import Figure

SECTIONS: dict[str, Callable[[], list[Figure]]] = {
    "core": bench_core.run,
}
RESULTS = Path(__file__).resolve().parent / "results.json"


def _table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "target", "met")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.name, f"{f.value:g}", f.unit, f.target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(SECTIONS), default=None)
    parser.add_argument("--no-write", action="store_true", help="do not write results.json")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    for name in args.only or SECTIONS:
        print(f"running {name}…", file=sys.stderr, flush=True)
        figures.extend(SECTIONS[name]())
    print(_table(figures))
    if not args.no_write:
        RESULTS.write_text(
            json.dumps(
                {
                    "machine": {"python": platform.python_version(), "cpu": platform.machine()},
                    "figures": [f.to_dict() for f in figures],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
