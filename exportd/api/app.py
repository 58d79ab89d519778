"""The HTTP app factory: middleware, routes, and the services the composition root opens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeAlias

import structlog
from aiohttp import web

from exportd.api import catalog_routes, downloads, exports, ops, webhooks
from exportd.api.auth import Verifier
from exportd.api.keys import (
    CATALOG,
    METRICS,
    PROXIES,
    ROLE,
    SERVICES,
    SETTINGS,
    VERIFIER,
    Role,
    Services,
)
from exportd.api.middleware import log_context_middleware, problem_middleware
from exportd.config import Settings
from exportd.envvars import networks
from exportd.export.catalog import Catalog
from exportd.metrics import Metrics

log = structlog.get_logger(__name__)

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
            yield

    app.cleanup_ctx.append(services)
    app.on_shutdown.append(begin_shutdown)
    if role != "worker":  # a worker answers its orchestrator only: health, readiness, metrics
        app.add_routes(exports.routes)
        app.add_routes(downloads.routes)
        app.add_routes(webhooks.routes)
        app.add_routes(catalog_routes.routes)
    app.add_routes(ops.routes)
    return app


async def begin_shutdown(app: web.Application) -> None:
    """First step of a graceful stop (the listening socket is already closed): claim nothing
    more, and answer every long-poll with what it has now."""
    log.info("shutdown.started")
    services = app[SERVICES]
    services.stop_claiming()
    services.listener.release_waiters()
