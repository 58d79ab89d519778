"""Serving the app: aiohttp's runner with one change, a request aiohttp cannot even parse
(oversized or malformed headers) is answered with problem+json like every other error, and
on a socket bound before anything else starts."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Final

import structlog
import uvloop
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from exportd.api.middleware import PROBLEM_JSON
from exportd.logs import log_loop_exceptions

log = structlog.get_logger(__name__)

LINGER_S: Final = 2.0


class ProblemRequestHandler(RequestHandler):
    """Answers what never reached the app (headers too large, not HTTP) as a problem."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp's own: too late for an answer
            raise ConnectionError("response already started; cannot send the error")
        if isinstance(exc, LineTooLong):
            status, code, title = 431, "headers_too_large", "Request headers too large"
        elif status < 500:
            code, title = "malformed_request", "Request is not valid HTTP"
        else:
            code, title = "internal", "Internal error"
        log.info("request.unparsable", status=status, error=type(exc).__name__)
        body = {"type": f"urn:exportd:problem:{code}", "title": title, "status": status}
        response = web.Response(
            status=status,
            text=json.dumps(body | {"detail": title, "code": code}),
            content_type=PROBLEM_JSON,
            headers={"Server": "exportd"},
        )
        response.force_close()
        return response


class ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """aiohttp's AppRunner, whose connections answer unparsable requests as problems."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ProblemServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a port in use stops the process before it starts
    anything else (raises OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)  # as nginx: a burst of clients connecting at once is not refused
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def start(app: web.Application, sock: socket.socket, **runner: Any) -> web.AppRunner:
    """Start serving `app` on `sock`; the caller cleans the runner up."""
    # After answering a request whose body never finished (408), aiohttp keeps reading what
    # still comes for `lingering_time` before closing; bodies here are small (64 KiB), so a
    # short linger frees a stalled connection sooner than the default 10 s.
    server = ProblemAppRunner(app, access_log=None, lingering_time=LINGER_S, **runner)
    await server.setup()
    await web.SockSite(server, sock).start()
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed
    log.info("server.listening", address=f"http://{shown}:{port}")
    return server


def run(app: web.Application, *, sock: socket.socket, shutdown_timeout: float) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (as aiohttp's run_app does), on
    uvloop: its transports and selector are C, where the pure-Python loop's socket writes
    and polling were a third of exportd's time for small exports (bench/queue_bench.py)."""
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    log_loop_exceptions(loop)

    async def serve() -> None:
        server = await start(app, sock, handle_signals=True, shutdown_timeout=shutdown_timeout)
        try:
            await asyncio.Event().wait()
        finally:
            await server.cleanup()

    main = loop.create_task(serve(), name="serve")
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        # The server first, alone: its cleanup is the graceful stop, during which requests
        # (long-polls) are still answered. Then whatever is left.
        _cancel(loop, {main})
        _cancel(loop, asyncio.all_tasks(loop))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


def _cancel(loop: asyncio.AbstractEventLoop, tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and run the loop until they have ended; log any that failed."""
    tasks = {task for task in tasks if not task.done()}
    for task in tasks:
        task.cancel()
    ordered = list(tasks)
    results = loop.run_until_complete(asyncio.gather(*ordered, return_exceptions=True))
    for task, result in zip(ordered, results, strict=True):
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            log.error("shutdown.task_failed", task=task.get_name(), exc_info=result)
