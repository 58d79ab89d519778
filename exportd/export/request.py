"""What a build streams: the request, the result columns' types, and the progress meter."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from exportd.db.pool import Conn
from exportd.export.definition import ExportType

BATCH_ROWS: Final = 5_000  # rows per batch where Python sees rows (cursor, hook exports)

Progress = Callable[[int, int], Awaitable[None]]


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
    """Counts rows as they pass and reports (rows, bytes uploaded) at most once per interval."""

    def __init__(self, report: Progress, interval: timedelta, writer: Sized) -> None:
        self._report = report
        self._interval = interval.total_seconds()
        self._writer = writer
        self._last = time.monotonic()
        self.rows = 0

    async def add(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            await self._report(self.rows, self._writer.size)
