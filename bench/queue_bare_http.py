"""The framework's long-poll floor on this machine: aiohttp on uvloop, as exportd serves, whose
waiters are answered the moment their export's notification arrives, with a fixed body and
nothing else (no token, no read, no log line, no metrics). Beside exportd's fan-out it shows
what answering costs before exportd does anything of its own.

A child process: `python -m bench.queue_bare_http PORT DSN CHANNEL`; it prints `ready` once
it listens and serves until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
import uvloop
from aiohttp import web

from bench.queue_measures import Metrics

# About the size of exportd's answer for a queued export.
BODY: Final = json.dumps({"id": "0" * 36, "status": "queued", "padding": "x" * 600}).encode()
READY_WITHIN_S: Final = 30.0


async def _serve(port: int, dsn: str, channel: str) -> None:
    changed: dict[str, asyncio.Event] = {}

    def heard(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        event = changed.pop(str(payload).partition(":")[0], None)
        if event is not None:
            event.set()

    async def wait(request: web.Request) -> web.Response:
        event = changed.setdefault(request.match_info["export_id"], asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(float(request.query.get("wait", "30"))):
                await event.wait()
                return web.Response(body=BODY, content_type="application/json")
        return web.Response(status=304)

    listener = await asyncpg.connect(dsn)
    await listener.add_listener(channel, heard)
    app = web.Application()
    app.router.add_get("/v1/exports/{export_id}", wait)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


@asynccontextmanager
async def bare_server(port: int, dsn: str, channel: str) -> AsyncIterator[int]:
    """The bare server running on `port`; its pid."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.queue_bare_http",
        str(port),
        dsn,
        channel,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), READY_WITHIN_S)
        if line.strip() != b"ready":
            raise RuntimeError(f"the bare server did not start (exit {process.returncode})")
        yield process.pid
    finally:
        process.kill()
        await process.wait()


def per_answer(metrics: Metrics) -> Metrics:
    """The serving process's CPU per answer while answering, in ms."""
    return {"answer_cpu_ms_per_waiter": 1000 * metrics["answer_exportd_cpu_s"] / metrics["waiters"]}


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
