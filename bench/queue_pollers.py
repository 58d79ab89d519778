"""The long-poll load (a child of bench/queue_load.py): many `GET /v1/exports/{id}?wait=N` with
`If-None-Match`, each on its own connection, timed when its answer's headers arrive.

A bare HTTP/1.1 client on asyncio streams: it costs a fraction of aiohttp's client per request,
so the load's CPU stays small beside the server's. A 304 (the wait ran out) is polled again on
the same connection, as a client following an export would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Final

HEAD_LIMIT: Final = 64 * 1024


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, float, dict[str, str]]:
    """One response: its status, when its headers arrived, and the headers (lower-case names;
    the body is read and dropped)."""
    head = await reader.readuntil(b"\r\n\r\n")
    at = time.monotonic()
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length:
        await reader.readexactly(length)
    return status, at, headers


def request_bytes(host: str, port: int, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Counter:
    """Counts requests out (sent or failed before sending); sets `all_out` at `total`."""

    def __init__(self, total: int) -> None:
        self.total, self.out = total, 0
        self.all_out = asyncio.Event()
        if total == 0:
            self.all_out.set()

    def one(self) -> None:
        self.out += 1
        if self.out == self.total:
            self.all_out.set()


async def longpoll(
    params: Mapping[str, Any], stack: AsyncExitStack
) -> Callable[[Callable[[str], None]], Awaitable[dict[str, Any]]]:
    """params: host, port, targets ([export id, etag, bearer token]), count, first (this
    client's offset in the spread), wait_s, connect_concurrency, deadline_s.

    Result: answers as [target index, monotonic time, status, polls], and the errors."""
    return lambda say: _longpoll(params, say)


async def _longpoll(params: Mapping[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    host, port = str(params["host"]), int(params["port"])
    targets: list[list[str]] = params["targets"]
    count, first = int(params["count"]), int(params["first"])
    connecting = asyncio.Semaphore(int(params["connect_concurrency"]))
    counter = Counter(count)
    answers: list[tuple[int, float, int, int]] = []
    errors: list[str] = []

    async def poll(i: int) -> None:
        index = (first + i) % len(targets)
        export_id, etag, token = targets[index]
        headers = {"Authorization": f"Bearer {token}", "If-None-Match": etag}
        path = f"/v1/exports/{export_id}?wait={float(params['wait_s']):g}"
        request = request_bytes(host, port, path, headers)
        writer: asyncio.StreamWriter | None = None
        counted = False
        try:
            async with connecting:
                reader, writer = await asyncio.open_connection(host, port, limit=HEAD_LIMIT)
                writer.write(request)
                await writer.drain()
            counter.one()
            counted = True
            polls = 1
            while True:
                status, at, _ = await read_answer(reader)
                if status != 304:
                    break
                polls += 1
                writer.write(request)
                await writer.drain()
            answers.append((index, at, status, polls))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if not counted:
                counter.one()
            if writer is not None:
                writer.close()

    tasks = [asyncio.create_task(poll(i)) for i in range(count)]
    await counter.all_out.wait()
    say("sent")
    _, pending = await asyncio.wait(tasks, timeout=float(params["deadline_s"]))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return {
        "answers": answers,
        "errors": errors[:20],
        "error_count": len(errors),
        "unanswered": len(pending),
    }
