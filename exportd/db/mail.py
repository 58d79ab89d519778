"""The mail's bookkeeping: at most one send per export, fenced by the notify job's lease."""

from __future__ import annotations

from typing import Final

from exportd.db.jobs import DELETE_JOB
from exportd.db.pool import Executor, Pool
from exportd.db.rows import JobRow

# Fenced claim of the one send: zero rows when the lease is lost or a send was begun before.
BEGIN_MAIL: Final = """
UPDATE exports SET mail_attempted_at = now()
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id
  AND exports.mail_attempted_at IS NULL AND exports.notified_at IS NULL
RETURNING exports.id"""


async def begin_mail(conn: Executor, job: JobRow) -> bool:
    return await conn.fetchval(BEGIN_MAIL, job.id, job.lease_token) is not None


# The SMTP server refused the mail (nothing was delivered): a later attempt may send it.
MAIL_REFUSED: Final = """
UPDATE exports SET mail_attempted_at = NULL
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id"""


async def mail_refused(conn: Executor, job: JobRow) -> None:
    await conn.execute(MAIL_REFUSED, job.id, job.lease_token)


MARK_NOTIFIED: Final = """
UPDATE exports SET notified_at = now(), version = version + 1
WHERE id = $1 AND notified_at IS NULL"""


async def complete_notify(pool: Pool, job: JobRow) -> bool:
    """Record the mail as sent and delete the notify job, fenced by its lease."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is None:
            return False
        await conn.execute(MARK_NOTIFIED, job.export_id)
    return True
