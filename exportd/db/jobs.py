"""The queue: claim with SKIP LOCKED, heartbeats, and every write fenced by the lease token."""

from __future__ import annotations

import operator
import uuid
from datetime import timedelta
from typing import Final

from exportd.db.followups import Followups, export_finished
from exportd.db.pool import Executor, Pool
from exportd.db.rows import JobRow, Reading
from exportd.model import Event, JobKind

CLAIM_JOBS: Final = """
-- running: builds per tenant under a live lease (few rows: at most the fleet's workers)
WITH running AS (
    SELECT tenant, count(*) AS n FROM jobs
    WHERE lease_token IS NOT NULL AND kind = 'build' AND ready_at > now()
    GROUP BY tenant
),
-- next: claimable rows (due, or lease expired) in FIFO order that no other replica holds,
-- of the kinds this replica can run now ($4), skipping builds of tenants already at their
-- cap ($3); the LIMIT is the free worker slots (claim_statement)
next AS (
    SELECT id, lease_owner AS previous_owner FROM jobs
    WHERE ready_at <= now() AND kind = ANY($4::text[])
      AND (kind <> 'build' OR tenant NOT IN (SELECT tenant FROM running WHERE n >= $3))
    ORDER BY ready_at, id
    LIMIT {limit}
    FOR UPDATE SKIP LOCKED
),
-- ranked: within one batch too, a tenant gets no more builds than its cap leaves room for
ranked AS (
    SELECT jobs.id, jobs.kind, next.previous_owner, coalesce(running.n, 0) AS n,
           row_number() OVER (PARTITION BY jobs.tenant, jobs.kind ORDER BY jobs.ready_at, jobs.id)
               AS rn
    FROM jobs JOIN next ON next.id = jobs.id LEFT JOIN running ON running.tenant = jobs.tenant
),
-- claimed: a fresh lease token fences every later write; the attempt counts now, so a
-- job whose replica dies mid-run still runs out of attempts; an expired lease's owner is
-- returned, so the reclaim is logged
claimed AS (
    UPDATE jobs SET lease_owner = $1, lease_token = gen_random_uuid(),
                    ready_at = now() + $2::interval, attempts = jobs.attempts + 1
    FROM ranked
    WHERE jobs.id = ranked.id AND (ranked.kind <> 'build' OR ranked.n + ranked.rn <= $3)
    RETURNING jobs.*, ranked.previous_owner
),
-- started: a build's export shows running and its attempt count; progress starts over
started AS (
    UPDATE exports SET status = 'running', attempts = claimed.attempts,
                       progress_rows = 0, progress_bytes = 0, progress_rate = NULL,
                       progress_phase = 'building',
                       started_at = coalesce(exports.started_at, now()),
                       version = exports.version + 1
    FROM claimed
    WHERE exports.id = claimed.export_id AND claimed.kind = 'build'
      AND exports.status IN ('queued', 'running')
    RETURNING exports.*
)
-- each job with its export's row, which every handler reads first (a round trip per job
-- saved): a build's as `started` left it, any other's as this statement's snapshot shows
-- it (the claim changes no other). The job's columns are prefixed: the export's share
-- their names.
SELECT claimed.id AS job_id, claimed.kind AS job_kind, claimed.attempts AS job_attempts,
       claimed.max_attempts AS job_max_attempts, claimed.lease_token AS job_lease_token,
       claimed.created_at AS job_created_at, claimed.delivery_id AS job_delivery_id,
       claimed.previous_owner AS job_previous_owner, e.*
FROM claimed CROSS JOIN LATERAL (
    SELECT 0 AS job_export_row, started.* FROM started WHERE started.id = claimed.export_id
    UNION ALL
    SELECT 1, exports.* FROM exports WHERE exports.id = claimed.export_id
    ORDER BY 1 LIMIT 1
) AS e"""


def claim_statement(free: int) -> str:
    """CLAIM_JOBS for at most `free` jobs, a count exportd makes (never input).

    The count is written into the text rather than bound: PostgreSQL's generic plan for
    `LIMIT $n` assumes a tenth of the table and scans it whole, so every claim was planned
    afresh (0.3 ms of its CPU, as much as running it). With a constant, each connection
    keeps one plan per count; one made while the table was tiny (a scan) lasts until the
    next ANALYZE of `jobs` or asyncpg's statement lifetime (5 minutes), whichever is first.
    """
    return CLAIM_JOBS.replace("{limit}", str(operator.index(free)))


async def claim_jobs(
    conn: Executor,
    owner: str,
    free: int,
    lease: timedelta,
    *,
    tenant_cap: int,
    kinds: list[str],
) -> list[JobRow]:
    records = await conn.fetch(claim_statement(free), owner, lease, tenant_cap, kinds)
    return [JobRow.from_record(r) for r in records]


# Extends the lease; zero rows means another replica owns the job now.
HEARTBEAT: Final = """
UPDATE jobs SET ready_at = now() + $3::interval WHERE id = $1 AND lease_token = $2"""


async def heartbeat(conn: Executor, job: JobRow, lease: timedelta) -> bool:
    return await conn.execute(HEARTBEAT, job.id, job.lease_token, lease) == "UPDATE 1"


UPDATE_PROGRESS: Final = """
UPDATE exports SET progress_rows = $3, progress_bytes = $4, rows_estimate = $5,
                   progress_rate = $6, progress_phase = $7, version = exports.version + 1
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id
  AND exports.status = 'running'"""


async def update_progress(conn: Executor, job: JobRow, reading: Reading, phase: str) -> bool:
    status = await conn.execute(
        UPDATE_PROGRESS,
        job.id,
        job.lease_token,
        reading.rows,
        reading.size,
        reading.estimate,
        reading.rate,
        phase,
    )
    return status == "UPDATE 1"


# What a running worker checks when its export changes: was it canceled?
EXPORT_CANCELED: Final = "SELECT status = 'canceled' FROM exports WHERE id = $1"


async def export_canceled(conn: Executor, export_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(EXPORT_CANCELED, export_id))


# Fenced delete: the claim that holds the token, and only it, finishes the job.
DELETE_JOB: Final = "DELETE FROM jobs WHERE id = $1 AND lease_token = $2 RETURNING export_id"


async def finish_job(conn: Executor, job: JobRow) -> bool:
    """Delete a job that had nothing (more) to do; False when the lease was lost."""
    return await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is not None


# Back off: the job becomes claimable at $3. A build's export, or a succeeded one's mail,
# shows the error ($4 code, $5 the owner's message, $6 the id the details are logged under)
# meanwhile; a failed export keeps showing why it failed.
RETRY_JOB: Final = """
WITH retried AS (
    UPDATE jobs SET lease_owner = NULL, lease_token = NULL, last_error_code = $4,
                    ready_at = now() + $3::interval
    WHERE id = $1 AND lease_token = $2
    RETURNING export_id, kind
),
shown AS (
    UPDATE exports SET status = CASE WHEN retried.kind = 'build' THEN 'queued'
                                     ELSE exports.status END,
                       error_code = $4, error_message = $5, error_id = $6,
                       version = exports.version + 1
    FROM retried WHERE exports.id = retried.export_id
      AND (retried.kind = 'build' OR (retried.kind = 'notify' AND exports.status = 'succeeded'))
)
SELECT count(*) FROM retried"""


async def retry_job(
    conn: Executor, job: JobRow, delay: timedelta, code: str, message: str, error_id: str
) -> bool:
    retried = await conn.fetchval(
        RETRY_JOB, job.id, job.lease_token, delay, code, message, error_id
    )
    return bool(retried)


FAIL_BUILD: Final = """
UPDATE exports SET status = 'failed', error_code = $2, error_message = $3, error_id = $4,
                   finished_at = now(), version = version + 1
WHERE id = $1"""

# The mail failed: a succeeded export stands, and shows why no mail came.
FAIL_NOTIFY: Final = """
UPDATE exports SET error_code = $2, error_message = $3, error_id = $4, version = version + 1
WHERE id = $1 AND status = 'succeeded'"""

FAIL_DELIVERY: Final = "UPDATE webhook_deliveries SET state = 'failed' WHERE id = $1"


async def fail_job(
    pool: Pool, job: JobRow, code: str, message: str, error_id: str, followups: Followups
) -> bool:
    """Give up on the job: delete it and record the failure where its owner looks (a build's
    export fails, and what follows a failure is queued)."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is None:
            return False
        if job.kind == JobKind.BUILD:
            await conn.execute(FAIL_BUILD, job.export_id, code, message, error_id)
            await export_finished(conn, [job.export_id], Event.FAILED, followups)
        elif job.kind == JobKind.NOTIFY:
            await conn.execute(FAIL_NOTIFY, job.export_id, code, message, error_id)
        elif job.kind == JobKind.WEBHOOK:
            await conn.execute(FAIL_DELIVERY, job.delivery_id)
    return True


# Hand a job back untouched (shutdown): runnable elsewhere at once, and not an attempt.
RELEASE_JOB: Final = """
WITH released AS (
    UPDATE jobs SET lease_owner = NULL, lease_token = NULL, ready_at = now(),
                    attempts = greatest(jobs.attempts - 1, 0)
    WHERE id = $1 AND lease_token = $2
    RETURNING export_id, kind
)
UPDATE exports SET status = 'queued', version = exports.version + 1
FROM released WHERE exports.id = released.export_id AND released.kind = 'build'
  AND exports.status = 'running'"""


async def release_job(conn: Executor, job: JobRow) -> None:
    await conn.execute(RELEASE_JOB, job.id, job.lease_token)
