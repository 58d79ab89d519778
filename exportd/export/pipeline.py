"""The export pipeline: one consistent snapshot of the source, encoded as it streams (CSV and
JSON Lines by PostgreSQL's COPY, Parquet by Arrow, hook exports in Python), compressed, and
uploaded."""

from __future__ import annotations

from exportd.db import source
from exportd.db.pool import Conn, Pool
from exportd.export.compress import Sink, sink_for
from exportd.export.formats import UTF8_BOM
from exportd.export.hook_rows import write_hook_rows
from exportd.export.parquet import write_parquet
from exportd.export.request import ProgressMeter, Request, Snapshot, result_columns
from exportd.storage.writer import ObjectWriter


async def export_rows(
    pool: Pool, request: Request, writer: ObjectWriter, meter: ProgressMeter
) -> Snapshot:
    """Stream the query's rows into `writer` in the requested encoding; one READ ONLY snapshot."""
    sink = sink_for(writer, request.compression)
    try:
        async with pool.acquire() as conn, source.snapshot(conn):
            as_of = await source.snapshot_time(conn)
            if request.export_type.rows is not None:  # a hook export: no query to plan
                rows = await write_hook_rows(conn, request, sink, meter)
            else:
                sql, args = request.export_type.positional_sql, request.args()
                await meter.estimated(await source.estimate_rows(conn, sql, args))
                if request.format == "parquet":
                    rows = await write_parquet(conn, request, sink, meter)
                else:
                    rows = await _copy(conn, request, sink, meter)
        await sink.finish()
    except BaseException:
        sink.cancel()
        raise
    return Snapshot(rows=rows, as_of=as_of)


async def _copy(conn: Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """CSV or JSON Lines straight from COPY: PostgreSQL encodes, we only move bytes."""
    export_type, options = request.export_type, request.options
    sql = export_type.positional_sql
    if request.format == "jsonl":
        sql, header, delimiter, quote = (
            source.jsonl_query(sql),
            False,
            source.JSONL_DELIMITER,
            source.JSONL_QUOTE,
        )
    else:
        if export_type.spreadsheet_safe:
            columns = await result_columns(conn, sql)
            sql = source.spreadsheet_safe_query(sql, [(c.name, c.pg_type) for c in columns])
        header = bool(options.get("header", True))
        delimiter, quote = str(options.get("delimiter", ",")), None
        if options.get("bom"):
            await sink.write(UTF8_BOM)

    uncounted = 1 if header else 0  # the header line is no row

    async def chunk(data: bytes) -> None:
        nonlocal uncounted
        await sink.write(data)
        # Newlines approximate rows while streaming (quoted fields may hold newlines);
        # the exact count comes from COPY's status at the end.
        lines = data.count(b"\n")
        skipped = min(lines, uncounted)
        uncounted -= skipped
        await meter.add(lines - skipped)

    status = await source.copy_out(
        conn,
        sql,
        request.args(),
        chunk,
        format="csv",
        header=header,
        delimiter=delimiter,
        quote=quote,
    )
    return int(status.split()[-1])
