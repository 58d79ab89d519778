"""The export pipeline: one consistent snapshot of the source, encoded as it streams
(CSV and JSON Lines by PostgreSQL's COPY, Parquet by Arrow), compressed, and uploaded."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from typing import Any, Final, Protocol

from exportd import db
from exportd.catalog import ExportType, HookContext
from exportd.formats import CHUNK, Sink, sink_for
from exportd.parquet import ChunkPipe, Column, ParquetStream, csv_types, encode_csv, to_text
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
    """What to build: the catalog export, its typed params, and how to encode it."""

    export_type: ExportType
    tenant: str
    params: Mapping[str, Any]
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
            if request.export_type.rows is not None:
                rows = await _python(conn, request, sink, meter)
            elif request.format == "parquet":
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
        *export_type.args(request.params, request.tenant),
        output=chunk,
        format="csv",
        header=header,
        delimiter=delimiter,
        quote=quote,
    )
    return int(status.split()[-1])


async def _parquet(conn: db.Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """Parquet: from COPY's CSV through Arrow's C++ reader when every column's type allows
    (the fast path), else through a cursor and Python values."""
    sql = request.export_type.positional_sql
    columns = await _columns(conn, sql)
    types = csv_types(columns)
    if types is not None:
        return await _parquet_from_csv(conn, request, sink, meter, columns, types)
    return await _parquet_from_rows(conn, request, sink, meter, columns)


async def _parquet_from_csv(
    conn: db.Conn,
    request: Request,
    sink: Sink,
    meter: ProgressMeter,
    columns: list[Column],
    types: dict[str, Any],
) -> int:
    """COPY streams CSV into a pipe; a worker thread parses it with Arrow and writes Parquet
    row groups back to the sink. The pipe and the sink both block when full (backpressure)."""
    await db.use_utc(conn)
    loop = asyncio.get_running_loop()
    pipe = ChunkPipe()

    def emit(data: bytes) -> None:  # called from the worker thread
        if data:
            asyncio.run_coroutine_threadsafe(sink.write(data), loop).result()

    encoder = asyncio.ensure_future(asyncio.to_thread(encode_csv, columns, types, pipe, emit))
    pending: list[bytes] = []
    buffered = 0

    async def chunk(data: bytes) -> None:
        nonlocal buffered
        pending.append(data)
        buffered += len(data)
        if buffered >= CHUNK:
            await asyncio.to_thread(pipe.put, b"".join(pending))
            pending.clear()
            buffered = 0
        await meter.add(data.count(b"\n"))

    args = request.export_type.args(request.params, request.tenant)
    try:
        status = await conn.copy_from_query(
            request.export_type.positional_sql, *args, output=chunk, format="csv", header=True
        )
        await asyncio.to_thread(pipe.put, b"".join(pending))
        await asyncio.to_thread(pipe.put, None)
        await encoder
    except BaseException:
        # Unblock the reader thread with an error, and let it end before unwinding.
        await asyncio.to_thread(pipe.put, ConnectionAbortedError("export stopped"))
        await asyncio.gather(encoder, return_exceptions=True)
        raise
    return int(status.split()[-1])


async def _parquet_from_rows(
    conn: db.Conn, request: Request, sink: Sink, meter: ProgressMeter, columns: list[Column]
) -> int:
    """Parquet through a server-side cursor: one row group in memory at a time."""
    sql = request.export_type.positional_sql
    if any(to_text(c) for c in columns):
        sql = db.text_columns_query(sql, [(c.name, to_text(c)) for c in columns])
        columns = [Column(c.name, "text", False, None) if to_text(c) else c for c in columns]
    stream = ParquetStream(columns)
    cursor = await conn.cursor(sql, *request.export_type.args(request.params, request.tenant))
    total = 0
    # Arrow conversion and Parquet encoding run in a thread (off the event loop, so the API
    # stays responsive) while the next batch is fetched: one batch in each stage at most.
    encoding: asyncio.Future[bytes] | None = None
    try:
        while rows := await cursor.fetch(FETCH_ROWS):
            if encoding is not None:
                await sink.write(await encoding)
            encoding = asyncio.ensure_future(asyncio.to_thread(stream.add, rows))
            total += len(rows)
            await meter.add(len(rows))
        if encoding is not None:
            await sink.write(await encoding)
            encoding = None
    finally:
        if encoding is not None:  # failed mid-way: let the thread finish before unwinding
            await asyncio.gather(encoding, return_exceptions=True)
    await sink.write(await asyncio.to_thread(stream.finish))
    return total


async def _python(conn: db.Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """A hook's rows, encoded here (CSV and JSON Lines by the standard library, Parquet by
    Arrow), a batch at a time."""
    export_type = request.export_type
    assert export_type.rows is not None
    names = [name for name, _ in export_type.columns]
    encode = _row_encoder(request, names)
    if request.format == "csv" and request.options.get("bom"):
        await sink.write(UTF8_BOM)
    if request.format == "csv" and request.options.get("header", True):
        await sink.write(encode([names], header=True))
    context = HookContext(
        tenant=request.tenant,
        params=export_type.values(request.params, request.tenant),
        conn=conn,
    )
    total, batch = 0, []
    async for row in export_type.rows(context):
        batch.append(row)
        if len(batch) >= FETCH_ROWS:
            total += await _encode_batch(batch, encode, sink, meter)
            batch = []
    total += await _encode_batch(batch, encode, sink, meter)
    await sink.write(encode([], header=False, final=True))
    return total


async def _encode_batch(
    batch: list[Sequence[Any]], encode: Encoder, sink: Sink, meter: ProgressMeter
) -> int:
    if batch:
        data = await asyncio.to_thread(encode, batch)
        if data:
            await sink.write(data)
        await meter.add(len(batch))
    return len(batch)


def _row_encoder(request: Request, names: list[str]) -> Encoder:
    """A function from a batch of rows to encoded bytes (`final` flushes what is left)."""
    if request.format == "parquet":
        stream = ParquetStream(
            [_hook_column(name, pg_type) for name, pg_type in request.export_type.columns]
        )

        def parquet(
            rows: Sequence[Sequence[Any]], header: bool = False, final: bool = False
        ) -> bytes:
            return stream.finish() if final else stream.add(rows)

        return parquet
    if request.format == "jsonl":

        def jsonl(
            rows: Sequence[Sequence[Any]], header: bool = False, final: bool = False
        ) -> bytes:
            return "".join(
                json.dumps(dict(zip(names, row, strict=True)), default=_json_value) + "\n"
                for row in rows
            ).encode()

        return jsonl
    delimiter = str(request.options.get("delimiter", ","))
    safe = request.export_type.spreadsheet_safe

    def csv_rows(rows: Sequence[Sequence[Any]], header: bool = False, final: bool = False) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
        for row in rows:
            writer.writerow(row if header or not safe else [_formula_safe(v) for v in row])
        return out.getvalue().encode()

    return csv_rows


class Encoder(Protocol):
    def __call__(
        self, rows: Sequence[Sequence[Any]], header: bool = False, final: bool = False
    ) -> bytes: ...


def _hook_column(name: str, pg_type: str) -> Column:
    is_array = pg_type.endswith("[]")
    return Column(name, pg_type, is_array, pg_type.removesuffix("[]") if is_array else None)


def _formula_safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in db.FORMULA_STARTS:
        return "'" + value
    return value


def _json_value(value: Any) -> Any:
    """JSON for what the json module cannot write: ISO dates, exact decimals as strings."""
    if isinstance(value, datetime | date | dt_time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
