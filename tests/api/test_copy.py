"""A COPY may outlast the connection's command timeout; it fails only when it stops moving; one
stopped mid-stream ends with its own error, and its connection is not reused."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from exportd.db import source


async def test_a_copy_longer_than_the_command_timeout_finishes(dsn: str) -> None:
    # asyncpg times a COPY as a whole: with the pool's timeout it would fail at 1 s here.
    conn = await asyncpg.connect(dsn, command_timeout=1)
    received = bytearray()

    async def output(data: bytes) -> None:
        received.extend(data)

    try:
        status = await source.copy_out(
            conn,
            "SELECT g, pg_sleep(0.001) FROM generate_series(1, 2000) AS g",
            [],
            output,
            format="csv",
        )
    finally:
        await conn.close()

    assert status == "COPY 2000"
    assert received.count(b"\n") == 2000


async def test_a_copy_that_stops_moving_fails(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)

    async def output(data: bytes) -> None:
        pass

    try:
        with pytest.raises(TimeoutError):
            await source.copy_out(
                conn, "SELECT 1 FROM pg_sleep(30)", [], output, stall_s=0.5, format="csv"
            )
    finally:
        conn.terminate()


class SinkFailed(Exception):
    pass


@pytest.mark.parametrize("stop", [SinkFailed, asyncio.CancelledError], ids=["error", "cancel"])
async def test_a_copy_stopped_mid_stream_ends_with_its_own_error(
    dsn: str, stop: type[BaseException]
) -> None:
    # With rows still in flight (the pause lets them fill the socket buffers), asyncpg 0.32
    # takes the next batch of data for the answer to its cancel of the COPY, and a ROLLBACK
    # on that connection failed with InternalClientError instead of this error.
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    sql = "SELECT g, repeat('x', 1000) FROM generate_series(1, 200000) AS g"
    chunks = 0

    async def output(data: bytes) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:
            await asyncio.sleep(0.2)
            raise stop

    try:
        with pytest.raises(stop):
            async with pool.acquire() as conn, source.snapshot(conn):
                await source.copy_out(conn, sql, [], output, format="csv")
        async with pool.acquire() as conn:  # the pool goes on with a sound connection
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
