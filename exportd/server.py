"""The composition root: the one place that wires settings, pools, S3, the queue and the job
kinds into a running process, and hands the HTTP app what it serves with."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, Final

import structlog

from exportd.api.app import App, create_app
from exportd.api.keys import Role, Services
from exportd.api.serving import run
from exportd.config import Settings
from exportd.db.followups import Followups
from exportd.db.health import ping
from exportd.db.migrate import pending_migrations
from exportd.db.pool import Pool, create_pool
from exportd.export.catalog import Catalog
from exportd.kinds import NEEDS, SUSPECTS, job_handlers, retry_schedules
from exportd.metrics import Metrics
from exportd.notify.mailer import Mailer
from exportd.queue.dispatcher import Dispatcher
from exportd.queue.handler import Handlers
from exportd.queue.listener import Listener
from exportd.queue.workers import WorkerPool
from exportd.readiness import NotReady, Probe, Readiness
from exportd.storage.s3 import Storage, open_storage
from exportd.webhooks.outbound import Sender

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE: Final = timedelta(seconds=25)
LISTENER_GRACE_S: Final = 1.0
MAIL_CHECK_EVERY: Final = timedelta(seconds=30)


def build_app(settings: Settings, catalog: Catalog, *, role: Role = "all") -> App:
    """The whole process as an aiohttp app: API routes, plus the queue where the role runs it."""
    metrics = Metrics()
    return create_app(
        settings,
        catalog,
        role=role,
        metrics=metrics,
        lifespan=lambda: running(settings, catalog, role=role, metrics=metrics),
    )


def serve(settings: Settings, catalog: Catalog, *, role: Role, sock: socket.socket) -> None:
    """Serve on `sock` until SIGINT or SIGTERM; long-polls get up to the grace period to be
    answered."""
    run(
        build_app(settings, catalog, role=role),
        sock=sock,
        shutdown_timeout=min(settings.max_wait.total_seconds(), SHUTDOWN_GRACE.total_seconds()),
    )


@asynccontextmanager
async def running(
    settings: Settings, catalog: Catalog, *, role: Role, metrics: Metrics
) -> AsyncIterator[Services]:
    """Open what the process runs on, in order, and close it in reverse: the pools and S3,
    the LISTEN connection and the readiness checks, then (unless the role is api) the
    dispatcher and workers."""
    builds = role != "api"
    pool = await create_pool(
        settings.database_url, schema=settings.database_schema, min_size=1, max_size=10
    )
    source = (
        await create_pool(
            settings.source_url, schema=None, min_size=0, max_size=settings.workers, codecs=False
        )
        if builds
        else None
    )
    try:
        async with open_storage(settings, metrics) as storage:
            listener = Listener(
                dsn=settings.database_url,
                schema=settings.database_schema,
                probe_interval=settings.sweep_interval,
            )
            mailer = Mailer(settings)
            readiness = Readiness(
                probes(pool=pool, listener=listener, source=source, storage=storage, mailer=mailer),
                every=settings.readiness_interval,
                # Each check of the relay is a login in its log: twice a minute is plenty.
                slower={"mail": max(settings.readiness_interval, MAIL_CHECK_EVERY)},
            )
            async with (
                aclosing(mailer),
                side_task(listener.run(), "listener"),
                side_task(readiness.run(), "readiness"),
            ):
                services = Services(
                    pool=pool, storage=storage, listener=listener, readiness=readiness.check
                )
                if source is None:
                    yield services
                    return
                sender = Sender(
                    timeout=settings.webhook_timeout,
                    allow_private=settings.webhook_allow_private,
                )
                handlers = job_handlers(
                    settings,
                    catalog,
                    pool=pool,
                    source=source,
                    storage=storage,
                    mailer=mailer,
                    sender=sender,
                    metrics=metrics,
                )
                async with (
                    sender,
                    workers_running(
                        settings, handlers, services=services, readiness=readiness, metrics=metrics
                    ) as dispatcher,
                ):
                    yield replace(services, stop_claiming=dispatcher.stop)
    finally:
        if source is not None:
            await source.close()
        await pool.close()


def probes(
    *, pool: Pool, listener: Listener, source: Pool | None, storage: Storage, mailer: Mailer
) -> dict[str, Probe]:
    """The readiness checks: the queue database migrated, the listener connected and, where
    jobs run, the source database, the bucket and the mail relay answering."""

    async def database() -> None:
        async with pool.acquire() as conn:
            if await pending_migrations(conn):
                raise NotReady("not migrated (run exportd migrate)")

    async def listening() -> None:
        try:  # a moment's grace: at start the listener is connecting just as this runs
            await asyncio.wait_for(listener.connected.wait(), LISTENER_GRACE_S)
        except TimeoutError:
            raise NotReady("not connected") from None

    checks: dict[str, Probe] = {"database": database, "listener": listening}
    if source is not None:
        checks |= {"source": partial(ping, source), "storage": storage.check, "mail": mailer.check}
    return checks


@asynccontextmanager
async def workers_running(
    settings: Settings,
    handlers: Handlers,
    *,
    services: Services,
    readiness: Readiness,
    metrics: Metrics,
) -> AsyncIterator[Dispatcher]:
    """The dispatcher claiming for a bounded worker pool (only the kinds whose dependencies
    answer); on exit, claiming has stopped and running jobs get a grace period before they
    are handed back."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    workers = WorkerPool(
        pool=services.pool,
        handlers=handlers,
        listener=services.listener,
        metrics=metrics,
        size=settings.workers,
        lease=settings.lease,
        retry=retry_schedules(settings),
        followups=Followups.from_settings(settings),
        on_failure=lambda failure: readiness.suspect(SUSPECTS.get(failure.code, "")),
    )
    dispatcher = Dispatcher(
        pool=services.pool,
        workers=workers,
        listener=services.listener,
        owner=owner,
        lease=settings.lease,
        sweep_interval=settings.sweep_interval,
        history=settings.history,
        tenant_cap=settings.tenant_max_running,
        claimable=lambda: [kind for kind, needs in NEEDS.items() if readiness.ok(needs)],
        metrics=metrics,
    )
    readiness.on_change(dispatcher.wake)
    log.info("workers.started", owner=owner, workers=settings.workers)
    async with side_task(dispatcher.run(), "dispatcher"):
        yield dispatcher
    # The dispatcher has stopped claiming; running jobs get a grace period.
    await workers.stop(SHUTDOWN_GRACE)


@asynccontextmanager
async def side_task(coro: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run a coroutine for the life of a block; a crash is logged loudly, exit cancels it."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_side_task_ended)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _side_task_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # A replica without its listener or dispatcher would look alive but do nothing:
        # stop it (gracefully) so the supervisor starts a whole one.
        log.critical("side_task.died", task=task.get_name(), exc_info=task.exception())
        os.kill(os.getpid(), signal.SIGTERM)
