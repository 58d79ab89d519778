"""The HTTP API: routes, problem+json errors, long-poll, and the process's background parts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import asyncpg
import structlog
from aiohttp import web

from exportd import db
from exportd.auth import Identity, Verifier
from exportd.catalog import Catalog
from exportd.config import Settings
from exportd.dispatcher import Dispatcher
from exportd.errors import (
    BadRequest,
    ExportdError,
    ExportFinished,
    ExportNotFound,
    IdempotencyKeyReused,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    NotMigrated,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyQueued,
    UnsupportedMediaType,
)
from exportd.handlers import Services
from exportd.intake import parse_create
from exportd.listener import Listener
from exportd.mailer import Mailer
from exportd.metrics import Metrics
from exportd.migrations import pending_migrations
from exportd.openapi import spec
from exportd.storage import Storage, open_s3
from exportd.views import decode_cursor, encode_cursor, etag, export_json, if_none_match
from exportd.workers import WorkerPool

log = structlog.get_logger(__name__)

Role = Literal["all", "api", "worker"]
PROBLEM_JSON: Final = "application/problem+json"
DEFAULT_PAGE: Final = 20
MAX_IDEMPOTENCY_KEY: Final = 255
QUEUED_RETRY_AFTER_S: Final = 30
SHUTDOWN_GRACE: Final = timedelta(seconds=25)

SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
VERIFIER = web.AppKey("verifier", Verifier)
ROLE = web.AppKey("role", str)
POOL = web.AppKey("pool", asyncpg.Pool)
STORAGE = web.AppKey("storage", Storage)
LISTENER = web.AppKey("listener", Listener)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
METRICS = web.AppKey("metrics", Metrics)

routes = web.RouteTableDef()


def create_app(settings: Settings, catalog: Catalog, *, role: Role = "all") -> web.Application:
    app = web.Application(
        middlewares=[log_context_middleware, problem_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CATALOG] = catalog
    app[VERIFIER] = Verifier.from_settings(settings)
    app[ROLE] = role
    app[METRICS] = Metrics()
    app.on_shutdown.append(begin_shutdown)
    app.cleanup_ctx.extend([open_resources, run_listener])
    if role in ("all", "worker"):
        app.cleanup_ctx.append(run_workers)
    app.add_routes(routes)
    return app


async def begin_shutdown(app: web.Application) -> None:
    """First step of a graceful stop (the listening socket is already closed): claim nothing
    more, and answer every long-poll with what it has now."""
    log.info("shutdown.started")
    if DISPATCHER in app:
        app[DISPATCHER].stop()
    app[LISTENER].release_waiters()


# --- background parts (each starts, yields, then stops in reverse order) ------------------


async def open_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=10)
    async with open_s3(settings) as s3:
        app[POOL] = pool
        app[STORAGE] = Storage(
            client=s3,
            bucket=settings.s3_bucket,
            part_size=settings.part_size,
            parts_in_flight=settings.parts_in_flight,
        )
        try:
            yield
        finally:
            await pool.close()


async def run_listener(app: web.Application) -> AsyncIterator[None]:
    listener = Listener(dsn=app[SETTINGS].database_url, probe_interval=app[SETTINGS].sweep_interval)
    app[LISTENER] = listener
    async with _side_task(listener.run(), "listener"):
        yield


async def run_workers(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    source = await db.create_pool(
        settings.source_url, min_size=0, max_size=settings.workers, codecs=False
    )
    services = Services(
        settings=settings,
        pool=app[POOL],
        source=source,
        storage=app[STORAGE],
        mailer=Mailer(settings),
        catalog=app[CATALOG],
    )
    workers = WorkerPool(services=services, listener=app[LISTENER], metrics=app[METRICS])
    app[DISPATCHER] = dispatcher = Dispatcher(
        pool=app[POOL],
        workers=workers,
        listener=app[LISTENER],
        owner=owner,
        lease=settings.lease,
        sweep_interval=settings.sweep_interval,
        tenant_cap=settings.tenant_max_running,
        metrics=app[METRICS],
    )
    log.info("workers.started", owner=owner, workers=settings.workers)
    try:
        async with _side_task(dispatcher.run(), "dispatcher"):
            yield
        # The dispatcher has stopped claiming; running jobs get a grace period.
        await workers.stop(SHUTDOWN_GRACE)
    finally:
        await source.close()


class _side_task:
    """Run a coroutine for the life of a block; a crash is logged loudly, exit cancels it."""

    def __init__(self, coro: Awaitable[None], name: str) -> None:
        self._coro = coro
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        self._task = asyncio.ensure_future(self._coro)
        self._task.set_name(self._name)
        self._task.add_done_callback(self._died)

    def _died(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A replica without its listener or dispatcher would look alive but do nothing:
            # stop it (gracefully) so the supervisor starts a whole one.
            log.critical("side_task.died", task=self._name, exc_info=task.exception())
            os.kill(os.getpid(), signal.SIGTERM)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# --- middleware ---------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def log_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS].inc(
        "exportd_http_requests_total", route=route, status=str(response.status)
    )
    return response


def problem(error: ExportdError, request: web.Request) -> web.Response:
    body: dict[str, Any] = {
        "type": f"urn:exportd:problem:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "instance": request.path,
        **error.extra,
    }
    response = web.json_response(body, status=error.status, content_type=PROBLEM_JSON)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="exportd"'
    if error.status == 503:
        response.headers["Retry-After"] = "2"
    if "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response


_HTTP_ERRORS: Final[dict[int, type[ExportdError]]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ExportdError as exc:
        return problem(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = _HTTP_ERRORS.get(exc.status, BadRequest)
        response = problem(error_type(exc.reason), request)
        if "Allow" in exc.headers:  # a 405 must say what is allowed (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        if db.is_unavailable(exc):
            log.warning("request.unavailable", error=f"{type(exc).__name__}: {exc}")
            return problem(ServiceUnavailable("a backing service is unavailable; retry"), request)
        log.exception("request.failed")
        return problem(ExportdError("unexpected error; it has been logged"), request)


# --- routes -------------------------------------------------------------------------------


def identity(request: web.Request) -> Identity:
    ident = request.app[VERIFIER].verify(request.headers.get("Authorization"))
    structlog.contextvars.bind_contextvars(tenant=ident.tenant)
    return ident


async def read_json(request: web.Request) -> Any:
    ctype = request.headers.get("Content-Type", "application/json")
    if not (ctype.startswith("application/json") or "+json" in ctype.split(";")[0]):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype!r}")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson("body is nested too deeply") from None
    check_text(body)
    return body


def check_text(value: Any) -> None:
    """Reject strings PostgreSQL cannot store: NUL characters and unpaired surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise MalformedJson("strings must not contain NUL (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedJson("strings must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            check_text(item)
    elif isinstance(value, list):
        for item in value:
            check_text(item)


async def render(request: web.Request, export: db.ExportRow) -> dict[str, Any]:
    url = None
    if export.status == "succeeded" and export.object_key and export.expires_at:
        remaining = export.expires_at - datetime.now(UTC)
        if remaining > timedelta(0):
            ttl = min(request.app[SETTINGS].link_ttl, remaining)
            url = await request.app[STORAGE].presign_get(export.object_key, ttl)
    return export_json(export, download_url=url)


def idempotency_key(request: web.Request, ident: Identity, body: Any) -> db.IdempotencyKey | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII chars")
    # The same key from another user, or with another body, is a different request.
    canonical = json.dumps({"sub": ident.sub, "body": body}, sort_keys=True, separators=(",", ":"))
    return db.IdempotencyKey(
        key=key,
        request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        ttl=request.app[SETTINGS].idempotency_ttl,
    )


@routes.post("/v1/exports")
async def create_export(request: web.Request) -> web.Response:
    ident = identity(request)
    body = await read_json(request)
    settings, pool = request.app[SETTINGS], request.app[POOL]
    new = parse_create(
        body, ident, request.app[CATALOG], allow_recipient=settings.allow_recipient_override
    )
    idempotency = idempotency_key(request, ident, body)
    if await db.count_queued(pool, ident.tenant) >= settings.tenant_max_queued:
        raise TooManyQueued(
            f"tenant has {settings.tenant_max_queued} or more queued exports; retry later",
            retry_after=QUEUED_RETRY_AFTER_S,
        )
    try:
        export, replayed = await db.create_export(
            pool, new, max_attempts=settings.max_attempts, idempotency=idempotency
        )
    except db.IdempotencyConflict:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body"
        ) from None
    if replayed:
        log.info("export.replayed", export_id=str(export.id))
    else:
        log.info("export.created", export_id=str(export.id), export=export.export_name)
        request.app[METRICS].inc("exportd_exports_created_total")
    headers = {"Location": f"/v1/exports/{export.id}", "ETag": etag(export)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(await render(request, export), status=202, headers=headers)


@routes.post("/v1/exports/{export_id}/cancel")
async def cancel_export(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    pool = request.app[POOL]
    export = await db.cancel_export(pool, export_id, ident.tenant, ident.sub)
    if export is None:
        export = await db.get_export(pool, export_id, ident.tenant, ident.sub)
        if export is None:
            raise ExportNotFound()
        if export.status != "canceled":  # canceling twice is fine; anything else finished
            raise ExportFinished(f"export is {export.status}; only queued or running ones cancel")
    else:
        log.info("export.canceled", export_id=str(export.id))
    return web.json_response(await render(request, export), headers={"ETag": etag(export)})


def parse_wait(request: web.Request) -> tuple[float, bool]:
    """Seconds to long-poll (capped), from ?wait=N or Prefer: wait=N; and whether Prefer set it."""
    raw, preferred = request.query.get("wait"), False
    if raw is None:
        for part in request.headers.get("Prefer", "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "wait":
                raw, preferred = value.strip(), True
    if raw is None:
        return 0.0, False
    try:
        seconds = float(raw)
    except ValueError:
        raise BadRequest("wait must be a number of seconds") from None
    if not seconds >= 0:
        raise BadRequest("wait must be a number of seconds")
    return min(seconds, request.app[SETTINGS].max_wait.total_seconds()), preferred


def parse_export_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["export_id"])
    except ValueError:
        raise ExportNotFound() from None


@routes.get("/v1/exports/{export_id}")
async def get_export(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    wait, preferred = parse_wait(request)
    inm = request.headers.get("If-None-Match")
    pool, settings = request.app[POOL], request.app[SETTINGS]
    # Watch before reading, so a change between the read and the wait is not missed.
    with request.app[LISTENER].watch(export_id) as changed:
        export = await db.get_export(pool, export_id, ident.tenant, ident.sub)
        if export is None:
            raise ExportNotFound()
        first = export.version
        deadline = asyncio.get_running_loop().time() + wait

        def settled(row: db.ExportRow) -> bool:
            if inm is not None:
                return not if_none_match(inm, etag(row))
            return row.terminal or row.version != first

        if wait and not settled(export):
            log.debug("export.waiting", export_id=str(export_id), wait_s=wait)
        while not settled(export) and not request.app[LISTENER].closing:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            changed.clear()
            # NOTIFY is a hint; re-read at least every sweep interval in case one was lost.
            recheck = min(remaining, settings.sweep_interval.total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), recheck)
            fresh = await db.get_export(pool, export_id, ident.tenant, ident.sub)
            if fresh is None:
                raise ExportNotFound()
            export = fresh
    headers = {"ETag": etag(export), "Cache-Control": "no-cache"}
    if preferred:
        headers["Preference-Applied"] = f"wait={wait:g}"
    if if_none_match(inm, etag(export)):
        return web.Response(status=304, headers=headers)
    return web.json_response(await render(request, export), headers=headers)


@routes.get("/v1/exports")
async def list_exports(request: web.Request) -> web.Response:
    ident = identity(request)
    settings = request.app[SETTINGS]
    try:
        limit = int(request.query.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= settings.page_size_max:
        raise BadRequest(f"limit must be between 1 and {settings.page_size_max}")
    status = request.query.get("status")
    if status is not None and status not in ("queued", "running", *db.TERMINAL_STATUSES):
        raise BadRequest(f"unknown status {status!r}")
    cursor = request.query.get("cursor")
    rows = await db.list_exports(
        request.app[POOL],
        ident.tenant,
        ident.sub,
        after=decode_cursor(cursor) if cursor else None,
        status=status,
        limit=limit + 1,
    )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(page[-1]) if more else None
    headers = {}
    if next_cursor:
        query = {
            "cursor": next_cursor,
            "limit": str(limit),
            **({"status": status} if status else {}),
        }
        headers["Link"] = f'<{request.rel_url.with_query(query)}>; rel="next"'
    return web.json_response(
        {"items": [await render(request, e) for e in page], "next_cursor": next_cursor},
        headers=headers,
    )


@routes.get("/v1/export-types")
async def export_types(request: web.Request) -> web.Response:
    identity(request)
    catalog = request.app[CATALOG]
    return web.json_response({"items": [t.describe() for t in catalog.exports.values()]})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec(request.app[CATALOG]))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    depth = await db.queue_depth(request.app[POOL])
    gauges = [("exportd_jobs", {"kind": k, "state": s}, n) for k, s, n in depth]
    return web.Response(
        text=request.app[METRICS].render(gauges), content_type="text/plain", charset="utf-8"
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    pool = request.app[POOL]
    try:
        async with pool.acquire(timeout=2) as conn:
            missing = await pending_migrations(conn)
    except Exception as exc:
        if not db.is_unavailable(exc):
            raise
        raise ServiceUnavailable(f"database unreachable: {exc}") from None
    if missing:
        raise NotMigrated(f"{len(missing)} migration(s) not applied; run `exportd migrate`")
    checks = {
        "database": "ok",
        "listener": "ok" if request.app[LISTENER].connected.is_set() else "reconnecting",
    }
    return web.json_response({"status": "ready", "checks": checks, "role": request.app[ROLE]})
