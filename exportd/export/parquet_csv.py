"""Parquet's fast path: PostgreSQL's CSV parsed by Arrow's C++ reader in a worker thread."""

from __future__ import annotations

import io
import queue
from collections.abc import Callable, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.csv as pacsv

from exportd.export.arrow import AS_TEXT, FIX_HINT, SCALARS, ParquetStream, UnsupportedValue
from exportd.export.request import Column

# Types whose CSV text Arrow parses faithfully (timestamptz once the session is in UTC).
_CSV_TYPES: Final[dict[str, pa.DataType]] = {
    **{t: SCALARS[t] for t in ("bool", "int2", "int4", "int8", "oid", "float4", "float8")},
    **{t: SCALARS[t] for t in ("date", "timestamp", "timestamptz")},
    **{t: pa.string() for t in (*AS_TEXT, "text", "varchar", "bpchar", "name", "char")},
    **{t: pa.string() for t in ("citext", "json", "jsonb", "xml")},
    "numeric": pa.string(),  # read as text, then cast to decimal with the observed scale
}
# Arrow's CSV block: with quoted newlines allowed it holds a few blocks at once, and what its
# parser allocates per block stays with the process, so keep it small: 1 MiB blocks cost
# ~40 MiB of RSS against ~12 MiB at 256 KiB, for the same speed (4 MiB put the memory test
# ~30 MiB over its bound).
CSV_BLOCK: Final = 256 * 1024


def csv_types(columns: Sequence[Column]) -> dict[str, pa.DataType] | None:
    """Arrow types to read the query's CSV with, or None when the fast path cannot take it
    (arrays, binary, intervals, other types; duplicate column names)."""
    names = [c.name for c in columns]
    if len(set(names)) != len(names) or any(c.is_array for c in columns):
        return None
    if any(c.pg_type not in _CSV_TYPES for c in columns):
        return None
    return {c.name: _CSV_TYPES[c.pg_type] for c in columns}


class ChunkPipe(io.RawIOBase):
    """A blocking file for a reader thread, fed chunk by chunk from the event loop."""

    def __init__(self, depth: int = 4) -> None:
        super().__init__()
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
        self._current = memoryview(b"")
        self._eof = False

    def put(self, item: bytes | BaseException | None) -> None:
        """Feed a chunk; None ends the stream, an exception makes the reader fail."""
        self._queue.put(item)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                self._eof = True
            else:
                self._current = memoryview(item)
        size = min(len(buffer), len(self._current))
        buffer[:size] = self._current[:size]
        self._current = self._current[size:]
        return size


def encode_csv(
    columns: Sequence[Column],
    types: dict[str, pa.DataType],
    source: ChunkPipe,
    emit: Callable[[bytes], None],
) -> None:
    """Read PostgreSQL CSV (with header) from `source`, write Parquet to `emit`. Runs in a
    worker thread: parsing and encoding are C++, so the event loop carries on beside it."""
    reader = pacsv.open_csv(
        io.BufferedReader(source, CSV_BLOCK),
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            true_values=["t"],
            false_values=["f"],
            null_values=[""],  # PostgreSQL writes NULL unquoted and empty text as ""
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    stream = ParquetStream(columns)
    numeric = [c.name for c in columns if c.pg_type == "numeric"]
    decimals: dict[str, pa.DataType] = {}
    for batch in reader:
        if numeric:
            if not decimals:
                decimals = {name: _decimal_type(batch.column(name)) for name in numeric}
            batch = _cast(batch, decimals)
        emit(stream.add_batch(batch))
    emit(stream.finish())


def _decimal_type(text: pa.Array[Any]) -> pa.DataType:
    """decimal128(38, s) with s the most decimal places among these values."""
    scale = 0
    for value in text.to_pylist():
        if value and "." in value:
            scale = max(scale, len(value) - value.index(".") - 1)
    return pa.decimal128(38, min(scale, 37))


def _cast(batch: pa.RecordBatch, decimals: dict[str, pa.DataType]) -> pa.RecordBatch:
    try:
        arrays = [
            batch.column(i).cast(decimals[name]) if name in decimals else batch.column(i)
            for i, name in enumerate(batch.schema.names)
        ]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UnsupportedValue(f"{exc}; {FIX_HINT}") from None
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
