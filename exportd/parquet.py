"""Parquet from database rows: PostgreSQL types mapped to Arrow, written in row groups as
rows stream, so memory holds one row group, never the table."""

from __future__ import annotations

import contextlib
import io
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

# Arrow's default allocator (mimalloc) keeps what a long export frees for reuse, and RSS
# climbs with it; jemalloc told to return memory at once keeps it flat.
with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
    pa.set_memory_pool(pa.jemalloc_memory_pool())
    pa.jemalloc_set_decay_ms(0)

# A row group ends at this many rows or bytes of Arrow data, whichever comes first: large
# enough for good compression and fast scans, small enough that memory stays flat even
# for wide rows.
ROW_GROUP_ROWS: Final = 100_000
ROW_GROUP_BYTES: Final = 8 * 1024 * 1024

_SCALARS: Final[dict[str, pa.DataType]] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "oid": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "char": pa.string(),
    "citext": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "xml": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "interval": pa.duration("us"),
}
# Read as text, kept as text: their Python values have no faithful Arrow twin.
_AS_TEXT: Final = frozenset({"uuid", "inet", "cidr", "macaddr", "money", "timetz"})


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    pg_type: str  # asyncpg's type name ("int4[]" for arrays)
    is_array: bool
    element: str | None  # the element's type name for arrays


class UnsupportedValue(ValueError):
    """A value that the column's Arrow type cannot hold without loss."""


FIX_HINT: Final = "cast the column to a fixed type in the catalog SQL (e.g. ::numeric(20,6))"


def arrow_type(column: Column, sample: Sequence[Any]) -> pa.DataType:
    """The Arrow type for a column; numeric takes its scale from the first rows."""
    if column.is_array:
        element = Column(column.name, column.element or "text", False, None)
        flat = [v for row in sample if row for v in row]
        return pa.list_(arrow_type(element, flat))
    if column.pg_type == "numeric":
        exponents = [v.as_tuple().exponent for v in sample if isinstance(v, Decimal)]
        scale = max([0, *(-e for e in exponents if isinstance(e, int))])
        return pa.decimal128(38, min(scale, 37))
    return _SCALARS.get(column.pg_type, pa.string())


def to_text(column: Column) -> bool:
    """Whether to select this column as ::text (no faithful binary mapping)."""
    return column.pg_type in _AS_TEXT or (
        column.pg_type not in _SCALARS and not (column.pg_type == "numeric" or column.is_array)
    )


class ParquetStream:
    """Feeds row batches in, takes Parquet bytes out as each row group completes."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self._columns = list(columns)
        self._schema: pa.Schema | None = None
        self._out = _Spool()
        self._file = pa.PythonFile(self._out, mode="w")
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def add(self, rows: Sequence[Any]) -> bytes:
        """Convert a batch of rows; returns Parquet bytes when a row group was written."""
        if not rows:
            return b""
        values = list(zip(*rows, strict=True))
        if self._schema is None:
            self._schema = pa.schema(
                [
                    pa.field(c.name, arrow_type(c, v))
                    for c, v in zip(self._columns, values, strict=True)
                ]
            )
            self._writer = pq.ParquetWriter(self._file, self._schema, compression="zstd")
        try:
            arrays = [pa.array(v, type=f.type) for v, f in zip(values, self._schema, strict=True)]
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UnsupportedValue(f"{exc}; {FIX_HINT}") from None
        return self.add_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def add_batch(self, batch: pa.RecordBatch) -> bytes:
        """Add Arrow data; returns Parquet bytes when a row group was written."""
        if self._writer is None:
            self._schema = batch.schema
            self._writer = pq.ParquetWriter(self._file, self._schema, compression="zstd")
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= ROW_GROUP_ROWS or self._pending_bytes >= ROW_GROUP_BYTES:
            return self._flush()
        return b""

    def finish(self) -> bytes:
        """Write the last row group and the footer; the file's remaining bytes."""
        if self._writer is None:  # no rows at all: still a valid file with the schema
            self._schema = pa.schema([pa.field(c.name, arrow_type(c, [])) for c in self._columns])
            self._writer = pq.ParquetWriter(self._file, self._schema, compression="zstd")
        tail = self._flush()
        self._writer.close()
        return tail + self._drain()

    def _flush(self) -> bytes:
        if self._pending:
            assert self._writer is not None
            self._writer.write_table(pa.Table.from_batches(self._pending))
            self._pending.clear()
            self._pending_rows = 0
            self._pending_bytes = 0
        return self._drain()

    def _drain(self) -> bytes:
        return self._out.take()


class _Spool(io.RawIOBase):
    """A write-only file that hands over what was written so far, while its position keeps
    counting from the start (the Parquet footer records absolute offsets)."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


# --- the fast path: PostgreSQL's CSV parsed by Arrow's C++ reader --------------------------

# Types whose CSV text Arrow parses faithfully (timestamptz once the session is in UTC).
_CSV_TYPES: Final[dict[str, pa.DataType]] = {
    **{t: _SCALARS[t] for t in ("bool", "int2", "int4", "int8", "oid", "float4", "float8")},
    **{t: _SCALARS[t] for t in ("date", "timestamp", "timestamptz")},
    **{t: pa.string() for t in (*_AS_TEXT, "text", "varchar", "bpchar", "name", "char")},
    **{t: pa.string() for t in ("citext", "json", "jsonb", "xml")},
    "numeric": pa.string(),  # read as text, then cast to decimal with the observed scale
}
# Arrow's CSV block: with quoted newlines allowed it holds a few blocks at once, so keep it
# small (4 MiB blocks put the memory test ~30 MiB over its bound).
CSV_BLOCK: Final = 1024 * 1024


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
