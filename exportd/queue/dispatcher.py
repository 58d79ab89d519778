"""The dispatcher: wakes on NOTIFY or a jittered sweep and claims at most the pool's free slots."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from exportd.db import exports, jobs, retention
from exportd.db.pool import Pool, is_unavailable
from exportd.metrics import Metrics
from exportd.queue.backoff import backoff
from exportd.queue.listener import Listener
from exportd.queue.workers import WorkerPool

log = structlog.get_logger(__name__)

CLAIM_RETRY_BASE: Final = timedelta(milliseconds=200)
CLAIM_RETRY_MAX: Final = timedelta(seconds=10)


class Dispatcher:
    """Claims jobs for this process's pool; the sweep, not NOTIFY, is what guarantees progress."""

    def __init__(
        self,
        *,
        pool: Pool,
        workers: WorkerPool,
        listener: Listener,
        owner: str,
        lease: timedelta,
        sweep_interval: timedelta,
        history: timedelta,
        tenant_cap: int,
        claimable: Callable[[], list[str]],
        metrics: Metrics,
    ) -> None:
        self._metrics = metrics
        self._tenant_cap = tenant_cap
        # The job kinds worth claiming now (their dependencies answer).
        self._claimable = claimable
        self._pool = pool
        self._workers = workers
        self._owner = owner
        self._lease = lease
        self._sweep_s = sweep_interval.total_seconds()
        self._history = history
        self._chores_due = 0.0
        self._wake = asyncio.Event()
        self._stopped = False
        listener.on_jobs(self.wake)
        listener.on_connect(self.wake)
        workers.on_free(self.wake)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more (shutdown); jobs already running carry on."""
        self._stopped = True
        self._wake.set()

    async def run(self) -> None:
        """Claim until stopped or cancelled."""
        failures = 0
        while not self._stopped:
            self._wake.clear()
            try:
                claimed = await self.claim()
                failures = 0
            except Exception as exc:  # never let the claim loop die: the replica would idle
                failures += 1
                delay = backoff(failures, CLAIM_RETRY_BASE, CLAIM_RETRY_MAX).total_seconds()
                log.warning(
                    "dispatcher.claim_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 2),
                    exc_info=not is_unavailable(exc),
                )
                await asyncio.sleep(delay)
                continue
            if claimed:
                log.debug("dispatcher.claimed", count=claimed)
                if self._workers.free > 0:
                    continue  # a batch trimmed by a tenant cap: other tenants may be waiting
            # On a clock, not only when quiet: a busy queue must not starve them.
            if asyncio.get_running_loop().time() >= self._chores_due:
                await self._housekeeping()
            # A finished job wakes us (on_free), so a full pool simply waits; jitter spreads
            # replicas' sweeps so they do not all scan at once.
            timeout = self._sweep_s * random.uniform(0.5, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _housekeeping(self) -> None:
        """The sweep's chores, a batch each: drop expired idempotency keys, and purge exports
        finished longer ago than the history window."""
        self._chores_due = asyncio.get_running_loop().time() + self._sweep_s
        try:
            await exports.purge_idempotency_keys(self._pool)
            purged = await retention.purge_history(self._pool, self._history)
        except Exception as exc:
            log.warning("dispatcher.housekeeping_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if purged:
            self._metrics.exports_purged.inc(purged)
            log.info("history.purged", exports=purged)

    async def claim(self) -> int:
        free = self._workers.free
        kinds = self._claimable()
        if free <= 0 or self._stopped or not kinds:
            return 0
        claimed = await jobs.claim_jobs(
            self._pool, self._owner, free, self._lease, tenant_cap=self._tenant_cap, kinds=kinds
        )
        now = datetime.now(UTC)
        for job in claimed:
            self._metrics.jobs_claimed.labels(kind=job.kind).inc()
            if job.attempts == 1:
                wait = (now - job.created_at).total_seconds()
                self._metrics.queue_wait.labels(kind=job.kind).observe(max(0.0, wait))
            if job.previous_owner is not None:
                # Its lease expired under another claim: that replica died or stalled.
                log.warning(
                    "job.reclaimed",
                    job_id=job.id,
                    kind=job.kind,
                    export_id=str(job.export_id),
                    previous_owner=job.previous_owner,
                    attempt=job.attempts,
                )
                self._metrics.jobs_reclaimed.labels(kind=job.kind).inc()
            self._workers.start(job)
        return len(claimed)
