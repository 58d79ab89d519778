"""Completions that end together are written together, and the batch is fenced job by job."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from exportd.db import jobs
from exportd.db.completions import Completions
from exportd.db.followups import Followups
from exportd.db.pool import Pool, create_pool
from exportd.db.rows import JobRow
from tests.support.database import SCHEMA, built_file, queue_orders

LEASE = timedelta(seconds=30)
FOLLOWUPS = Followups(attempts=3, webhook_attempts=3, cleanup_after=2 * LEASE)
BATCH = 8


@pytest.fixture
async def pool(dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(dsn, schema=SCHEMA, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def claim(pool: Pool, kind: str, count: int) -> list[JobRow]:
    claimed = await jobs.claim_jobs(pool, "me", count, LEASE, tenant_cap=100, kinds=[kind])
    assert len(claimed) == count
    return claimed


async def steal(conn: asyncpg.Connection[asyncpg.Record], job: JobRow) -> None:
    """Another replica's claim took the job over: its token is not this claim's any more."""
    await conn.execute("UPDATE jobs SET lease_token = gen_random_uuid() WHERE id = $1", job.id)


async def seed_mails(conn: asyncpg.Connection[asyncpg.Record], count: int) -> None:
    """`count` succeeded exports, each with its mail job queued."""
    await conn.execute(
        """
        WITH e AS (
            INSERT INTO exports (id, tenant, owner_sub, export_name, format, file_name, status)
            SELECT gen_random_uuid(), 'acme', 'u', 'orders', 'csv', 'x.csv', 'succeeded'
            FROM generate_series(1, $1::int) RETURNING id, tenant
        )
        INSERT INTO jobs (kind, export_id, tenant, max_attempts) SELECT 'notify', id, tenant, 3
        FROM e""",
        count,
    )


async def test_builds_that_end_together_commit_together_and_only_held_leases_finish(
    pool: Pool, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    await queue_orders(pool, ["acme"] * BATCH)
    builds = await claim(pool, "build", BATCH)
    lost = builds[3]
    await steal(conn, lost)
    completions = Completions(pool, retention=timedelta(days=1), followups=FOLLOWUPS)

    done = await asyncio.gather(*(completions.build_done(b, built_file(b)) for b in builds))

    assert done == [b is not lost for b in builds]
    rows = {
        r["id"]: r
        for r in await conn.fetch("SELECT id, status, result_rows, finished_at FROM exports")
    }
    held = [b for b in builds if b is not lost]
    assert all(rows[b.export_id]["status"] == "succeeded" for b in held)
    assert all(rows[b.export_id]["result_rows"] == 1 for b in held)
    assert rows[lost.export_id]["status"] == "running"
    # One transaction: every completion carries its one timestamp.
    assert len({rows[b.export_id]["finished_at"] for b in held}) == 1
    followups = await conn.fetch("SELECT export_id, kind FROM jobs WHERE kind <> 'build'")
    assert sorted((r["export_id"], r["kind"]) for r in followups) == sorted(
        (b.export_id, kind) for b in held for kind in ("expire", "notify")
    )
    assert await conn.fetchval("SELECT lease_token FROM jobs WHERE id = $1", lost.id) is not None


async def test_mails_that_end_together_are_recorded_together_and_fenced(
    pool: Pool, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    await seed_mails(conn, BATCH)
    mails = await claim(pool, "notify", BATCH)
    lost = mails[0]
    await steal(conn, lost)
    completions = Completions(pool, retention=timedelta(days=1), followups=FOLLOWUPS)

    sent = await asyncio.gather(*(completions.mail_sent(m) for m in mails))

    assert sent == [m is not lost for m in mails]
    notified = {r["id"]: r["notified_at"] for r in await conn.fetch("SELECT * FROM exports")}
    assert notified[lost.export_id] is None
    assert len({notified[m.export_id] for m in mails if m is not lost}) == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 1  # the stolen job stays


async def test_a_failed_write_fails_every_completion_in_it(
    pool: Pool, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    await seed_mails(conn, 3)
    mails = await claim(pool, "notify", 3)
    completions = Completions(pool, retention=timedelta(days=1), followups=FOLLOWUPS)
    await pool.close()  # the database is out of reach for this replica

    outcomes = await asyncio.gather(
        *(completions.mail_sent(m) for m in mails), return_exceptions=True
    )

    assert all(isinstance(o, asyncpg.InterfaceError) for o in outcomes)
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE lease_token IS NOT NULL") == 3
