"""What operators and orchestrators call: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Final

import structlog
from aiohttp import web

from exportd.api.keys import METRICS, ROLE, SERVICES, WATCH
from exportd.db.health import oldest_ready, queue_depth
from exportd.db.pool import is_unavailable
from exportd.errors import NotReady
from exportd.metrics import CONTENT_TYPE
from exportd.model import JobKind

log = structlog.get_logger(__name__)

# A scrape waits this long for the queue's numbers, then answers without them.
QUEUE_READ_S: Final = 2.0

routes = web.RouteTableDef()


@routes.get("/metrics", allow_head=False)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: the process's counters, and gauges read now (the queue from the
    database, waiters, the pool, each dependency's last check). With the database away the
    queue's gauges are left out, not the whole answer: an outage is when metrics matter."""
    services, metrics = request.app[SERVICES], request.app[METRICS]
    try:
        async with asyncio.timeout(QUEUE_READ_S), services.pool.acquire() as conn:
            depth, oldest = await queue_depth(conn), await oldest_ready(conn)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("metrics.queue_unread", error=f"{type(exc).__name__}: {exc}")
        metrics.clear_queue()
    else:
        metrics.set_queue(list(JobKind), depth, oldest)
    metrics.waiters.set(services.listener.waiting + request.app[WATCH].waiting)
    size, idle = services.pool.get_size(), services.pool.get_idle_size()
    metrics.pool_connections.labels(state="in_use").set(size - idle)
    metrics.pool_connections.labels(state="idle").set(idle)
    for check, reason in (await services.readiness()).items():
        metrics.dependency_up.labels(check=check).set(0 if reason else 1)
    return web.Response(body=metrics.render(), content_type=CONTENT_TYPE, charset="utf-8")


@routes.get("/healthz", allow_head=False)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz", allow_head=False)
async def readyz(request: web.Request) -> web.Response:
    """200 when every dependency this process needs answers, else 503 naming what does not
    (never how: host names and errors go to the log)."""
    checks = await request.app[SERVICES].readiness()
    failing = {name: reason for name, reason in checks.items() if reason is not None}
    shown = {name: reason or "ok" for name, reason in checks.items()}
    if failing:
        raise NotReady(
            "not ready: " + ", ".join(f"{name} {reason}" for name, reason in failing.items()),
            checks=shown,
        )
    return web.json_response({"status": "ready", "checks": shown, "role": request.app[ROLE]})
