"""The per-tenant queued cap is one fleet-wide number: concurrent POSTs through several
replicas never push a tenant past it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg

from tests.support.tokens import auth

CAP = 20
POSTS = 90
ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}


async def test_concurrent_posts_through_three_replicas_never_overshoot_the_queued_cap(
    replicas: Callable[..., Any], conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    # API replicas only: nothing is claimed, so every accepted export stays queued.
    fleet = await replicas(3, role="api", EXPORTD_TENANT_MAX_QUEUED=str(CAP))
    headers = auth()

    async with aiohttp.ClientSession() as http:

        async def post(n: int) -> int:
            url = f"{fleet[n % len(fleet)].url}/v1/exports"
            async with http.post(url, json=ORDERS, headers=headers) as response:
                return response.status

        statuses = Counter(await asyncio.gather(*(post(n) for n in range(POSTS))))

    assert statuses == {202: CAP, 429: POSTS - CAP}, statuses
    queued = await conn.fetchval("SELECT count(*) FROM exports WHERE status = 'queued'")
    assert queued == CAP
