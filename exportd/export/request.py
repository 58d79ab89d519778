"""What a build streams: the request, the result columns' types, and the progress meter."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from exportd.db.pool import Conn
from exportd.db.rows import Reading
from exportd.export.definition import ExportType

BATCH_ROWS: Final = 5_000  # rows per batch where Python sees rows (cursor, hook exports)

# How fast the smoothed rate follows a change: a reading this many seconds old weighs 1/e.
RATE_TIME_CONSTANT_S: Final = 10.0


Progress = Callable[[Reading], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What to build: the catalog export, its typed params, and how to encode it."""

    export_type: ExportType
    tenant: str
    params: Mapping[str, Any]
    format: str
    compression: str
    options: Mapping[str, Any]

    def args(self) -> list[Any]:
        """The query's positional arguments, the tenant bound from identity."""
        return self.export_type.args(self.params, self.tenant)


@dataclass(frozen=True, slots=True)
class Snapshot:
    rows: int
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    pg_type: str  # asyncpg's type name ("int4[]" for arrays)
    is_array: bool
    element: str | None  # the element's type name for arrays

    @classmethod
    def declared(cls, name: str, pg_type: str) -> Column:
        """A column a hook export declares by its PostgreSQL type name."""
        is_array = pg_type.endswith("[]")
        return cls(name, pg_type, is_array, pg_type.removesuffix("[]") if is_array else None)


async def result_columns(conn: Conn, sql: str) -> list[Column]:
    """The columns a query returns, as the server describes them (prepared, not run)."""
    attributes = (await conn.prepare(sql)).get_attributes()
    return [
        Column(
            name=a.name,
            pg_type=a.type.name,
            is_array=a.type.kind == "array",
            element=a.type.name.removesuffix("[]") if a.type.kind == "array" else None,
        )
        for a in attributes
    ]


class Sized(Protocol):
    @property
    def size(self) -> int: ...


class ProgressMeter:
    """Counts rows as they pass and reports a Reading at most once per interval, with the
    rate smoothed by an exponentially weighted moving average over time (not over reports,
    so an irregular stream does not skew it)."""

    def __init__(self, report: Progress, interval: timedelta, writer: Sized) -> None:
        self._report = report
        self._interval = interval.total_seconds()
        self._writer = writer
        self._last = time.monotonic()
        self._last_rows = 0
        self.rows = 0
        self.estimate: int | None = None
        self.rate: float | None = None
        self.reported = False

    async def estimated(self, rows: int) -> None:
        """The planner's estimate, known before the first row. It goes out with the first
        report: a build shorter than the interval costs no write for it."""
        self.estimate = rows

    async def add(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        elapsed = now - self._last
        if elapsed >= self._interval:
            current = (self.rows - self._last_rows) / elapsed
            weight = 1 - math.exp(-elapsed / RATE_TIME_CONSTANT_S)
            self.rate = current if self.rate is None else self.rate + weight * (current - self.rate)
            self._last, self._last_rows = now, self.rows
            await self._send()

    def reading(self) -> Reading:
        return Reading(self.rows, self._writer.size, self.estimate, self.rate)

    async def _send(self) -> None:
        self.reported = True
        await self._report(self.reading())
