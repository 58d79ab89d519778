"""Every format and compression, downloaded and decoded back to exactly the query's rows."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pyarrow.parquet as pq
import pytest
import zstandard
from aiohttp.test_utils import TestClient

from exportd.dev.servers import EmbeddedS3
from exportd.export.catalog import Catalog
from tests.support.catalog import CATALOG_PATH
from tests.support.client import create, download_export, wait_until
from tests.support.hook_exports import expected_rows as squares_rows
from tests.support.s3 import objects_under
from tests.support.tokens import auth

TYPES_SQL = Catalog.load(CATALOG_PATH).get("types").positional_sql
CONTENT_TYPES = {
    ("csv", "none"): "text/csv; charset=utf-8",
    ("csv", "gzip"): "application/gzip",
    ("csv", "zstd"): "application/zstd",
    ("jsonl", "none"): "application/x-ndjson",
    ("jsonl", "gzip"): "application/gzip",
    ("jsonl", "zstd"): "application/zstd",
    ("parquet", "none"): "application/vnd.apache.parquet",
}


async def export_file(
    client: TestClient[Any, Any], body: dict[str, Any]
) -> tuple[dict[str, Any], bytes, dict[str, str]]:
    """Create, wait, download: (result, raw object bytes, response headers)."""
    created = await create(client, body)
    done = await wait_until(client, created["id"])
    assert done["status"] == "succeeded", done
    result: dict[str, Any] = done["result"]
    raw, headers = await download_export(client, done)
    return result, raw, headers


def decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


async def expected_csv(conn: asyncpg.Connection[asyncpg.Record], **options: Any) -> bytes:
    out = io.BytesIO()
    await conn.copy_from_query(TYPES_SQL, output=out, format="csv", **options)
    return out.getvalue()


async def expected_rows(conn: asyncpg.Connection[asyncpg.Record]) -> list[dict[str, Any]]:
    """The query's rows as asyncpg decodes them (jsonb as parsed JSON)."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return [dict(r) for r in await conn.fetch(TYPES_SQL)]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
async def test_csv_round_trips_byte_for_byte(
    client: TestClient[Any, Any], conn: asyncpg.Connection[asyncpg.Record], compression: str
) -> None:
    result, raw, headers = await export_file(
        client, {"export": "types", "format": "csv", "compression": compression}
    )

    assert decompress(raw, compression) == await expected_csv(conn, header=True)
    assert result["content_type"] == headers["Content-Type"] == CONTENT_TYPES["csv", compression]
    assert "Content-Encoding" not in headers  # what a browser saves is the file asked for
    suffix = {"none": ".csv", "gzip": ".csv.gz", "zstd": ".csv.zst"}[compression]
    assert result["file_name"].endswith(suffix)
    assert result["file_name"] in headers["Content-Disposition"]
    assert result["size"] == len(raw)
    assert result["rows"] == 7


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
async def test_jsonl_round_trips_every_type(
    client: TestClient[Any, Any], conn: asyncpg.Connection[asyncpg.Record], compression: str
) -> None:
    result, raw, headers = await export_file(
        client, {"export": "types", "format": "jsonl", "compression": compression}
    )

    lines = decompress(raw, compression).decode().splitlines()
    got = [json.loads(line, parse_float=Decimal) for line in lines]
    want = await expected_rows(conn)
    assert len(got) == len(want) == result["rows"]
    for g, w in zip(got, want, strict=True):
        assert g["id"] == w["id"]
        assert g["label"] == w["label"]  # newlines, quotes, tabs and unicode intact
        assert g["amount"] == w["amount"]  # numerics exact: Decimal("12.50"), not 12.5
        assert g["flag"] == w["flag"]
        assert (datetime.fromisoformat(g["at"]) if g["at"] else None) == w["at"]
        assert g["meta"] == w["meta"]
        assert g["nums"] == w["nums"]
        assert (date.fromisoformat(g["day"]) if g["day"] else None) == w["day"]
        assert g["small"] == w["small"]
    assert headers["Content-Type"] == CONTENT_TYPES["jsonl", compression]


@pytest.mark.parametrize("export", ["types", "types_flat"])
async def test_parquet_round_trips_every_type(
    client: TestClient[Any, Any], conn: asyncpg.Connection[asyncpg.Record], export: str
) -> None:
    # "types" has an array column (cursor path); "types_flat" takes the Arrow CSV path.
    result, raw, headers = await export_file(client, {"export": export, "format": "parquet"})

    table = pq.read_table(io.BytesIO(raw), use_threads=False)
    got = table.to_pylist()
    want = await expected_rows(conn)
    assert len(got) == len(want) == result["rows"]
    assert str(table.schema.field("at").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("small").type) == "int32"
    for g, w in zip(got, want, strict=True):
        assert g["id"] == w["id"]
        assert g["label"] == w["label"]
        assert g["amount"] == w["amount"]
        assert g["flag"] == w["flag"]
        assert g["at"] == w["at"]
        assert (json.loads(g["meta"]) if g["meta"] is not None else None) == w["meta"]
        assert g.get("nums", w["nums"]) == w["nums"]
        assert g["day"] == w["day"]
        assert g["small"] == w["small"]
    assert headers["Content-Type"] == CONTENT_TYPES["parquet", "none"]
    assert result["file_name"].endswith(".parquet")


async def test_parquet_refuses_outer_compression(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/v1/exports",
        json={"export": "types", "format": "parquet", "compression": "gzip"},
        headers=auth(),
    )

    assert response.status == 422
    assert (await response.json())["code"] == "unknown_format"


async def test_csv_options_header_delimiter_and_bom(
    client: TestClient[Any, Any], conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    _, raw, _ = await export_file(
        client,
        {"export": "types", "csv": {"header": False, "delimiter": ";", "bom": True}},
    )

    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw[3:] == await expected_csv(conn, header=False, delimiter=";")


async def test_formula_cells_are_neutralised_when_the_export_asks(
    client: TestClient[Any, Any],
) -> None:
    _, raw, _ = await export_file(client, {"export": "types_safe"})

    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert rows[0] == ["id", "label", "kind", "amount"]
    assert [r[1] for r in rows[1:8]] == [
        "'=1+2",
        "'+cmd",
        "'-2+3",
        "'@SUM(A1)",
        "'\ttab",
        "'\rcr",
        "plain = fine",
    ]
    # An enum column is text to a spreadsheet too; numbers, negative ones included, stay numbers.
    assert [(r[2], r[3]) for r in rows[1:4]] == [("'=1+1", "-5.5"), ("'-5", "-1"), ("plain", "0")]
    # NULL stays NULL (nothing between the commas), the empty string stays "".
    assert raw.decode().splitlines()[-2:] == ["8,,,", '9,"",,']


async def test_formula_cells_are_left_alone_otherwise(client: TestClient[Any, Any]) -> None:
    _, raw, _ = await export_file(client, {"export": "types"})

    assert b"\n4,=1+2," in raw
    assert b"\n5,@SUM(A1)," in raw


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_failure_mid_stream_leaves_no_object_and_no_open_upload(
    client: TestClient[Any, Any], s3: EmbeddedS3, settings: Any, fmt: str
) -> None:
    created = await create(client, {"export": "fails_midway", "format": fmt})

    done = await wait_until(client, created["id"])

    assert done["status"] == "failed"
    assert done["error"]["code"] == "query_failed"
    assert done["progress"]["bytes"] > 8 * 1024 * 1024  # it failed with parts uploaded
    assert objects_under(s3, settings.s3_prefix) == ([], [])


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
async def test_python_hook_export_round_trips(
    client: TestClient[Any, Any], conn: asyncpg.Connection[asyncpg.Record], fmt: str
) -> None:
    orders = await conn.fetchval("SELECT count(*) FROM demo.orders WHERE tenant = 'acme'")
    want = squares_rows(12_000, "acme", orders)  # more than one batch

    result, raw, _ = await export_file(
        client, {"export": "squares", "params": {"count": 12_000}, "format": fmt}
    )

    assert result["rows"] == len(want)
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(raw.decode())))
        assert rows[0] == ["n", "quarter_square", "label", "at"]
        assert [r[2] for r in rows[1:]] == [
            ("'" + w[2] if w[2][:1] == "=" else w[2]) for w in want
        ]  # tenant-bound, quotes and newlines intact; formula-like labels neutralised
        assert [int(r[0]) for r in rows[1:]] == [w[0] for w in want]
    elif fmt == "jsonl":
        got = [json.loads(line) for line in raw.decode().splitlines()]
        assert [
            (g["n"], Decimal(g["quarter_square"]), g["label"], datetime.fromisoformat(g["at"]))
            for g in got
        ] == want
    else:
        got = pq.read_table(io.BytesIO(raw), use_threads=False).to_pylist()
        assert [(g["n"], g["quarter_square"], g["label"], g["at"]) for g in got] == want
