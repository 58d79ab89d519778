"""Retention: a finished export's file expires (the expire job's fenced completion), and its
row is purged once the history window has passed."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from exportd.db.followups import Followups, export_finished
from exportd.db.jobs import DELETE_JOB
from exportd.db.pool import Executor, Pool
from exportd.db.rows import JobRow
from exportd.model import Event

# Only a succeeded export becomes expired (a failed or canceled one was only tidied).
MARK_EXPIRED: Final = """
UPDATE exports SET status = 'expired', version = version + 1
WHERE id = $1 AND status = 'succeeded'
RETURNING id"""


async def complete_expire(pool: Pool, job: JobRow, followups: Followups) -> bool:
    """Delete the expire job and mark its export expired (queuing the event), fenced by the
    lease: False when another claim holds the job now."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is None:
            return False
        if await conn.fetchval(MARK_EXPIRED, job.export_id) is not None:
            await export_finished(conn, [job.export_id], Event.EXPIRED, followups)
    return True


# Oldest first, a batch at a time, and never a row with work still queued for it (a webhook
# delivery still retrying, say): deleting the export would cascade that work away.
PURGE_HISTORY: Final = """
DELETE FROM exports WHERE id = ANY (ARRAY(
    SELECT id FROM exports
    WHERE status IN ('failed', 'canceled', 'expired') AND finished_at < now() - $1::interval
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.export_id = exports.id)
    ORDER BY finished_at
    LIMIT $2))"""

PURGE_BATCH: Final = 500


async def purge_history(conn: Executor, history: timedelta) -> int:
    """Delete one batch of exports finished longer than `history` ago (their downloads,
    links and deliveries go with them); the number deleted."""
    status = await conn.execute(PURGE_HISTORY, history, PURGE_BATCH)
    return int(status.rpartition(" ")[2])
