"""The HTTP app factory: middleware, routes, and the services the composition root opens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, TypeAlias

import structlog
from aiohttp import web

from exportd.api import catalog_routes, downloads, exports, ops, page, webhooks
from exportd.api.auth import Verifier
from exportd.api.keys import (
    CATALOG,
    METRICS,
    PROXIES,
    ROLE,
    SERVICES,
    SETTINGS,
    VERIFIER,
    WATCH,
    Role,
    Services,
)
from exportd.api.middleware import log_context_middleware, problem_middleware
from exportd.api.watch import Watch
from exportd.config import Settings
from exportd.envvars import networks
from exportd.export.catalog import Catalog
from exportd.metrics import Metrics
from exportd.public import export_json

log = structlog.get_logger(__name__)

# Long-polls' shared reads use at most this many of the pool's connections at once, so a
# burst of changes cannot crowd out the workers' writes and the API's own queries.
READ_GATE: Final = 3

App: TypeAlias = web.Application
# Opens the process's services (pools, S3, listener, workers) and closes them on exit.
Lifespan: TypeAlias = Callable[[], AbstractAsyncContextManager[Services]]


def create_app(
    settings: Settings, catalog: Catalog, *, role: Role, metrics: Metrics, lifespan: Lifespan
) -> App:
    app = web.Application(
        middlewares=[log_context_middleware, problem_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CATALOG] = catalog
    app[VERIFIER] = Verifier.from_settings(settings)
    app[ROLE] = role
    app[METRICS] = metrics
    app[PROXIES] = networks(settings.trusted_proxies)

    async def services(app: web.Application) -> AsyncIterator[None]:
        async with lifespan() as opened:
            app[SERVICES] = opened
            app[WATCH] = watch_exports(settings, opened, metrics)
            yield

    app.cleanup_ctx.append(services)
    app.on_shutdown.append(begin_shutdown)
    if role != "worker":  # a worker answers its orchestrator only: health, readiness, metrics
        app.add_routes(exports.routes)
        app.add_routes(downloads.routes)
        app.add_routes(webhooks.routes)
        app.add_routes(catalog_routes.routes)
        if settings.web_ui:
            app.add_routes(page.routes())
    app.add_routes(ops.routes)
    return app


def watch_exports(settings: Settings, services: Services, metrics: Metrics) -> Watch:
    """The long-poll hub, told by the listener of every change, queue move and reconnect."""
    base_url = settings.base_url
    watch = Watch(
        services.pool,
        lambda export, standing: export_json(export, base_url=base_url, standing=standing),
        metrics,
        tenant_cap=settings.tenant_max_running,
        max_waiters=settings.max_waiters,
        tenant_max_waiters=settings.tenant_max_waiters,
        read_gate=READ_GATE,
    )
    services.listener.on_export(watch.export_changed)
    services.listener.on_queue(watch.queue_moved)
    services.listener.on_connect(watch.reconnected)
    return watch


async def begin_shutdown(app: web.Application) -> None:
    """First step of a graceful stop (the listening socket is already closed): claim nothing
    more, and answer every long-poll with what it has now."""
    log.info("shutdown.started")
    app[SERVICES].stop_claiming()
    app[WATCH].release()
