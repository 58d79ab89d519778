"""What operators and orchestrators call: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web

from exportd.api.keys import METRICS, ROLE, SERVICES
from exportd.db.health import queue_depth
from exportd.errors import NotReady

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
