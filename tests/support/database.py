"""A test's own connection to a test database, looking at exportd's schema first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Final

import asyncpg

from exportd.config import Settings
from exportd.db.exports import create_export
from exportd.db.pool import Pool, in_schema
from exportd.db.rows import BuildResult, JobRow, NewExport


def _default_schema() -> str:
    default = next(f.default for f in fields(Settings) if f.name == "database_schema")
    assert isinstance(default, str)
    return default


# The schema exportd keeps its tables in unless told otherwise.
SCHEMA: Final = _default_schema()


async def connect(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    """A plain connection (no codecs) whose unqualified names are exportd's tables."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn, server_settings=in_schema(SCHEMA)
    )
    return conn


# What the queue still owes now: every job but expiries not yet due (a succeeded export's
# waits out its retention, a failed or canceled one's tidy-up a couple of leases).
WORK_LEFT: Final = "SELECT count(*) FROM jobs WHERE kind <> 'expire' OR ready_at <= now()"


async def work_left(conn: asyncpg.Connection[asyncpg.Record]) -> int:
    left: int = await conn.fetchval(WORK_LEFT)
    return left


async def queue_drained(conn: asyncpg.Connection[asyncpg.Record], within: float = 60.0) -> None:
    """Wait until the queue owes nothing now: every build, mail and delivery has finished
    (one a killed replica held comes back once its lease expires)."""
    deadline = asyncio.get_running_loop().time() + within
    while (left := await work_left(conn)) != 0:
        assert asyncio.get_running_loop().time() < deadline, f"{left} jobs left"
        await asyncio.sleep(0.1)


async def queue_orders(pool: Pool, tenants: Sequence[str]) -> None:
    """A queued `orders` CSV export (and its build job) for each tenant named, in order."""
    for tenant in tenants:
        new = NewExport(
            id=uuid.uuid4(),
            tenant=tenant,
            owner_sub="u",
            recipient=None,
            export_name="orders",
            params={},
            format="csv",
            compression="none",
            file_name="x.csv",
        )
        await create_export(pool, new, max_attempts=3, queued_cap=100)


def built_file(job: JobRow) -> BuildResult:
    """What a build of a one-row CSV records: for completing builds without running one."""
    return BuildResult(
        object_key=f"t/{job.tenant}/{job.export_id}/x.csv",
        size=42,
        rows=1,
        sha256="0" * 64,
        content_type="text/csv",
        as_of=datetime.now(UTC),
    )
