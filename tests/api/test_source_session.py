"""An export's SQL runs on a pooled source connection that is released without asyncpg's
reset: whatever it changed in the session is undone by the end of its transaction, so the
next export on that connection starts clean, whether the first ended well or not."""

from __future__ import annotations

import asyncpg
import pytest

from exportd.db import source
from exportd.db.pool import Conn, create_pool

# What a catalog query or a hook could leave behind in its session.
DIRTY = [
    "SELECT set_config('app.tenant', 'acme', false)",
    "SELECT pg_advisory_lock(4242)",
    "DECLARE held CURSOR WITH HOLD FOR SELECT 1",
    "LISTEN somewhere",
]

LEFT_BEHIND = """
SELECT current_setting('app.tenant', true) AS setting,
       (SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks,
       (SELECT count(*) FROM pg_cursors WHERE name = 'held') AS cursors,
       (SELECT count(*) FROM pg_listening_channels()) AS channels,
       pg_backend_pid() AS pid"""


class ExportFailed(Exception):
    pass


async def dirty_export(conn: Conn) -> int:
    for statement in DIRTY:
        await conn.execute(statement)
    pid: int = await conn.fetchval("SELECT pg_backend_pid()")
    return pid


@pytest.mark.parametrize("fails", [False, True], ids=["ended", "failed"])
async def test_an_exports_session_changes_do_not_reach_the_next(dsn: str, fails: bool) -> None:
    pool = await create_pool(dsn, schema=None, min_size=1, max_size=1, codecs=False)
    try:
        try:
            async with pool.acquire() as conn, source.snapshot(conn):
                pid = await dirty_export(conn)
                if fails:
                    raise ExportFailed
        except ExportFailed:
            pass
        async with pool.acquire() as conn:
            left = await conn.fetchrow(LEFT_BEHIND)
    finally:
        await pool.close()

    assert left is not None
    assert left["pid"] == pid, "the same connection, reused"
    assert (left["setting"] or "", left["locks"], left["cursors"], left["channels"]) == (
        "",
        0,
        0,
        0,
    )


async def test_the_snapshot_is_read_only(dsn: str) -> None:
    pool = await create_pool(dsn, schema=None, min_size=1, max_size=1, codecs=False)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            async with pool.acquire() as conn, source.snapshot(conn):
                await conn.execute("CREATE TABLE written (x int)")
    finally:
        await pool.close()
