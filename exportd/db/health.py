"""What operators read: queue depth for /metrics, and a liveness ping."""

from __future__ import annotations

from typing import Final

import asyncpg

from exportd.db.pool import Executor
from exportd.errors import DependencyRefused

# Queue depth by kind and state, for /metrics (finished jobs are deleted: the table holds
# what waits, mostly expiries due within the retention window).
QUEUE_DEPTH: Final = """
SELECT kind,
       CASE WHEN lease_token IS NOT NULL AND ready_at > now() THEN 'running'
            WHEN ready_at > now() THEN 'delayed'
            ELSE 'ready' END AS state,
       count(*) AS jobs
FROM jobs GROUP BY 1, 2"""


async def queue_depth(conn: Executor) -> list[tuple[str, str, int]]:
    return [(r["kind"], r["state"], r["jobs"]) for r in await conn.fetch(QUEUE_DEPTH)]


# How long the oldest claimable job of each kind has waited, for /metrics: since it became
# due, or was created (mails and webhooks enter the claim order with a head start).
OLDEST_READY: Final = """
SELECT kind, extract(epoch FROM now() - min(greatest(ready_at, created_at)))::float8 AS age
FROM jobs WHERE ready_at <= now() GROUP BY kind"""


async def oldest_ready(conn: Executor) -> list[tuple[str, float]]:
    return [(r["kind"], r["age"]) for r in await conn.fetch(OLDEST_READY)]


PING: Final = "SELECT 1"

# The server refused us: a wrong password or role, no such database.
_REFUSALS: Final = (
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


async def ping(conn: Executor) -> None:
    """Raise unless the database answers; DependencyRefused when it refuses our login."""
    try:
        await conn.fetchval(PING)
    except _REFUSALS as exc:
        raise DependencyRefused("refused our credentials", str(exc)) from exc
