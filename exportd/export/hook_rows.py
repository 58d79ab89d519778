"""Rows from a Python hook export, encoded here: CSV and JSON Lines by the standard library,
Parquet by Arrow, a batch at a time off the event loop."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from typing import Any, Protocol

from exportd.db.pool import Conn
from exportd.db.source import FORMULA_STARTS
from exportd.export.arrow import ParquetStream
from exportd.export.compress import Sink
from exportd.export.definition import HookContext
from exportd.export.formats import UTF8_BOM
from exportd.export.request import BATCH_ROWS, Column, ProgressMeter, Request


class Encoder(Protocol):
    def __call__(
        self, rows: Sequence[Sequence[Any]], header: bool = False, final: bool = False
    ) -> bytes: ...


async def write_hook_rows(conn: Conn, request: Request, sink: Sink, meter: ProgressMeter) -> int:
    """Run the hook's row function on the snapshot connection; stream its rows into `sink`."""
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
        if len(batch) >= BATCH_ROWS:
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
            [Column.declared(name, pg_type) for name, pg_type in request.export_type.columns]
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


def _formula_safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
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
