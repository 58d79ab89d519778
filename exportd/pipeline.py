"""The export pipeline: one consistent snapshot of the source, encoded as it streams
(CSV and JSON Lines by PostgreSQL's COPY, Parquet by Arrow), compressed, and uploaded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from exportd import db
from exportd.catalog import ExportType
from exportd.formats import Sink, sink_for
from exportd.parquet import Column, ParquetStream, to_text
from exportd.storage import ObjectWriter

UTF8_BOM: Final = b"\xef\xbb\xbf"
FETCH_ROWS: Final = 5_000  # rows per cursor round trip on the Parquet path

Progress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    rows: int
    as_of: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What to build: the catalog export, its bound arguments, and how to encode it."""

    export_type: ExportType
    args: list[object]
    format: str
    compression: str
    options: Mapping[str, Any]


class ProgressMeter:
    """Counts rows as they pass and reports (rows, bytes uploaded) at most once per interval."""

    def __init__(self, report: Progress, interval: timedelta, writer: ObjectWriter) -> None:
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


async def export_rows(
    source: db.Pool, request: Request, writer: ObjectWriter, meter: ProgressMeter
) -> Snapshot:
    """Stream the query's rows into `writer` in the requested encoding; one READ ONLY snapshot."""
    sink = sink_for(writer, request.compression)
    try:
        async with (
            source.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            as_of = await db.snapshot_time(conn)
            if request.format == "parquet":
                rows = await _parquet(conn, request, sink, meter)
            else:
                rows = await _copy(conn, request, sink, meter)
        await sink.finish()
    except BaseException:
        sink.cancel()
        raise
    return Snapshot(rows=rows, as_of=as_of)


async def _columns(conn: db.Conn, sql: str) -> list[Column]:
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


async def _copy(conn: db.Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """CSV or JSON Lines straight from COPY: PostgreSQL encodes, we only move bytes."""
    export_type, options = request.export_type, request.options
    sql = export_type.positional_sql
    if request.format == "jsonl":
        sql, header, delimiter, quote = (
            db.jsonl_query(sql),
            False,
            db.JSONL_DELIMITER,
            db.JSONL_QUOTE,
        )
    else:
        if export_type.spreadsheet_safe:
            columns = await _columns(conn, sql)
            sql = db.spreadsheet_safe_query(sql, [(c.name, c.pg_type) for c in columns])
        header = bool(options.get("header", True))
        delimiter, quote = str(options.get("delimiter", ",")), None
        if options.get("bom"):
            await sink.write(UTF8_BOM)

    async def chunk(data: bytes) -> None:
        await sink.write(data)
        # Newlines approximate rows while streaming (quoted fields may hold newlines);
        # the exact count comes from COPY's status at the end.
        await meter.add(data.count(b"\n"))

    status = await conn.copy_from_query(
        sql,
        *request.args,
        output=chunk,
        format="csv",
        header=header,
        delimiter=delimiter,
        quote=quote,
    )
    return int(status.split()[-1])


async def _parquet(conn: db.Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """Parquet through a server-side cursor: one row group in memory at a time."""
    sql = request.export_type.positional_sql
    columns = await _columns(conn, sql)
    if any(to_text(c) for c in columns):
        sql = db.text_columns_query(sql, [(c.name, to_text(c)) for c in columns])
        columns = [Column(c.name, "text", False, None) if to_text(c) else c for c in columns]
    stream = ParquetStream(columns)
    cursor = await conn.cursor(sql, *request.args)
    total = 0
    while rows := await cursor.fetch(FETCH_ROWS):
        total += len(rows)
        # Arrow conversion is CPU work: off the event loop, so the API stays responsive.
        encoded = await asyncio.to_thread(stream.add, rows)
        if encoded:
            await sink.write(encoded)
        await meter.add(len(rows))
    await sink.write(await asyncio.to_thread(stream.finish))
    return total
