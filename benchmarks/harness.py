"""Timing helpers shared by the benchmarks.

Figures are ratios measured in the same process run (opkey against a floor of primitive
operations, or against a peer), so they hold across machines better than absolute times.
Each measurement takes the best of several batches, which filters scheduler noise out of both
sides of a ratio alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Figure", "best_time", "ratio_figure"]


@dataclass(frozen=True)
class Figure:
    """One named result row: a value with its unit, and for ratios both sides."""

    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    sides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for benchmarks/results.json."""
        return {k: v for k, v in asdict(self).items() if v not in ("", None, {})}


def best_time(func: Callable[[], object], *, number: int = 200, repeat: int = 7) -> float:
    """Seconds per call: the best mean over ``repeat`` batches of ``number`` calls."""
    func()  # warm caches and lazy imports outside the measurement
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def ratio_figure(
    name: str,
    ours: float,
    floor: float,
    *,
    target: float,
    ours_label: str = "opkey",
    floor_label: str = "floor",
) -> Figure:
    """A ratio row ``ours / floor`` with both sides in microseconds."""
    value = ours / floor
    return Figure(
        name=name,
        value=round(value, 3),
        unit="ratio",
        target=f"<= {target}",
        met=value <= target,
        sides={
            f"{ours_label}_us": round(ours * 1e6, 2),
            f"{floor_label}_us": round(floor * 1e6, 2),
        },
    )
