"""What operators and orchestrators call: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web

from exportd.api.keys import METRICS, ROLE, SERVICES
from exportd.db.health import queue_depth
from exportd.db.migrate import pending_migrations
from exportd.db.pool import is_unavailable
from exportd.errors import NotMigrated, ServiceUnavailable

routes = web.RouteTableDef()


@routes.get("/metrics", allow_head=False)
async def metrics(request: web.Request) -> web.Response:
    depth = await queue_depth(request.app[SERVICES].pool)
    gauges = [("exportd_jobs", {"kind": k, "state": s}, n) for k, s, n in depth]
    return web.Response(
        text=request.app[METRICS].render(gauges), content_type="text/plain", charset="utf-8"
    )


@routes.get("/healthz", allow_head=False)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz", allow_head=False)
async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        async with services.pool.acquire(timeout=2) as conn:
            missing = await pending_migrations(conn)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        raise ServiceUnavailable(f"database unreachable: {exc}") from None
    if missing:
        raise NotMigrated(f"{len(missing)} migration(s) not applied; run `exportd migrate`")
    checks = {
        "database": "ok",
        "listener": "ok" if services.listener.connected.is_set() else "reconnecting",
    }
    return web.json_response({"status": "ready", "checks": checks, "role": request.app[ROLE]})
