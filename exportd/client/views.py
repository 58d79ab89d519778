"""An export's JSON read for display, tolerant of what an older server leaves out (`queue`,
most of `progress`), and the words and numbers the command line shows for it.

A line of progress comes in versions from the fullest to the sparest (`summary_variants`):
where room is short (an 80-column terminal beside a bar), `fit` takes the fullest that fits,
so the least important parts go first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

TERMINAL: Final = frozenset({"succeeded", "failed", "canceled", "expired"})
# What a queued export waits for (the API's queue.waiting_for), and in a word where room is
# short; waiting for a worker is what queued means anyway, so it has no short form.
WAITING_FOR: Final = {
    "worker": "waiting for a worker",
    "tenant_limit": "waiting for your tenant's earlier exports",
}
WAITING_FOR_SHORT: Final = {"tenant_limit": "tenant limit"}
SEPARATOR: Final = " · "


def number(value: Any) -> float | None:
    """A JSON number, or None for anything else (null, missing, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def whole(value: Any) -> int | None:
    found = number(value)
    return None if found is None else int(found)


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def size(n: float | None) -> str:
    """Bytes in decimal units: 999 B, 5.2 MB."""
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """0:04, 1:02:03."""
    if seconds is None:
        return "?"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def joined(*parts: str | None) -> str:
    return SEPARATOR.join(part for part in parts if part)


def versions(*candidates: str) -> list[str]:
    """The candidates without repeats, in order (fullest first)."""
    return list(dict.fromkeys(candidates))


def fit(variants: list[str], width: int) -> str:
    """The fullest of `variants` (fullest first) that fits in `width` cells; else the last,
    to be cut short by whoever shows it."""
    return next((v for v in variants if len(v) <= width), variants[-1] if variants else "")


def until(at: str | None) -> float | None:
    """Seconds from now until an ISO 8601 time (None when it is not one)."""
    if not at:
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


@dataclass(frozen=True, slots=True)
class View:
    """What the command line shows of an export."""

    id: str
    name: str
    status: str
    phase: str | None
    rows: int | None
    rows_estimate: int | None
    bytes: int | None
    percent: float | None
    rate: float | None
    eta: float | None
    counted: bool  # the queue's numbers are known (the answer to a create has none yet)
    position: int | None
    ahead: int | None
    waiting_for: str | None
    starts_in: float | None
    error: dict[str, Any]
    result: dict[str, Any]

    @classmethod
    def of(cls, export: dict[str, Any]) -> View:
        progress, queue = mapping(export.get("progress")), mapping(export.get("queue"))
        status = str(export.get("status") or "unknown")
        percent = number(progress.get("percent"))
        if status == "succeeded":
            percent = 100.0
        return cls(
            id=str(export.get("id", "")),
            name=str(export.get("export", "")),
            status=status,
            phase=progress.get("phase") if isinstance(progress.get("phase"), str) else None,
            rows=whole(progress.get("rows")),
            rows_estimate=whole(progress.get("rows_estimate")),
            bytes=whole(progress.get("bytes")),
            percent=percent,
            rate=number(progress.get("rate_rows_s")),
            eta=number(progress.get("eta_s")),
            counted=bool(queue),
            position=whole(queue.get("position")),
            ahead=whole(queue.get("ahead")),
            waiting_for=queue.get("waiting_for") if queue.get("waiting_for") else None,
            starts_in=until(queue.get("estimated_start_at")),
            error=mapping(export.get("error")),
            result=mapping(export.get("result")),
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def stage(self) -> str:
        """The word for where it is: queued, building, uploading, succeeded, failed, ..."""
        if self.status == "running" and self.phase in ("building", "uploading"):
            return self.phase
        return self.status

    @property
    def status_text(self) -> str:
        """The status (what `exports ls --status` filters on), with the phase when it adds
        something: running (uploading), succeeded (mailing)."""
        if self.phase and self.phase not in ("queued", "done", self.status):
            return f"{self.status} ({self.phase})"
        return self.status

    def queue_variants(self) -> list[str]:
        """Where a queued export stands, fullest first ([""] before it was counted): the
        "N ahead" goes first (the position says it), then the estimate shortens, then the
        reason, then both go."""
        if not self.counted:
            return [""]
        lead = f"#{self.position} in line" if self.position is not None else None
        ahead = f"{self.ahead} ahead" if self.ahead is not None else None
        if lead is None:
            lead, ahead = ahead, None
        why = WAITING_FOR.get(self.waiting_for or "")
        why_short = WAITING_FOR_SHORT.get(self.waiting_for or "")
        starts = long_starts = None
        if self.starts_in is not None:
            starts = f"~{duration(max(0.0, self.starts_in))}"
            long_starts = f"starts in {starts}"
        return versions(
            joined(lead, ahead, why, long_starts),
            joined(lead, why, long_starts),
            joined(lead, why, starts),
            joined(lead, why_short, starts),
            joined(lead, starts),
            joined(lead),
        )

    def queue_text(self) -> str:
        return self.queue_variants()[0]

    def progress_variants(self) -> list[str]:
        """Rows, percent, rate, ETA and bytes, fullest first: the rate goes first, then the
        rows' estimate, the bytes, the rows (when there is a percent), the ETA."""
        live = not self.terminal
        percent = f"{int(self.percent)}%" if self.percent is not None else None  # 99.9: not 100
        rows = f"{self.rows or 0:,} rows"
        all_rows = rows
        if self.rows_estimate is not None and live:
            all_rows = f"{self.rows or 0:,} of ~{self.rows_estimate:,} rows"
        rate = f"{self.rate:,.0f} rows/s" if self.rate is not None and live else None
        eta = f"ETA {duration(self.eta)}" if self.eta is not None and live else None
        stored = size(self.bytes) if self.bytes is not None else None
        return versions(
            joined(percent, all_rows, rate, eta, stored),
            joined(percent, all_rows, eta, stored),
            joined(percent, rows, eta, stored),
            joined(percent, rows, eta),
            joined(percent or rows, eta),
            joined(percent or rows),
        )

    def progress_text(self) -> str:
        return self.progress_variants()[0]

    def error_text(self) -> str:
        """Why it did not succeed, in the export's own words."""
        if self.status == "failed":
            message = self.error.get("message") or "the export failed"
            extra = [str(self.error[k]) for k in ("code",) if self.error.get(k)]
            if self.error.get("id"):
                extra.append(f"error id {self.error['id']}")
            return f"{message} ({', '.join(extra)})" if extra else str(message)
        if self.status == "canceled":
            return "the export was canceled"
        if self.status == "expired":
            return "the export's file expired and was deleted"
        return f"the export is {self.status}"

    def summary_variants(self) -> list[str]:
        """Where it is now beside its stage, fullest first. Nothing for a failed, canceled
        or expired export: the command reports why, once, as its error."""
        if self.status == "queued":
            return self.queue_variants()
        if self.status == "succeeded":
            found = whole(self.result.get("rows"))
            rows = f"{found if found is not None else self.rows or 0:,} rows"
            return versions(joined(rows, size(number(self.result.get("size")))), rows)
        if self.terminal:
            return [""]
        return self.progress_variants()

    def summary(self) -> str:
        """One line for where it is now (the fullest)."""
        return self.summary_variants()[0]
