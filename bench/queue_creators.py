"""The create load (a child of bench/queue_load.py): `total` creates by `concurrency` callers,
each caller its own tenant (exportd serializes one tenant's creates), timed one by one.

- http: `POST /v1/exports` (aiohttp, one connection per caller);
- db:   `exportd.db.exports.create_export` on a pool, what the POST handler runs;
- bare: INSERT a row and NOTIFY in one transaction: what any queue's enqueue costs at least.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final

import aiohttp
import asyncpg

from bench.queue_names import EMAIL, EXPORT_NAME, SUB, claims, tenant
from exportd.db.exports import create_export
from exportd.db.pool import create_pool
from exportd.db.rows import NewExport
from tests.support.database import SCHEMA
from tests.support.tokens import make_token

One = Callable[[int], Awaitable[None]]  # one create by caller number n

BARE_TABLE: Final = """
CREATE SCHEMA IF NOT EXISTS bench_q;
CREATE TABLE IF NOT EXISTS bench_q.creates (
    id uuid PRIMARY KEY, tenant text NOT NULL, body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
TRUNCATE bench_q.creates"""
BARE_INSERT: Final = "INSERT INTO bench_q.creates (id, tenant, body) VALUES ($1, $2, $3::jsonb)"
BARE_NOTIFY: Final = "SELECT pg_notify('bench_q_creates', $1::text)"
BODY: Final = {"export": EXPORT_NAME, "format": "csv"}
MAX_ATTEMPTS: Final = 5
NO_CAP: Final = 1_000_000


def new_export(n: int) -> NewExport:
    return NewExport(
        id=uuid.uuid4(),
        tenant=tenant(n),
        owner_sub=SUB,
        recipient=EMAIL,
        export_name=EXPORT_NAME,
        params={},
        format="csv",
        compression="none",
        file_name=f"{EXPORT_NAME}.csv",
    )


async def _http(params: Mapping[str, Any], stack: AsyncExitStack) -> One:
    concurrency = int(params["concurrency"])
    connector = aiohttp.TCPConnector(limit=concurrency)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(base_url=str(params["url"]), connector=connector)
    )
    tokens = [{"Authorization": f"Bearer {make_token(**claims(n))}"} for n in range(concurrency)]

    async def one(n: int) -> None:
        async with session.post("/v1/exports", json=BODY, headers=tokens[n]) as response:
            await response.read()
            if response.status != 202:
                raise RuntimeError(f"POST answered {response.status}")

    return one


async def _db(params: Mapping[str, Any], stack: AsyncExitStack) -> One:
    size = int(params["concurrency"])
    pool = await create_pool(str(params["dsn"]), schema=SCHEMA, min_size=size, max_size=size)
    stack.push_async_callback(pool.close)

    async def one(n: int) -> None:
        await create_export(pool, new_export(n), max_attempts=MAX_ATTEMPTS, queued_cap=NO_CAP)

    return one


async def _bare(params: Mapping[str, Any], stack: AsyncExitStack) -> One:
    size = int(params["concurrency"])
    pool = await asyncpg.create_pool(str(params["dsn"]), min_size=size, max_size=size)
    stack.push_async_callback(pool.close)
    body = json.dumps(BODY)

    async def one(n: int) -> None:
        key = uuid.uuid4()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(BARE_INSERT, key, tenant(n), body)
            await conn.execute(BARE_NOTIFY, str(key))

    return one


VARIANTS: Final = {"http": _http, "db": _db, "bare": _bare}


async def create(
    params: Mapping[str, Any], stack: AsyncExitStack
) -> Callable[[Callable[[str], None]], Awaitable[dict[str, Any]]]:
    """params: variant, concurrency, total, tenants (callers share tenants round-robin),
    url (http) or dsn. Result: seconds, each create's latency, errors."""
    one = await VARIANTS[str(params["variant"])](params, stack)
    return lambda say: _create(params, one)


async def _create(params: Mapping[str, Any], one: One) -> dict[str, Any]:
    total, concurrency = int(params["total"]), int(params["concurrency"])
    tenants = int(params.get("tenants", concurrency))
    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(range(total))

    async def caller(n: int) -> None:
        for _ in numbers:  # shared: callers take the next create as they free up
            started = time.monotonic()
            try:
                await one(n % tenants)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    return {
        "seconds": time.monotonic() - started,
        "latencies": latencies,
        "errors": errors[:20],
        "error_count": len(errors),
        "started_at": started,
    }
