"""Process metrics in the Prometheus text format (counters kept here; queue gauges read
from the database when scraped)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final

HELP: Final = {
    "exportd_http_requests_total": "HTTP requests answered, by route and status.",
    "exportd_exports_created_total": "Exports accepted (202), replays excluded.",
    "exportd_jobs_claimed_total": "Jobs claimed by this process, by kind.",
    "exportd_jobs_finished_total": "Jobs this process ended, by kind and outcome.",
    "exportd_jobs": "Jobs in the queue (all replicas), by kind and state.",
}


class Metrics:
    """Counters for one process; labels are small, fixed sets."""

    def __init__(self) -> None:
        self._counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, **labels: str) -> None:
        self._counters[name, tuple(sorted(labels.items()))] += 1

    def value(self, name: str, **labels: str) -> int:
        return self._counters[name, tuple(sorted(labels.items()))]

    def render(self, gauges: Iterable[tuple[str, Mapping[str, str], int]] = ()) -> str:
        """The exposition text: counters, then the gauges given."""
        samples: dict[str, list[str]] = {}
        for (name, pairs), value in sorted(self._counters.items()):
            samples.setdefault(name, []).append(f"{name}{_labels(dict(pairs))} {value}")
        for name, labels, gauge in gauges:
            samples.setdefault(name, []).append(f"{name}{_labels(labels)} {gauge}")
        lines = []
        for name, rows in samples.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} {kind}", *rows]
        return "\n".join(lines) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"
