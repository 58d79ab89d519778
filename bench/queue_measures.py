"""What the queue benchmark compares: each measure's two sides (exportd and its baseline), their
runs, the medians, and the rows of the table."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Metrics = dict[str, float]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_metrics(seconds: Sequence[float], prefix: str = "latency") -> Metrics:
    """p50, p99 and max of durations in seconds, as milliseconds."""
    out: Metrics = {f"{prefix}_n": float(len(seconds))}
    for name, q in (("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
        value = percentile(seconds, q)
        if value is not None:
            out[f"{prefix}_{name}_ms"] = value * 1000
    return out


@dataclass
class Side:
    """One side of a measure: what ran, and every run's metrics (or why it failed)."""

    label: str
    runs: list[Metrics] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if key in run]
        return statistics.median(values) if values else None

    def medians(self) -> Metrics:
        keys = dict.fromkeys(k for run in self.runs for k in run)
        return {k: m for k in keys if (m := self.median(k)) is not None}


@dataclass(frozen=True, slots=True)
class Row:
    """A line of the table: a metric of exportd's side beside one of a baseline's (or None)."""

    label: str
    exportd: str
    baseline: str | None
    fmt: str = "{:.2f}"
    exportd_side: str = "exportd"
    baseline_side: str = "baseline"


@dataclass
class Measure:
    """Its sides by name, in run order (a round runs each once); the rows of the table."""

    key: str
    title: str
    sides: dict[str, Side]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self) -> list[dict[str, Any]]:
        out = []
        for row in self.rows:
            mine = self.sides[row.exportd_side].median(row.exportd)
            theirs = None
            if row.baseline is not None:
                theirs = self.sides[row.baseline_side].median(row.baseline)
            ratio = mine / theirs if mine is not None and theirs else None
            out.append(
                {
                    "measure": self.title,
                    "row": row.label,
                    "exportd": mine,
                    "baseline": theirs,
                    "ratio": ratio,
                    "fmt": row.fmt,
                }
            )
        return out

    def as_json(self) -> dict[str, Any]:
        sides = {
            name: {
                "label": side.label,
                "runs": side.runs,
                "median": side.medians(),
                "errors": side.errors,
            }
            for name, side in self.sides.items()
        }
        return {
            "key": self.key,
            "title": self.title,
            "seconds": self.seconds,
            "sides": sides,
            "table": [{k: v for k, v in r.items() if k != "fmt"} for r in self.table()],
            "notes": self.notes,
        }

    def disturbed(self, limit: float) -> list[str]:
        """Sides whose runs shared the machine: other processes' median cores above `limit`."""
        out = []
        for side in self.sides.values():
            other = side.median("other_cores")
            if other is not None and other > limit:
                out.append(f"{side.label}: other processes used {other:.2f} cores meanwhile")
        return out

    def shown(self, side: str) -> list[str]:
        """The metrics of `side` that the table shows, for progress lines."""
        keys = [r.exportd for r in self.rows if r.exportd_side == side]
        keys += [r.baseline for r in self.rows if r.baseline_side == side and r.baseline]
        return list(dict.fromkeys(keys))


RunOnce = Callable[[], Awaitable[Metrics]]


async def alternate(
    measure: Measure, rounds: int, runs: dict[str, RunOnce], say: Callable[[str], None]
) -> Measure:
    """Run every side once per round, in the order of `measure.sides` (baseline first), for
    `rounds` rounds; a failed run is recorded as an error of its side, and the rest still run."""
    started = time.monotonic()
    say(f"{measure.title}")
    for n in range(rounds):
        for name, side in measure.sides.items():
            try:
                metrics = await runs[name]()
            except Exception as exc:
                side.errors.append(f"round {n + 1}: {type(exc).__name__}: {exc}")
                say(f"  {side.label}: FAILED {type(exc).__name__}: {exc}")
                continue
            side.runs.append(metrics)
            shown = {k: metrics[k] for k in measure.shown(name) if k in metrics}
            say(f"  {side.label}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    measure.seconds = time.monotonic() - started
    return measure
