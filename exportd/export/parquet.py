"""Parquet from the source: COPY's CSV through Arrow's C++ reader when every column's type
allows (the fast path), else a server-side cursor and Python values."""

from __future__ import annotations

import asyncio
from typing import Any

from exportd.db import source
from exportd.db.pool import Conn
from exportd.export.arrow import ParquetStream, to_text
from exportd.export.compress import CHUNK, Sink
from exportd.export.parquet_csv import ChunkPipe, csv_types, encode_csv
from exportd.export.request import BATCH_ROWS, Column, ProgressMeter, Request, result_columns


async def write_parquet(conn: Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """Stream the query as Parquet into `sink`; the number of rows."""
    columns = await result_columns(conn, request.export_type.positional_sql)
    types = csv_types(columns)
    if types is not None:
        return await _from_csv(conn, request, sink, meter, columns, types)
    return await _from_rows(conn, request, sink, meter, columns)


async def _from_csv(
    conn: Conn,
    request: Request,
    sink: Sink,
    meter: ProgressMeter,
    columns: list[Column],
    types: dict[str, Any],
) -> int:
    """COPY streams CSV into a pipe; a worker thread parses it with Arrow and writes Parquet
    row groups back to the sink. The pipe and the sink both block when full (backpressure)."""
    await source.use_utc(conn)
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

    try:
        status = await source.copy_out(
            conn,
            request.export_type.positional_sql,
            request.args(),
            chunk,
            format="csv",
            header=True,
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


async def _from_rows(
    conn: Conn, request: Request, sink: Sink, meter: ProgressMeter, columns: list[Column]
) -> int:
    """Parquet through a server-side cursor: one row group in memory at a time."""
    sql = request.export_type.positional_sql
    if any(to_text(c) for c in columns):
        sql = source.text_columns_query(sql, [(c.name, to_text(c)) for c in columns])
        columns = [Column(c.name, "text", False, None) if to_text(c) else c for c in columns]
    stream = ParquetStream(columns)
    cursor = await conn.cursor(sql, *request.args())
    total = 0
    # Arrow conversion and Parquet encoding run in a thread (off the event loop, so the API
    # stays responsive) while the next batch is fetched: one batch in each stage at most.
    encoding: asyncio.Future[bytes] | None = None
    try:
        while rows := await cursor.fetch(BATCH_ROWS):
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
