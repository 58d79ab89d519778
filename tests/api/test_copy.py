"""A COPY may outlast the connection's command timeout; it fails only when it stops moving."""

from __future__ import annotations

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
