"""The export pipeline: one consistent snapshot of the source, streamed through COPY into S3."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from exportd.catalog import ExportType
from exportd.db import Pool, snapshot_time
from exportd.storage import ObjectWriter

CONTENT_TYPES: Final = {"csv": "text/csv; charset=utf-8"}
EXTENSIONS: Final = {"csv": ".csv"}

Progress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    rows: int
    as_of: datetime


class ProgressMeter:
    """Counts rows and bytes as chunks pass, and reports at most once per interval."""

    def __init__(self, report: Progress, interval: timedelta) -> None:
        self._report = report
        self._interval = interval.total_seconds()
        self._last = time.monotonic()
        self.rows = 0
        self.bytes = 0

    async def add(self, rows: int, size: int) -> None:
        self.rows += rows
        self.bytes += size
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            await self._report(self.rows, self.bytes)


async def export_csv(
    source: Pool,
    export_type: ExportType,
    args: list[object],
    writer: ObjectWriter,
    meter: ProgressMeter,
) -> Snapshot:
    """COPY the query's rows as CSV (with header) into `writer`; one READ ONLY snapshot."""

    async def sink(chunk: bytes) -> None:
        await writer.write(chunk)
        # Newlines approximate rows while streaming (quoted fields may hold newlines);
        # the exact count comes from COPY's status at the end.
        await meter.add(chunk.count(b"\n"), len(chunk))

    async with (
        source.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        as_of = await snapshot_time(conn)
        status = await conn.copy_from_query(
            export_type.positional_sql, *args, output=sink, format="csv", header=True
        )
    return Snapshot(rows=int(status.split()[-1]), as_of=as_of)
