"""The floors exportd's long-polls are held against: the same change heard by a bare LISTEN
connection, `pg_notify` → callback, and an exportd replica with nobody waiting."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import psutil

from bench.queue_longpoll import (
    EXPORTS_CHANNEL,
    HEARD_WITHIN_S,
    Polling,
    bump,
    create_exports,
)
from bench.queue_measures import Metrics, latency_metrics
from bench.queue_names import BENCH_APP
from bench.queue_stack import reset
from bench.queue_watch import client_backends, watch_window, window_metrics


async def fanout_baseline(p: Polling, ids: list[uuid.UUID], idle_s: float) -> Metrics:
    """The same exportd with nobody waiting, watched as long; then the same change heard by a
    bare LISTEN connection."""
    meter = p.bed.meter(exportd=[p.api.pid])
    rss_before = int(psutil.Process(p.api.pid).memory_info().rss)
    before = await client_backends(p.conn)
    window = await watch_window(
        idle_s, meter=meter, http=p.http, url=p.api.url, conn=p.conn, pid=p.api.pid
    )
    heard = await listen_latency(p, ids)
    return window_metrics(window, before, rss_before) | latency_metrics(heard) | p.fresh


async def listen_latency(p: Polling, ids: list[uuid.UUID]) -> list[float]:
    """Seconds from sending the change to each export's notification at a bare listener."""
    listener = await asyncpg.connect(p.bed.dsn, server_settings={"application_name": BENCH_APP})
    times: list[float] = []
    all_heard = asyncio.Event()

    def heard(*_: object) -> None:
        times.append(time.monotonic())
        if len(times) >= len(ids):
            all_heard.set()

    try:
        await listener.add_listener(EXPORTS_CHANNEL, heard)
        sent = await bump(p.conn, ids)
        async with asyncio.timeout(HEARD_WITHIN_S):
            await all_heard.wait()
    finally:
        await listener.close()
    return [t - sent for t in times]


async def notify_floor(p: Polling, reps: int) -> Metrics:
    """The floor: `pg_notify` → a bare listener's callback, and the same UPDATE exportd's
    long-poll answers (its trigger's NOTIFY) → that listener, one at a time."""
    await reset(p.bed.dsn)
    [export_id] = await create_exports(p, 1)
    listener = await asyncpg.connect(p.bed.dsn, server_settings={"application_name": BENCH_APP})
    got: asyncio.Queue[float] = asyncio.Queue()
    rtt, update = [], []
    try:
        await listener.add_listener("bench_rtt", lambda *_: got.put_nowait(time.monotonic()))
        await listener.add_listener(EXPORTS_CHANNEL, lambda *_: got.put_nowait(time.monotonic()))
        for n in range(reps):
            sent = time.monotonic()
            await p.conn.execute("SELECT pg_notify('bench_rtt', $1)", str(n))
            rtt.append(await asyncio.wait_for(got.get(), HEARD_WITHIN_S) - sent)
            sent = await bump(p.conn, [export_id])
            update.append(await asyncio.wait_for(got.get(), HEARD_WITHIN_S) - sent)
            await asyncio.sleep(0.005)
    finally:
        await listener.close()
    return latency_metrics(rtt, "notify") | latency_metrics(update, "latency")
