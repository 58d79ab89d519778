"""The bounded worker pool: runs claimed jobs with heartbeats, then retries or fails them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog

from exportd.db import jobs
from exportd.db.followups import Followups
from exportd.db.pool import Pool
from exportd.db.rows import JobRow
from exportd.errors import JobFailure, LeaseLost, new_error_id
from exportd.logs import Log
from exportd.metrics import Metrics
from exportd.model import JobKind
from exportd.queue.backoff import Retry
from exportd.queue.failures import classify
from exportd.queue.handler import Handlers
from exportd.queue.listener import Listener

log = structlog.get_logger(__name__)


class _Stop:
    """Why the heartbeat stopped a job's work: "canceled" or "lease_lost"."""

    reason: str | None = None


class WorkerPool:
    """At most `size` jobs at once; the dispatcher never claims more than `free`."""

    def __init__(
        self,
        *,
        pool: Pool,
        handlers: Handlers,
        listener: Listener,
        metrics: Metrics,
        size: int,
        lease: timedelta,
        retry: Mapping[str, Retry],
        followups: Followups,
        on_failure: Callable[[JobFailure], None] = lambda failure: None,
    ) -> None:
        self._pool = pool
        self._handlers = handlers
        self._listener = listener
        self._metrics = metrics
        self._size = size
        self._lease = lease
        # Each kind's retry schedule (every kind has one).
        self._retry = retry
        self._followups = followups
        # Told of every failure: one that says a dependency is away is a readiness hint.
        self._on_failure = on_failure
        self._on_free: list[Callable[[], None]] = []
        self._running: dict[asyncio.Task[None], JobRow] = {}
        self._releasing = False

    @property
    def free(self) -> int:
        return self._size - len(self._running)

    def on_free(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a slot frees up."""
        self._on_free.append(callback)

    def start(self, job: JobRow) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}-{job.kind}")
        self._running[task] = job
        self._metrics.jobs_running.labels(kind=job.kind).inc()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        job = self._running.pop(task, None)
        if job is not None:
            self._metrics.jobs_running.labels(kind=job.kind).dec()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("job.crashed", exc_info=exc)
        for callback in self._on_free:
            callback()

    async def stop(self, grace: timedelta) -> None:
        """Let running jobs finish within `grace`, then hand the rest back to the queue."""
        tasks = list(self._running)
        if not tasks:
            return
        log.info("workers.draining", running=len(tasks), grace_s=grace.total_seconds())
        _, pending = await asyncio.wait(tasks, timeout=grace.total_seconds())
        self._releasing = True
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, job: JobRow) -> None:
        bound = log.bind(
            job_id=job.id,
            kind=job.kind,
            export_id=str(job.export_id),
            tenant=job.tenant,
            attempt=job.attempts,
        )
        if job.attempts > job.max_attempts:
            # Only a claim that outlived its lease (the replica died) gets here.
            error_id = new_error_id()
            await jobs.fail_job(
                self._pool,
                job,
                "attempts_exhausted",
                f"Gave up after {job.max_attempts} attempts.",
                error_id,
                self._followups,
            )
            self._ended(job, bound.warning, "exhausted", error_id=error_id)
            return
        bound.info("job.started")
        handler = self._handlers[job.kind]
        work = asyncio.create_task(handler(job, bound), name=f"work-{job.id}")
        stop = _Stop()
        beat = asyncio.create_task(self._heartbeat(job, work, stop), name=f"heartbeat-{job.id}")
        try:
            await work
        except asyncio.CancelledError:
            if stop.reason is not None:
                await self._stopped(job, stop.reason, bound)
            elif self._releasing:
                await jobs.release_job(self._pool, job)
                self._ended(job, bound.info, "released")
            else:
                raise
        except LeaseLost:
            await self._stopped(job, await self._lost_or_canceled(job), bound)
        except Exception as exc:
            await self._failed(job, classify(exc), bound)
        else:
            self._ended(job, bound.info, "finished")
        finally:
            beat.cancel()
            if not work.done():
                work.cancel()

    async def _failed(self, job: JobRow, failure: JobFailure, bound: Log) -> None:
        """Retry or fail the job; the owner sees the code, the message and an id, under which
        the log keeps the detail."""
        self._on_failure(failure)
        error_id = new_error_id()
        logged = {"code": failure.code, "error": failure.detail, "error_id": error_id}
        if failure.retryable and job.attempts < job.max_attempts:
            delay = self._retry[job.kind].delay(job.attempts)
            await jobs.retry_job(self._pool, job, delay, failure.code, failure.message, error_id)
            delay_s = round(delay.total_seconds(), 3)
            self._ended(job, bound.warning, "retrying", delay_s=delay_s, **logged)
        else:
            await jobs.fail_job(
                self._pool, job, failure.code, failure.message, error_id, self._followups
            )
            self._ended(job, bound.error, "failed", **logged)

    async def _lost_or_canceled(self, job: JobRow) -> str:
        """Why the job's lease is gone: its build's export was canceled (the user's doing, not
        a fault), or another replica holds it now."""
        if job.kind != JobKind.BUILD:
            return "lease_lost"
        try:
            canceled = await jobs.export_canceled(self._pool, job.export_id)
        except Exception:  # the database is away: say what is sure
            return "lease_lost"
        return "canceled" if canceled else "lease_lost"

    async def _stopped(self, job: JobRow, reason: str, bound: Log) -> None:
        if reason == "canceled":
            self._ended(job, bound.info, "canceled")
        else:
            self._metrics.lease_losses.labels(kind=job.kind).inc()
            self._ended(job, bound.warning, "lease_lost")

    def _ended(self, job: JobRow, log_at: Callable[..., Any], outcome: str, **details: Any) -> None:
        """Log how a run ended (event `job.<outcome>`) and count it."""
        log_at(f"job.{outcome}", **details)
        self._metrics.jobs_finished.labels(kind=job.kind, outcome=outcome).inc()
        if outcome == "retrying":
            self._metrics.job_retries.labels(kind=job.kind, code=details["code"]).inc()

    async def _heartbeat(self, job: JobRow, work: asyncio.Task[None], stop: _Stop) -> None:
        """Extend the lease every third of it; stop the work once the lease is gone or stale.

        For a build, a change to the export wakes it early through NOTIFY to see whether the
        export was canceled, so a canceled build stops in moments rather than at the next
        beat. (Not a lease check: the worker's own completion also changes the export.) The
        claim's own change is known and wakes nothing. Other kinds run on finished exports,
        which cancel does not touch.
        """
        interval = self._lease.total_seconds() / 3
        last_ok = time.monotonic()
        next_beat = last_ok + interval
        builds = job.kind == JobKind.BUILD
        with self._listener.watch(job.export_id, known=job.export.version) as changed:
            while True:
                # Progress bumps the export too, so events come often: they must not
                # postpone the beat that keeps the lease.
                try:
                    await asyncio.wait_for(changed.wait(), max(0.0, next_beat - time.monotonic()))
                    changed.clear()
                    if not builds:
                        continue
                    beating = False
                except TimeoutError:
                    next_beat = time.monotonic() + interval
                    beating = True
                try:
                    if beating:
                        alive = await jobs.heartbeat(self._pool, job, self._lease)
                        reason = "" if alive else await self._lost_or_canceled(job)
                    else:
                        alive = not await jobs.export_canceled(self._pool, job.export_id)
                        reason = "canceled"
                    if alive:
                        last_ok = time.monotonic()
                except Exception as exc:  # the database is away: keep trying until lease ends
                    log.warning("job.heartbeat_failed", job_id=job.id, error=str(exc))
                    alive = time.monotonic() - last_ok < self._lease.total_seconds()
                    reason = "lease_lost"
                if not alive:
                    stop.reason = reason
                    work.cancel()
                    return
