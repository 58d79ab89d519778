"""What operators read: queue depth for /metrics, and a liveness ping."""

from __future__ import annotations

from typing import Final

from exportd.db.pool import Executor

# Queue depth by kind and state, for /metrics (the table is small: finished jobs are deleted).
QUEUE_DEPTH: Final = """
SELECT kind,
       CASE WHEN lease_token IS NOT NULL AND ready_at > now() THEN 'running'
            WHEN ready_at > now() THEN 'delayed'
            ELSE 'ready' END AS state,
       count(*) AS jobs
FROM jobs GROUP BY 1, 2"""


async def queue_depth(conn: Executor) -> list[tuple[str, str, int]]:
    return [(r["kind"], r["state"], r["jobs"]) for r in await conn.fetch(QUEUE_DEPTH)]


PING: Final = "SELECT 1"


async def ping(conn: Executor) -> None:
    await conn.fetchval(PING)
