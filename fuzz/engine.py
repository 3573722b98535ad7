"""The fuzz loop: pick, mutate, run, keep what behaves newly, record findings and figures.

The ``random`` engine needs nothing but the standard library. Its corpus starts with the
target's seeds and grows with every input whose *outcome* (accepted, or the error class and the
shape of its message) has not been seen yet: a cheap stand-in for coverage that steers the
mutations past the first checks of each parser. The ``atheris`` engine hands the same mutators
to libFuzzer, which keeps inputs by code coverage instead.

Each input runs under a time budget (``SIGALRM``); exceeding it is a ``hang`` finding.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fuzz.mutators import mutate, splice
from fuzz.targets import Finding, Target

__all__ = ["Stats", "record_finding", "run_atheris", "run_random"]

_MAX_CORPUS = 2000
_MAX_INPUT = 300 * 1024
_SHALLOW = (
    "FormatError",
    "ConfigError: policy file: invalid TOML",
    "ConfigError: policy file: not",
)


class _Timeout(BaseException):
    """Raised by the alarm handler; a BaseException so no ``except Exception`` swallows it."""


@dataclass
class Stats:
    """What a run did: the figures the report quotes."""

    target: str
    engine: str
    seconds: float = 0.0
    inputs: int = 0
    corpus: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "engine": self.engine,
            "seconds": round(self.seconds, 1),
            "inputs": self.inputs,
            "inputs_per_second": round(self.inputs / self.seconds, 1) if self.seconds else 0,
            "corpus": self.corpus,
            "distinct_outcomes": len(self.outcomes),
            "accepted": sum(n for o, n in self.outcomes.items() if o.startswith("accepted")),
            "by_error_class": dict(
                Counter(o.split(":")[0] for o in self.outcomes.elements()).most_common()
            ),
            "top_outcomes": dict(self.outcomes.most_common(12)),
            "findings": self.findings,
        }


def record_finding(directory: Path, finding: Finding, data: bytes) -> Path:
    """Write the input and a description under ``directory``; return the input's path."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:16]
    slug = "".join(c if c.isalnum() else "-" for c in finding.signature)[:60].strip("-")
    path = directory / f"{finding.kind}-{slug}-{digest}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(
        f"{finding.kind}: {finding.signature}\n\n{finding.detail}\n", encoding="utf-8"
    )
    return path


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Timeout


def run_one(target: Target, data: bytes, budget: float) -> str:
    """Run one input under the time budget; raise :class:`Finding` for a defect."""
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        return target.run(data)
    except _Timeout:
        raise Finding("hang", f"over {budget:g}s", f"input of {len(data)} bytes") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_random(
    target: Target,
    *,
    seconds: float,
    seed: int,
    budget: float,
    findings_dir: Path,
    report_every: float = 30.0,
    max_inputs: int | None = None,
) -> Stats:
    """Mutation-fuzz ``target`` for ``seconds`` (or ``max_inputs``)."""
    rng = random.Random(seed)
    previous = signal.signal(signal.SIGALRM, _alarm)
    stats = Stats(target.name, "random")
    corpus = list(target.seeds)
    # Inputs that got past parsing ("deep") are better parents than ones rejected as malformed.
    deep: list[bytes] = []
    shallow: list[bytes] = []
    for data in target.seeds:  # the seeds themselves must behave
        try:
            stats.outcomes[run_one(target, data, budget)] += 1
        except Finding as finding:
            _note(stats, finding, data, findings_dir)
    start = last_report = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now - start >= seconds or (max_inputs is not None and stats.inputs >= max_inputs):
                break
            if now - last_report >= report_every:
                last_report = now
                stats.seconds = now - start
                print(json.dumps(stats.to_dict()), file=sys.stderr, flush=True)
            pool = rng.random()
            if pool < 0.4 or not (deep or shallow):
                parent = rng.choice(target.seeds)
            elif pool < 0.8 and deep:
                parent = rng.choice(deep)
            else:
                parent = rng.choice(shallow or deep)
            data = mutate(parent, rng, corpus)[:_MAX_INPUT]
            stats.inputs += 1
            try:
                outcome = run_one(target, data, budget)
            except Finding as finding:
                _note(stats, finding, data, findings_dir)
                continue
            if outcome not in stats.outcomes and len(corpus) < _MAX_CORPUS:
                corpus.append(data)
                (shallow if outcome.startswith(_SHALLOW) else deep).append(data)
            stats.outcomes[outcome] += 1
    finally:
        signal.signal(signal.SIGALRM, previous)
    stats.seconds = time.monotonic() - start
    stats.corpus = len(corpus)
    return stats


def _note(stats: Stats, finding: Finding, data: bytes, findings_dir: Path) -> None:
    key = f"{finding.kind}: {finding.signature}"
    first = key not in stats.findings
    stats.findings[key] = stats.findings.get(key, 0) + 1
    if first:
        path = record_finding(findings_dir, finding, data)
        print(f"FINDING {key} -> {path}", file=sys.stderr, flush=True)


def run_atheris(
    target: Target,
    *,
    seconds: float,
    seed: int,
    budget: float,
    findings_dir: Path,
    corpus_dir: Path,
) -> Stats:  # pragma: no cover - exercised by `python -m fuzz --engine atheris`
    """Coverage-guided fuzzing with libFuzzer (atheris), using :mod:`fuzz.mutators`."""
    import atheris

    stats = Stats(target.name, "atheris")
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for data in target.seeds:
        (corpus_dir / hashlib.sha256(data).hexdigest()[:16]).write_bytes(data)
    seeds = list(target.seeds)
    started = [time.monotonic()]

    def one_input(data: bytes) -> None:
        if not stats.inputs:  # the clock starts after instrumentation, at the first input
            started[0] = time.monotonic()
        if time.monotonic() - started[0] >= seconds:  # stop here, so our figures get printed
            report()
            os._exit(1 if stats.findings else 0)
        stats.inputs += 1
        try:
            stats.outcomes[target.run(data)] += 1
        except Finding as finding:
            _note(stats, finding, data, findings_dir)

    def custom_mutator(data: bytes, max_size: int, mutation_seed: int) -> bytes:
        rng = random.Random(mutation_seed)
        if rng.random() < 0.25:
            mutated: bytes = atheris.Mutate(data, max_size)
            return mutated
        return mutate(data, rng, seeds)[:max_size]

    def custom_crossover(a: bytes, b: bytes, max_size: int, mutation_seed: int) -> bytes:
        return splice(a, b, random.Random(mutation_seed))[:max_size]

    def report() -> None:
        stats.seconds = time.monotonic() - started[0]
        print(json.dumps(stats.to_dict() | {"seed": seed}, indent=2), flush=True)

    atheris.instrument_all()
    argv = [
        sys.argv[0],
        f"-max_total_time={int(seconds) + 60}",
        f"-timeout={max(1, int(budget))}",
        f"-seed={seed}",
        f"-artifact_prefix={findings_dir}/atheris-",
        f"-max_len={_MAX_INPUT}",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        str(corpus_dir),
    ]
    findings_dir.mkdir(parents=True, exist_ok=True)
    atheris.Setup(argv, one_input, custom_mutator=custom_mutator, custom_crossover=custom_crossover)
    atheris.Fuzz()
    return stats
