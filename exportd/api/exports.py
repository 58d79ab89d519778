"""/v1/exports: create, read (with long-poll), list and cancel the caller's exports."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, Final

import structlog
from aiohttp import web

from exportd.api.auth import Identity
from exportd.api.intake import parse_create
from exportd.api.keys import CATALOG, METRICS, SERVICES, SETTINGS, WATCH
from exportd.api.render import if_none_match, page_query, page_response
from exportd.api.requests import (
    header,
    idempotency_key,
    identity,
    parse_export_id,
    parse_wait,
    query,
    read_json,
)
from exportd.api.watch import Seen
from exportd.db import exports
from exportd.db.followups import Followups
from exportd.db.rows import ExportRow
from exportd.db.standing import Standing, queue_standing, standing_of
from exportd.errors import (
    BadRequest,
    ExportFinished,
    ExportNotFound,
    IdempotencyKeyReused,
    TooManyQueued,
)
from exportd.model import Status
from exportd.public import etag, export_json

log = structlog.get_logger(__name__)

QUEUED_RETRY_AFTER_S: Final = 30

routes = web.RouteTableDef()


def render(
    request: web.Request, export: ExportRow, standing: Standing | None = None
) -> dict[str, Any]:
    return export_json(export, base_url=request.app[SETTINGS].base_url, standing=standing)


async def read_export(
    request: web.Request, export_id: uuid.UUID, ident: Identity
) -> tuple[ExportRow, Standing | None]:
    """The caller's export and, while it is queued, where it stands; ExportNotFound if none."""
    settings, pool = request.app[SETTINGS], request.app[SERVICES].pool
    async with pool.acquire() as conn:
        export = await exports.get_export(conn, export_id, ident.tenant, ident.sub)
        if export is None:
            raise ExportNotFound()
        return export, await standing_of(conn, export, tenant_cap=settings.tenant_max_running)


@routes.post("/v1/exports")
async def create_export(request: web.Request) -> web.Response:
    ident = identity(request)
    body = await read_json(request)
    settings, pool = request.app[SETTINGS], request.app[SERVICES].pool
    new = parse_create(
        body, ident, request.app[CATALOG], allow_recipient=settings.allow_recipient_override
    )
    idempotency = idempotency_key(request, body)
    try:
        export, replayed = await exports.create_export(
            pool,
            new,
            max_attempts=settings.max_attempts,
            queued_cap=settings.tenant_max_queued,
            idempotency=idempotency,
        )
    except exports.IdempotencyConflict:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body"
        ) from None
    except exports.QueueFull:
        request.app[METRICS].exports_refused.labels(reason="too_many_queued").inc()
        raise TooManyQueued(
            f"tenant has {settings.tenant_max_queued} or more queued exports; retry later",
            retry_after=QUEUED_RETRY_AFTER_S,
        ) from None
    if replayed:
        log.info("export.replayed", export_id=str(export.id))
    else:
        log.info("export.created", export_id=str(export.id), export=export.export_name)
        request.app[METRICS].exports_created.inc()
    headers = {"Location": f"/v1/exports/{export.id}", "ETag": etag(export)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(render(request, export), status=202, headers=headers)


@routes.post("/v1/exports/{export_id}/cancel")
async def cancel_export(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    pool, settings = request.app[SERVICES].pool, request.app[SETTINGS]
    export = await exports.cancel_export(
        pool, export_id, ident.tenant, ident.sub, Followups.from_settings(settings)
    )
    if export is None:
        export = await exports.get_export(pool, export_id, ident.tenant, ident.sub)
        if export is None:
            raise ExportNotFound()
        if export.status != Status.CANCELED:  # canceling twice is fine; anything else finished
            raise ExportFinished(
                f"the export already {export.status}; only queued or running exports cancel"
            )
    else:
        log.info("export.canceled", export_id=str(export.id))
    return web.json_response(render(request, export), headers={"ETag": etag(export)})


@routes.get("/v1/exports/{export_id}", allow_head=False)
async def get_export(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    wait, preferred = parse_wait(request)
    inm = header(request, "If-None-Match")
    watch = request.app[WATCH]
    seen = watch.seen(*await read_export(request, export_id, ident))
    first = seen.etag

    def settled(state: Seen) -> bool:
        if inm is not None:
            return not if_none_match(inm, state.etag)
        return state.export.terminal or state.etag != first

    if wait and not settled(seen):
        log.debug("export.waiting", export_id=str(export_id), wait_s=wait)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # Every waiter on this export shares one read per change (api/watch.py).
        async with watch.waiting_on(ident.tenant, seen) as entry:
            while True:
                changed, seen = entry.changed, entry.latest
                remaining = deadline - loop.time()
                if settled(seen) or watch.closing or remaining <= 0:
                    break
                # A timer, not wait_for's extra task: thousands of waiters wake at once.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await changed.wait()
    headers = {"ETag": seen.etag, "Cache-Control": "no-cache"}
    if preferred:
        headers["Preference-Applied"] = f"wait={wait:g}"
    if if_none_match(inm, seen.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=seen.body, content_type="application/json", headers=headers)


@routes.get("/v1/exports", allow_head=False)
async def list_exports(request: web.Request) -> web.Response:
    ident = identity(request)
    limit, after = page_query(request, uuid.UUID)
    status = query(request, "status")
    if status is not None and status not in tuple(Status):
        raise BadRequest(f"status must be one of {', '.join(Status)}")
    async with request.app[SERVICES].pool.acquire() as conn:
        rows = await exports.list_exports(
            conn, ident.tenant, ident.sub, after=after, status=status, limit=limit + 1
        )
        queued = [r.id for r in rows[:limit] if r.status == Status.QUEUED]
        standings = await queue_standing(
            conn, queued, tenant_cap=request.app[SETTINGS].tenant_max_running
        )
    return page_response(
        request,
        rows,
        limit,
        position=lambda r: (r.created_at, r.id),
        item=lambda r: render(request, r, standings.get(r.id)),
        keep={"status": status} if status else None,
    )
