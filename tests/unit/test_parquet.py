"""Parquet: ParquetStream from Python rows, and the fast path from PostgreSQL's CSV through a
ChunkPipe read in a worker thread."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exportd.export.arrow import (
    DICTIONARY_BYTES,
    ROW_GROUP_ROWS,
    ParquetStream,
    UnsupportedValue,
)
from exportd.export.parquet_csv import ChunkPipe, csv_types, encode_csv
from exportd.export.request import Column


def read_parquet(data: bytes) -> pa.Table:
    # use_threads=False: a threaded read leaves Arrow work behind that can abort the
    # interpreter at exit (apache/arrow#33975).
    return pq.read_table(pa.BufferReader(data), use_threads=False)


# --- Parquet from rows ------------------------------------------------------------

COLUMNS = [
    Column("id", "int8", False, None),
    Column("label", "text", False, None),
    Column("amount", "numeric", False, None),
    Column("flag", "bool", False, None),
    Column("at", "timestamptz", False, None),
    Column("day", "date", False, None),
    Column("nums", "int4[]", True, "int4"),
]
PLUS_FIVE = timezone(timedelta(hours=5))
AT = datetime(2025, 1, 2, 8, 4, 5, tzinfo=PLUS_FIVE)
ROWS: list[tuple[Any, ...]] = [
    (1, "plain", Decimal("3.14159"), True, AT, date(2025, 1, 2), [1, 2, 3]),
    (2, 'quote " comma ,', Decimal("-0.01"), False, None, None, []),
    (3, "ünïcødé ✓", None, None, None, None, None),
    (4, "", Decimal("12.50"), True, None, date(1970, 1, 1), [None, 5]),
]


def test_parquet_stream_round_trips_values_and_types() -> None:
    stream = ParquetStream(COLUMNS)
    data = stream.add(ROWS[:2]) + stream.add(ROWS[2:]) + stream.finish()
    table = read_parquet(data)
    assert table.schema.types == [
        pa.int64(),
        pa.string(),
        pa.decimal128(38, 5),  # the most places among the first batch's values
        pa.bool_(),
        pa.timestamp("us", tz="UTC"),
        pa.date32(),
        pa.list_(pa.int32()),
    ]
    got = [tuple(row.values()) for row in table.to_pylist()]
    assert got == ROWS  # Decimal and aware datetimes compare by value, whatever the scale or zone
    assert got[0][4].utcoffset() == timedelta(0)


def test_empty_parquet_stream_is_a_valid_file_with_the_schema() -> None:
    stream = ParquetStream(COLUMNS)
    assert stream.add([]) == b""
    table = read_parquet(stream.finish())
    assert table.num_rows == 0
    assert table.schema.names == [c.name for c in COLUMNS]
    assert table.schema.field("amount").type == pa.decimal128(38, 0)
    assert table.schema.field("nums").type == pa.list_(pa.int32())


def test_parquet_stream_refuses_more_decimal_places_than_the_first_batch() -> None:
    stream = ParquetStream([Column("amount", "numeric", False, None)])
    stream.add([(Decimal("1.5"),)])
    with pytest.raises(UnsupportedValue, match="numeric"):
        stream.add([(Decimal("1.25"),)])


def test_parquet_stream_emits_row_groups_as_they_fill() -> None:
    stream = ParquetStream([Column("n", "int8", False, None)])
    batch = pa.RecordBatch.from_pydict({"n": pa.array(range(ROW_GROUP_ROWS), pa.int64())})
    first = stream.add_batch(batch)
    assert first  # a full row group is handed over before the stream ends
    data = first + stream.add_batch(batch.slice(0, 10)) + stream.finish()
    parquet = pq.ParquetFile(pa.BufferReader(data))
    assert parquet.metadata.num_row_groups == 2
    assert parquet.read(use_threads=False).column("n").to_pylist()[-11:] == [
        ROW_GROUP_ROWS - 1,
        *range(10),
    ]


# --- Parquet from PostgreSQL's CSV ------------------------------------------------

CSV_COLUMNS = [c for c in COLUMNS if not c.is_array]
CSV = (
    b"id,label,amount,flag,at,day\n"
    b"1,plain,12.50,t,2025-01-02 03:04:05.123456+00,2025-01-02\n"
    b'2,"quote "" comma ,\nnewline",-0.01,f,,\n'
    b'3,"",,,,\n'  # PostgreSQL: "" is empty text, an unquoted empty field is NULL
)


def test_a_column_of_many_values_stops_its_dictionary_at_the_limit() -> None:
    stream = ParquetStream(
        [Column("id", "int8", False, None), Column("state", "text", False, None)]
    )
    rows = [(i, ("queued", "running", "done")[i % 3]) for i in range(100_000)]

    data = stream.add(rows) + stream.finish()

    group = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(0)
    ids, states = group.column(0), group.column(1)
    # 100,000 distinct ids are 800 KB of dictionary: under Arrow's default limit (1 MiB) all
    # of it would be written; here it stops at 64 KiB and the rest of the column goes plain.
    assert ids.dictionary_page_offset is not None
    assert ids.data_page_offset - ids.dictionary_page_offset <= DICTIONARY_BYTES
    assert states.has_dictionary_page and "RLE_DICTIONARY" in states.encodings
    assert read_parquet(data).to_pylist()[-1] == {"id": 99_999, "state": "queued"}


def test_csv_types_for_scalar_columns() -> None:
    assert csv_types(CSV_COLUMNS) == {
        "id": pa.int64(),
        "label": pa.string(),
        "amount": pa.string(),  # parsed as text, cast to a decimal once its scale is known
        "flag": pa.bool_(),
        "at": pa.timestamp("us", tz="UTC"),
        "day": pa.date32(),
    }


@pytest.mark.parametrize(
    "columns",
    [
        COLUMNS,  # an array
        [Column("a", "int4", False, None), Column("a", "text", False, None)],  # duplicate name
        [Column("b", "bytea", False, None)],
        [Column("i", "interval", False, None)],
        [Column("p", "point", False, None)],
    ],
)
def test_csv_types_refuses_what_the_fast_path_cannot_read(columns: list[Column]) -> None:
    assert csv_types(columns) is None


def test_chunk_pipe_reads_chunks_in_order_then_eof() -> None:
    pipe = ChunkPipe()
    for item in (b"abc", b"", b"defg", None):
        pipe.put(item)
    assert io.BufferedReader(pipe, buffer_size=2).read() == b"abcdefg"


def test_encode_csv_in_a_thread_gives_the_table() -> None:
    pipe, out = ChunkPipe(), bytearray()
    types = csv_types(CSV_COLUMNS)
    assert types is not None
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(encode_csv, CSV_COLUMNS, types, pipe, out.extend)
        for start in range(0, len(CSV), 7):  # chunks that split rows, quotes and escapes
            pipe.put(CSV[start : start + 7])
        pipe.put(None)
        done.result()
    table = read_parquet(bytes(out))
    assert table.schema.field("amount").type == pa.decimal128(38, 2)
    at = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert table.schema.names == [c.name for c in CSV_COLUMNS]
    assert [tuple(row.values()) for row in table.to_pylist()] == [
        (1, "plain", Decimal("12.50"), True, at, date(2025, 1, 2)),
        (2, 'quote " comma ,\nnewline', Decimal("-0.01"), False, None, None),
        (3, "", None, None, None, None),
    ]


def test_encode_csv_fails_with_the_error_put_into_the_pipe() -> None:
    pipe = ChunkPipe()
    types = csv_types(CSV_COLUMNS)
    assert types is not None
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(encode_csv, CSV_COLUMNS, types, pipe, lambda data: None)
        pipe.put(CSV[:40])
        pipe.put(ConnectionAbortedError("export stopped"))
        with pytest.raises(ConnectionAbortedError, match="export stopped"):
            done.result()


def parquet_allocations(pool: str | None) -> dict[str, int]:
    """The most each Arrow allocator held while writing a small Parquet file, in a fresh
    interpreter (the default allocator is fixed when pyarrow loads, and this suite has loaded
    it already), with ARROW_DEFAULT_MEMORY_POOL set to `pool` or unset."""
    script = (
        "import exportd.export.arrow as arrow, pyarrow as pa\n"
        "from exportd.export.request import Column\n"
        "stream = arrow.ParquetStream([Column('id', 'int8', False, None)])\n"
        "assert stream.add([(i,) for i in range(10_000)]) + stream.finish()\n"
        "pools = [pa.mimalloc_memory_pool(), pa.jemalloc_memory_pool(), pa.system_memory_pool()]\n"
        "print(*(p.max_memory() for p in pools))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if pool is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = pool
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    return dict(zip(("mimalloc", "jemalloc", "system"), (int(n) for n in out.split()), strict=True))


@pytest.mark.parametrize(("pool", "used"), [(None, "jemalloc"), ("system", "system")])
def test_parquet_writing_allocates_from_one_allocator(pool: str | None, used: str) -> None:
    # mimalloc, Arrow's own default, keeps what it frees: RSS would climb. An operator's
    # choice governs pyarrow's calls and the Parquet writer's alike.
    held = parquet_allocations(pool)

    assert held[used] > 0
    assert {name: n for name, n in held.items() if name != used and n} == {}
