"""The claim load (a child of bench/queue_load.py): claimers drain a seeded queue.

- notify / build: exportd's own statements. Each claimer is a replica's worth: one pool (the
  size of exportd's queue pool) and its Completions, `claim_jobs` for 16 jobs, then every
  job's completion at once (the ones that end together are written as one batch), then
  again. `notify`: mail jobs, each completed by `Completions.mail_sent`. `build`: builds
  completed by `Completions.build_done`, which queues each export's mail (and expiry) in the
  same transaction; the claimers take the mail jobs too, as a replica would, so the
  queue drains 2 jobs per export (the expiries wait for their day at the index's far end);
- bare: one connection per claimer, `UPDATE … FOR UPDATE SKIP LOCKED LIMIT 16` and a batch
  DELETE of what it claimed: the least any SKIP LOCKED queue does per batch.

The driver seeds the jobs (seed()) before the clock starts; each claimer stops when its claim
comes back empty.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any, Final

import asyncpg

from bench.queue_names import EXPORT_NAME, SUB
from exportd.db.completions import Completions
from exportd.db.followups import Followups
from exportd.db.jobs import claim_jobs
from exportd.db.pool import Pool, create_pool
from exportd.db.rows import JobRow
from tests.support.database import SCHEMA, built_file

BATCH: Final = 16
LEASE: Final = timedelta(seconds=30)
NO_CAP: Final = 1_000_000
TENANTS: Final = 16
FOLLOWUPS: Final = Followups(attempts=5, webhook_attempts=12, cleanup_after=2 * LEASE)
RETENTION: Final = timedelta(days=7)

# --- seeding (the driver, before the clock) ------------------------------------------------

SEED_EXPORTS: Final = f"""
INSERT INTO exports (id, tenant, owner_sub, export_name, format, file_name, status)
SELECT gen_random_uuid(), 'bench' || (g % {TENANTS}), '{SUB}', '{EXPORT_NAME}', 'csv', 'x.csv', $2
FROM generate_series(1, $1::int) AS g"""
SEED_JOBS: Final = """
INSERT INTO jobs (kind, export_id, tenant, max_attempts)
SELECT $1, id, tenant, 5 FROM exports ORDER BY created_at, id"""
BARE_TABLE: Final = """
CREATE SCHEMA IF NOT EXISTS bench_q;
CREATE TABLE IF NOT EXISTS bench_q.jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ready_at timestamptz NOT NULL DEFAULT now(),
    lease_token uuid,
    attempts int NOT NULL DEFAULT 0,
    payload text NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready_idx ON bench_q.jobs (ready_at, id);
TRUNCATE bench_q.jobs"""
BARE_SEED: Final = """
INSERT INTO bench_q.jobs (payload) SELECT 'job ' || g FROM generate_series(1, $1::int) AS g"""

BARE_CLAIM: Final = """
WITH next AS (
    SELECT id FROM bench_q.jobs WHERE ready_at <= now() ORDER BY ready_at, id
    LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE bench_q.jobs SET lease_token = gen_random_uuid(), attempts = jobs.attempts + 1,
                        ready_at = now() + interval '30 seconds'
FROM next WHERE jobs.id = next.id
RETURNING jobs.id"""
BARE_DELETE: Final = "DELETE FROM bench_q.jobs WHERE id = ANY($1::bigint[])"


async def seed(conn: asyncpg.Connection[asyncpg.Record], variant: str, jobs: int) -> None:
    """Put `jobs` claimable jobs of the variant's kind in its (emptied) queue."""
    if variant == "bare":
        await conn.execute(BARE_TABLE)
        await conn.execute(BARE_SEED, jobs)
        await conn.execute("VACUUM ANALYZE bench_q.jobs")
        return
    status = "succeeded" if variant == "notify" else "queued"
    async with conn.transaction():
        await conn.execute(SEED_EXPORTS, jobs, status)
        await conn.execute(SEED_JOBS, variant)
    await conn.execute("VACUUM ANALYZE exports, jobs")


# --- the claimers (the child) ---------------------------------------------------------------


async def _complete(completions: Completions, job: JobRow) -> bool:
    if job.kind == "notify":
        return await completions.mail_sent(job)
    return await completions.build_done(job, built_file(job))


def kinds_of(variant: str) -> list[str]:
    return ["build", "notify"] if variant == "build" else [variant]


def jobs_of(variant: str, seeded: int) -> int:
    """How many jobs the claimers complete for `seeded` seeded ones: a build brings its mail."""
    return 2 * seeded if variant == "build" else seeded


async def _exportd_claimer(pool: Pool, kinds: list[str]) -> int:
    owner, done = f"queue-bench-{uuid.uuid4().hex[:8]}", 0
    completions = Completions(pool, retention=RETENTION, followups=FOLLOWUPS)
    while True:
        async with pool.acquire() as conn:
            jobs = await claim_jobs(conn, owner, BATCH, LEASE, tenant_cap=NO_CAP, kinds=kinds)
        if not jobs:
            return done
        done += sum(await asyncio.gather(*(_complete(completions, job) for job in jobs)))


async def _bare_claimer(conn: asyncpg.Connection[asyncpg.Record]) -> int:
    done = 0
    while True:
        ids = [r["id"] for r in await conn.fetch(BARE_CLAIM, BATCH)]
        if not ids:
            return done
        await conn.execute(BARE_DELETE, ids)
        done += len(ids)


async def claim(
    params: Mapping[str, Any], stack: AsyncExitStack
) -> Callable[[Callable[[str], None]], Awaitable[dict[str, Any]]]:
    """params: variant (notify | build | bare), claimers, dsn, pool_size. Connections open
    before the clock starts. Result: jobs done, seconds from the first claim to the last
    completion."""
    variant, dsn = str(params["variant"]), str(params["dsn"])
    claimers: list[Awaitable[int]] = []
    for _ in range(int(params["claimers"])):
        if variant == "bare":
            conn = await asyncpg.connect(dsn)
            stack.push_async_callback(conn.close)
            claimers.append(_bare_claimer(conn))
        else:
            size = int(params["pool_size"])
            pool = await create_pool(dsn, schema=SCHEMA, min_size=size, max_size=size)
            stack.push_async_callback(pool.close)
            claimers.append(_exportd_claimer(pool, kinds_of(variant)))

    async def run(say: Callable[[str], None]) -> dict[str, Any]:
        started = time.monotonic()
        done = await asyncio.gather(*claimers)
        return {"jobs": sum(done), "seconds": time.monotonic() - started}

    return run
