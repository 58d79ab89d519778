"""Long-poll measures against one `exportd serve --role api`: N waiters over 50 queued exports
answered by one change (fan-out), many waiters on one export answered by its completion, and one
waiter at a time (their floors, bare LISTEN on the same database, are in queue_floor.py).

Every latency runs from the moment the driver starts the change (an autocommit UPDATE, or a
build's fenced completion: a transaction of a few statements) to the moment a client has the
answer's headers; clients and driver share the machine's monotonic clock. The change's own
round trip, commit included, is reported as `change_ms`: the commit lies within it, and no
answer can come before it starts (a reference taken at the commit's acknowledgement could be
overtaken when the driver is descheduled on a busy machine).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
import psutil

from bench.procstats import CpuMeter
from bench.queue_bare_http import bare_server, per_answer
from bench.queue_claimers import FOLLOWUPS, LEASE, NO_CAP, RETENTION
from bench.queue_creators import MAX_ATTEMPTS, new_export
from bench.queue_load import load_clients
from bench.queue_measures import Metrics, latency_metrics
from bench.queue_pollers import read_answer, request_bytes
from bench.queue_stack import Bed, reset
from bench.queue_watch import (
    MIB,
    client_backends,
    disturbance,
    settle,
    spent_metrics,
    watch_window,
    window_metrics,
)
from exportd.db.completions import Completions
from exportd.db.exports import create_export
from exportd.db.jobs import claim_jobs
from exportd.db.pool import Pool
from exportd.dev.servers import free_port
from tests.support.database import SCHEMA, built_file
from tests.support.processes import ExportdProcess

POLLER_PROCESSES: Final = 2
# Connections being opened at once, per load process: together under the server's listen
# backlog (128), so no SYN is dropped and retried a second later.
CONNECT_CONCURRENCY: Final = 48
BUMP: Final = "UPDATE exports SET version = version + 1 WHERE id = ANY($1::uuid[])"
EXPORTS_CHANNEL: Final = f"{SCHEMA}_exports"  # the trigger's channel (migration 0005)
ANSWER_WITHIN_S: Final = 60.0
HEARD_WITHIN_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Polling:
    bed: Bed
    api: ExportdProcess
    conn: asyncpg.Connection[asyncpg.Record]  # the driver's own
    pool: Pool  # for exportd's db functions
    http: aiohttp.ClientSession
    tokens: tuple[str, ...]  # a bearer token per tenant the exports belong to
    workdir: Path
    wait_s: float
    fresh: Metrics  # the replica just after its start: RSS, database connections

    def auth(self, tenant: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[tenant]}"}


async def create_exports(p: Polling, count: int, tenants: int = 1) -> list[uuid.UUID]:
    """`count` queued exports, export n in tenant n % `tenants`."""
    made = []
    for n in range(count):
        row, _ = await create_export(
            p.pool, new_export(n % tenants), max_attempts=MAX_ATTEMPTS, queued_cap=NO_CAP
        )
        made.append(row.id)
    return made


async def etags(p: Polling, ids: Sequence[uuid.UUID], tenants: int = 1) -> list[str]:
    """Each export's current ETag (as create_exports spread them over tenants)."""
    out = []
    for n, export_id in enumerate(ids):
        url = f"{p.api.url}/v1/exports/{export_id}"
        async with p.http.get(url, headers=p.auth(n % tenants)) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET export answered {r.status}")
            out.append(r.headers["ETag"])
    return out


async def bump(conn: asyncpg.Connection[asyncpg.Record], ids: Sequence[uuid.UUID]) -> float:
    """Change the exports (one statement, one commit); when the statement was sent."""
    sent = time.monotonic()
    await conn.execute(BUMP, list(ids))
    return sent


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    bounds = [total * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(parts)]


async def hold_and_answer(
    p: Polling,
    targets: list[list[str]],
    waiters: int,
    change: Callable[[], Awaitable[float]],
    *,
    idle_s: float,
    server: tuple[int, int] | None = None,
) -> Metrics:
    """`waiters` long-polls spread over `targets`, from separate processes; once all are in
    (and exportd has settled), `idle_s` of watched waiting, then `change()`; every answer timed.
    `server` (port, pid): another server than the replica takes the waiters."""
    port, pid = server or (p.api.port, p.api.pid)
    ramp_budget = 30.0 + waiters / 200
    deadline = ramp_budget + 15.0 + idle_s + p.wait_s + ANSWER_WITHIN_S
    params = [
        {
            "host": "127.0.0.1",
            "port": port,
            "targets": targets,
            "count": count,
            "first": first,
            "wait_s": p.wait_s,
            "connect_concurrency": CONNECT_CONCURRENCY,
            "deadline_s": deadline,
        }
        for first, count in _split(waiters, min(POLLER_PROCESSES, waiters))
    ]
    out: Metrics = {"waiters": float(waiters)}
    async with load_clients("longpoll", params, p.workdir, "pollers") as clients:
        meter = p.bed.meter(exportd=[pid], load=[c.pid for c in clients])
        rss_before = int(psutil.Process(pid).memory_info().rss)
        connections_before = await client_backends(p.conn)
        start, went = meter.read(), time.monotonic()
        for client in clients:
            client.go()
        await asyncio.gather(*(c.wait_for("sent", ramp_budget) for c in clients))
        out["ramp_s"] = time.monotonic() - went
        out["settle_s"] = await settle(pid)
        if idle_s:
            window = await watch_window(
                idle_s, meter=meter, http=p.http, url=p.api.url, conn=p.conn, pid=p.api.pid
            )
            out |= window_metrics(window, connections_before, rss_before)
        before_change = meter.read()
        sent = await change()
        out["change_ms"] = 1000 * (time.monotonic() - sent)
        await asyncio.gather(*(c.wait_for("done", deadline) for c in clients))
        after = meter.read()
        results = [c.result() for c in clients]
    out |= spent_metrics(CpuMeter.spent(before_change, after), "answer")
    out |= per_answer(out)
    whole = CpuMeter.spent(start, after)
    out |= spent_metrics(whole, "run") | disturbance(whole, time.monotonic() - went)
    return out | answer_metrics(results, sent, waiters)


def answer_metrics(results: list[dict[str, Any]], sent: float, waiters: int) -> Metrics:
    answers = [a for r in results for a in r["answers"]]
    ok = [at - sent for _, at, status, _ in answers if status == 200 and at >= sent]
    early = sum(1 for _, at, status, _ in answers if status == 200 and at < sent)
    return latency_metrics(ok) | {
        "answered": float(len(ok)),
        "answered_share": len(ok) / waiters,
        "answered_early": float(early),
        "bad_status": float(sum(1 for a in answers if a[2] != 200)),
        "client_errors": float(sum(r["error_count"] for r in results)),
        "unanswered": float(sum(r["unanswered"] for r in results)),
        "repolls": float(sum(a[3] - 1 for a in answers)),
    }


async def fanout_exportd(
    p: Polling, ids: list[uuid.UUID], tenants: int, waiters: int, idle_s: float
) -> Metrics:
    tags = await etags(p, ids, tenants)
    targets = [
        [str(i), tag, p.tokens[n % tenants]]
        for n, (i, tag) in enumerate(zip(ids, tags, strict=True))
    ]
    return await hold_and_answer(p, targets, waiters, lambda: bump(p.conn, ids), idle_s=idle_s)


async def fanout_bare(p: Polling, ids: list[uuid.UUID], waiters: int) -> Metrics:
    """The same fan-out against the bare aiohttp server (bench/queue_bare_http.py)."""
    port = free_port()
    async with bare_server(port, p.bed.dsn, EXPORTS_CHANNEL) as pid:
        targets = [[str(i), '"0"', p.tokens[0]] for i in ids]
        change = partial(bump, p.conn, ids)
        return await hold_and_answer(p, targets, waiters, change, idle_s=0.0, server=(port, pid))


async def fresh_state(api: ExportdProcess, conn: asyncpg.Connection[asyncpg.Record]) -> Metrics:
    """A replica's RSS and database connections before it has served anyone."""
    rss = int(psutil.Process(api.pid).memory_info().rss)
    return {"rss_fresh_mib": rss / MIB, "connections_fresh": float(await client_backends(conn))}


async def one_export(p: Polling, waiters: int) -> Metrics:
    """`waiters` long-polls on one running export, answered by its (fenced) completion."""
    await reset(p.bed.dsn)
    [export_id] = await create_exports(p, 1)
    [job] = await claim_jobs(p.pool, "queue-bench", 1, LEASE, tenant_cap=NO_CAP, kinds=["build"])
    [tag] = await etags(p, [export_id])
    result = built_file(job)

    completions = Completions(p.pool, retention=RETENTION, followups=FOLLOWUPS)

    async def complete() -> float:
        sent = time.monotonic()
        if not await completions.build_done(job, result):
            raise RuntimeError("the build's lease was lost")
        return sent

    targets = [[str(export_id), tag, p.tokens[0]]]
    return await hold_and_answer(p, targets, waiters, complete, idle_s=0.0)


async def single_waiter(p: Polling, reps: int) -> Metrics:
    """One long-poll at a time on one keep-alive connection, each answered by a change."""
    await reset(p.bed.dsn)
    [export_id] = await create_exports(p, 1)
    [tag] = await etags(p, [export_id])
    path = f"/v1/exports/{export_id}?wait={p.wait_s:g}"
    reader, writer = await asyncio.open_connection("127.0.0.1", p.api.port)
    latencies = []
    try:
        for _ in range(reps):
            headers = p.auth() | {"If-None-Match": tag}
            writer.write(request_bytes("127.0.0.1", p.api.port, path, headers))
            await writer.drain()
            await asyncio.sleep(0.03)  # let it reach its wait
            sent = await bump(p.conn, [export_id])
            async with asyncio.timeout(ANSWER_WITHIN_S):
                status, at, answer = await read_answer(reader)
            if status != 200:
                raise RuntimeError(f"the long-poll answered {status}")
            tag = answer["etag"]
            latencies.append(at - sent)
    finally:
        writer.close()
    return latency_metrics(latencies)
