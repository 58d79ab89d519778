"""An export's JSON read for display, tolerant of what an older server leaves out (`queue`,
most of `progress`), and the words and numbers the command line shows for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

TERMINAL: Final = frozenset({"succeeded", "failed", "canceled", "expired"})
WAITING_FOR: Final = {"worker": "a free worker", "tenant_limit": "your tenant's other exports"}


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

    def queue_text(self) -> str:
        parts = []
        if self.position is not None:
            parts.append(f"#{self.position} in line")
        if self.ahead is not None:
            parts.append(f"{self.ahead} ahead")
        parts.append(f"waiting for {WAITING_FOR.get(self.waiting_for or 'worker', 'a worker')}")
        if self.starts_in is not None:
            parts.append(f"starts in ~{duration(max(0.0, self.starts_in))}")
        return " · ".join(parts)

    def progress_text(self) -> str:
        parts = []
        if self.percent is not None:
            parts.append(f"{int(self.percent)}%")  # 99.9 is not done: never round up to 100
        rows = f"{self.rows or 0:,}"
        if self.rows_estimate is not None and not self.terminal:
            rows += f" of ~{self.rows_estimate:,}"
        parts.append(f"{rows} rows")
        if self.rate is not None and not self.terminal:
            parts.append(f"{self.rate:,.0f} rows/s")
        if self.eta is not None and not self.terminal:
            parts.append(f"ETA {duration(self.eta)}")
        if self.bytes is not None:
            parts.append(size(self.bytes))
        return " · ".join(parts)

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

    def summary(self) -> str:
        """One line for where it is now."""
        if self.status == "queued":
            return self.queue_text()
        if self.status == "succeeded":
            rows = whole(self.result.get("rows"))
            return f"{rows if rows is not None else self.rows or 0:,} rows · " + size(
                number(self.result.get("size"))
            )
        if self.terminal:
            return self.error_text()
        return self.progress_text()
