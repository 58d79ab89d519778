"""What the export benchmark adds to the embedded stack: the bench table and its catalog."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import asyncpg

from exportd.db.migrate import migrate
from exportd.dev.stack import Stack, running_stack
from exportd.export.definition import ALL_FORMATS
from tests.support.database import SCHEMA

BUCKET: Final = "exportd-bench"
EXPORT_NAME: Final = "bench_rows"
QUERY: Final = "SELECT id, n, created_at, label, amount, flag, meta FROM bench.rows ORDER BY id"

_TABLE: Final = """
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
-- UNLOGGED: loading skips the WAL; reading it is the same as reading a logged table.
CREATE UNLOGGED TABLE bench.rows (
    id bigint PRIMARY KEY,
    n int NOT NULL,
    created_at timestamptz NOT NULL,
    label text,
    amount numeric(12, 2),
    flag boolean NOT NULL,
    meta jsonb NOT NULL
)
"""

# ~120 bytes of CSV a row: 10 M rows are ~1.2 GB. Labels vary in length (md5 prefixes, so they
# do not compress to nothing); every tenth has quotes and a comma; some NULLs.
_FILL: Final = """
INSERT INTO bench.rows
SELECT
    g,
    (g * 7919) % 1000003,
    timestamptz '2024-01-01 00:00:00+00' + g * interval '1.37 second',
    CASE WHEN g % 10 = 0 THEN 'say "hi", ' || g
         WHEN g % 97 = 0 THEN NULL
         ELSE 'item ' || substr(md5(g::text), 1, (4 + g % 29)::int) END,
    CASE WHEN g % 50 = 0 THEN NULL ELSE ((g * 31) % 10000000) / 100.0 END,
    g % 3 = 0,
    jsonb_build_object('k', g % 1000, 'tag', 't' || (g % 17), 'ok', g % 2 = 0)
FROM generate_series($1::bigint, $2::bigint) AS g
"""

# Every format this exportd offers: the others are reported as not supported yet.
CATALOG: Final = f'''# Written by bench/export_bench.py for one run.
[exports.{EXPORT_NAME}]
title = "Benchmark rows"
description = "Every row of bench.rows, in id order."
tenant_scoped = false
formats = {json.dumps(list(ALL_FORMATS))}
sql = """
{QUERY}
"""
'''


@contextmanager
def bench_stack(root: Path) -> Iterator[tuple[Stack, Path]]:
    """The embedded stack under `root`, migrated, with the bench catalog; (stack, catalog)."""
    with running_stack(root, bucket=BUCKET, mail_dir=root / "mail") as stack:
        asyncio.run(migrate(stack.pg.uri, schema=SCHEMA))
        catalog_path = root / "catalog.toml"
        catalog_path.write_text(CATALOG)
        yield stack, catalog_path


def load_rows(dsn: str, rows: int, *, timeout_s: float) -> float:
    """Create and fill bench.rows (in parallel chunks, one per core); return seconds taken."""
    start = time.monotonic()
    asyncio.run(asyncio.wait_for(_load(dsn, rows), timeout_s))
    return time.monotonic() - start


async def _load(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_TABLE)
        await asyncio.gather(*(_fill(dsn, lo, hi) for lo, hi in _chunks(rows, os.cpu_count())))
        # Freeze and set hint bits now, so no variant pays for the first read of fresh pages.
        await conn.execute("VACUUM (FREEZE, ANALYZE) bench.rows")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _fill(dsn: str, lo: int, hi: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_FILL, lo, hi)
    finally:
        await conn.close()


def _chunks(rows: int, parts: int | None) -> list[tuple[int, int]]:
    parts = max(1, min(parts or 1, rows))
    bounds = [rows * i // parts for i in range(parts + 1)]
    return [(bounds[i] + 1, bounds[i + 1]) for i in range(parts)]


def server_version(dsn: str) -> str:
    async def fetch() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(fetch())
