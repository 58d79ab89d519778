"""A test's own connection to a test database, looking at exportd's schema first."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from typing import Final

import asyncpg

from exportd.config import Settings
from exportd.db.pool import in_schema


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
