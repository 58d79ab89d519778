"""Middleware: a request id and metrics for every request, and errors as problem+json."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog
from aiohttp import web

from exportd.api.keys import METRICS
from exportd.api.requests import request_id as read_request_id
from exportd.db.pool import is_unavailable
from exportd.errors import (
    BadRequest,
    ClientDisconnected,
    ExportdError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON: Final = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Probes an orchestrator sends every few seconds: their access lines are debug-level.
_QUIET_ROUTES: Final = frozenset({"/healthz", "/readyz", "/metrics"})


@web.middleware
async def log_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id bound to every log line of the request, then one access line and the
    request's metrics."""
    started = time.monotonic()
    request_id = read_request_id(request)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    response.headers["Server"] = "exportd"  # not aiohttp's name and version
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else await _unmatched_route(request)
    seconds = time.monotonic() - started
    request.app[METRICS].observe_request(request.method, route, response.status, seconds)
    access = log.debug if route in _QUIET_ROUTES else log.info
    access(
        "http.request",
        method=request.method,
        route=route,
        status=response.status,
        duration_ms=round(seconds * 1000, 1),
    )
    return response


async def _unmatched_route(request: web.Request) -> str:
    """The route label of a request no resource answered: a 405's is the resource whose path
    matched, anything else is "unmatched"."""
    if isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed):
        # aiohttp's 405 keeps no resource: the one whose path matched allows other methods.
        for candidate in request.app.router.resources():
            _, allowed = await candidate.resolve(request)
            if allowed:
                return candidate.canonical
    return "unmatched"


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
    if isinstance(error, RequestTimeout | ClientDisconnected):
        response.force_close()  # the rest of the body may still come: do not read it as a request
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
    except ClientDisconnected as exc:
        log.info("request.client_disconnected")
        return problem(exc, request)
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
        if is_unavailable(exc):
            log.warning("request.unavailable", error=f"{type(exc).__name__}: {exc}")
            return problem(ServiceUnavailable("a backing service is unavailable; retry"), request)
        log.exception("request.failed")
        return problem(ExportdError("unexpected error; it has been logged"), request)
