"""Completions that end together commit together (group commit).

A job's fenced completion joins a batch; one statement writes the batch and returns the jobs
whose lease still held. No timer: a lone completion is written at once, and those arriving
while a write is in flight go in the next one, so N jobs finishing together cost one round
trip and one commit instead of N, and an idle replica waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import timedelta
from typing import Final, Generic, TypeVar

from exportd.db.followups import Followups, export_finished
from exportd.db.pool import Pool
from exportd.db.rows import BuildResult, JobRow
from exportd.model import Event

# A bound on one statement's arrays; more waiting go in the next write.
MAX_BATCH: Final = 256

# The fenced batch delete: only the claims that still hold their tokens finish their jobs.
# A mail's export records it as sent.
COMPLETE_NOTIFIES: Final = """
WITH done AS (
    DELETE FROM jobs USING unnest($1::bigint[], $2::uuid[]) AS fence (id, token)
    WHERE jobs.id = fence.id AND jobs.lease_token = fence.token
    RETURNING jobs.id, jobs.export_id
),
marked AS (
    UPDATE exports SET notified_at = now(), version = exports.version + 1
    FROM done WHERE exports.id = done.export_id AND exports.notified_at IS NULL
)
SELECT id FROM done"""

# The same fence for builds, each export recording its file; what follows success is queued
# by the next statement of the transaction, for the exports this returns.
COMPLETE_BUILDS: Final = """
WITH result AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::bigint[],
                         $6::text[], $7::text[], $8::timestamptz[])
        AS r (job_id, token, object_key, size, rows, sha256, content_type, as_of)
),
done AS (
    DELETE FROM jobs USING result
    WHERE jobs.id = result.job_id AND jobs.lease_token = result.token
    RETURNING jobs.id, jobs.export_id
)
UPDATE exports SET status = 'succeeded', object_key = result.object_key,
                   result_size = result.size, result_rows = result.rows,
                   result_sha256 = result.sha256, content_type = result.content_type,
                   as_of = result.as_of, progress_rows = result.rows,
                   progress_bytes = result.size, error_code = NULL, error_message = NULL,
                   error_id = NULL, finished_at = now(), expires_at = now() + $9::interval,
                   version = exports.version + 1
FROM done JOIN result ON result.job_id = done.id
WHERE exports.id = done.export_id
RETURNING done.id, exports.id AS export_id"""

T = TypeVar("T")


class _Group(Generic[T]):
    """Writes what was submitted while the previous write ran, in one call of `write`, which
    returns the ids of the jobs whose lease held."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Collection[int]]]) -> None:
        self._write = write
        self._waiting: list[tuple[int, T, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, job_id: int, item: T) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((job_id, item, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="completions")
        return await done

    async def _drain(self) -> None:
        batch: list[tuple[int, T, asyncio.Future[bool]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    held = await self._write([item for _, item, _ in batch])
                except Exception as exc:  # each waiter's job fails (and retries) on its own
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for job_id, _, done in batch:
                    if not done.done():
                        done.set_result(job_id in held)
        except BaseException:  # the loop is going away: nobody may wait forever
            for _, _, done in batch + self._waiting:
                done.cancel()
            raise
        finally:
            self._writer = None


class Completions:
    """The replica's completions of mails and builds, written a batch at a time."""

    def __init__(self, pool: Pool, *, retention: timedelta, followups: Followups) -> None:
        self._pool = pool
        self._retention = retention
        self._followups = followups
        self._notifies: _Group[JobRow] = _Group(self._write_notifies)
        self._builds: _Group[tuple[JobRow, BuildResult]] = _Group(self._write_builds)

    async def mail_sent(self, job: JobRow) -> bool:
        """Record the mail as sent and delete the notify job; False when the lease was lost."""
        return await self._notifies.submit(job.id, job)

    async def build_done(self, job: JobRow, result: BuildResult) -> bool:
        """Record the file, delete the build job and queue what follows, all or nothing;
        False when the lease was lost."""
        return await self._builds.submit(job.id, (job, result))

    async def _write_notifies(self, jobs: Sequence[JobRow]) -> set[int]:
        records = await self._pool.fetch(
            COMPLETE_NOTIFIES, [j.id for j in jobs], [j.lease_token for j in jobs]
        )
        return {r["id"] for r in records}

    async def _write_builds(self, built: Sequence[tuple[JobRow, BuildResult]]) -> set[int]:
        async with self._pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(
                COMPLETE_BUILDS,
                [j.id for j, _ in built],
                [j.lease_token for j, _ in built],
                [r.object_key for _, r in built],
                [r.size for _, r in built],
                [r.rows for _, r in built],
                [r.sha256 for _, r in built],
                [r.content_type for _, r in built],
                [r.as_of for _, r in built],
                self._retention,
            )
            if records:
                finished = [r["export_id"] for r in records]
                await export_finished(conn, finished, Event.SUCCEEDED, self._followups)
        return {r["id"] for r in records}
