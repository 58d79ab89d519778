"""What the queue benchmark watches while exportd holds long-polls: /healthz latency, the
database connections in use, exportd's CPU settling, and one window's CPU across processes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import aiohttp
import asyncpg

from bench.procstats import CpuMeter, Reading, process_cpu_seconds
from bench.queue_measures import Metrics, latency_metrics
from bench.queue_names import BENCH_APP
from tests.support.memory import RssSampler

# Connections of every client but the benchmark's own (marked with BENCH_APP).
CLIENT_BACKENDS: Final = f"""
SELECT count(*) FROM pg_stat_activity
WHERE backend_type = 'client backend' AND application_name <> '{BENCH_APP}'"""
HEALTHZ_EVERY_S: Final = 0.02
CONNECTIONS_EVERY_S: Final = 0.25
MIB: Final = 1024 * 1024


async def client_backends(conn: asyncpg.Connection[asyncpg.Record]) -> int:
    return int(await conn.fetchval(CLIENT_BACKENDS))


async def settle(pid: int, *, quiet_share: float = 0.1, within: float = 15.0) -> float:
    """Wait until the process uses under `quiet_share` of a core over half a second (it has
    taken in every request); the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        before = process_cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if process_cpu_seconds(pid) - before < quiet_share * 0.5:
            break
    return time.monotonic() - started


async def _healthz(http: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> list[float]:
    times = []
    while not stop.is_set():
        started = time.monotonic()
        async with http.get(f"{url}/healthz") as response:
            await response.read()
        times.append(time.monotonic() - started)
        await asyncio.sleep(HEALTHZ_EVERY_S)
    return times


async def _connections(conn: asyncpg.Connection[asyncpg.Record], stop: asyncio.Event) -> int:
    most = 0
    while not stop.is_set():
        most = max(most, await client_backends(conn))
        await asyncio.sleep(CONNECTIONS_EVERY_S)
    return most


@dataclass(frozen=True, slots=True)
class Window:
    seconds: float
    cpu: Reading
    healthz: list[float]
    connections_max: int
    rss_peak: int


async def watch_window(
    seconds: float,
    *,
    meter: CpuMeter,
    http: aiohttp.ClientSession,
    url: str,
    conn: asyncpg.Connection[asyncpg.Record],
    pid: int,
) -> Window:
    """`seconds` of nothing happening, watched: CPU by group, /healthz every 20 ms, the most
    database connections seen, exportd's peak RSS."""
    stop = asyncio.Event()
    with RssSampler(pid) as rss:
        before, started = meter.read(), time.monotonic()
        probes = asyncio.gather(_healthz(http, url, stop), _connections(conn, stop))
        await asyncio.sleep(seconds)
        stop.set()
        healthz, most = await probes
        spent, wall = CpuMeter.spent(before, meter.read()), time.monotonic() - started
    return Window(wall, spent, healthz, most, rss.peak)


def window_metrics(window: Window, connections_before: int, rss_before: int) -> Metrics:
    """The idle window as numbers: cores busy per group, /healthz latency, extra connections,
    RSS."""
    out: Metrics = {
        f"idle_{group}_cores": cpu / window.seconds for group, cpu in window.cpu.groups.items()
    }
    out |= latency_metrics(window.healthz, "healthz")
    out |= disturbance(window.cpu, window.seconds)
    out["connections_max"] = float(window.connections_max)
    out["extra_connections"] = float(window.connections_max - connections_before)
    out["rss_before_mib"] = rss_before / MIB
    out["rss_peak_mib"] = window.rss_peak / MIB
    out["rss_growth_mib"] = (window.rss_peak - rss_before) / MIB
    return out


def disturbance(spent: Reading, seconds: float) -> Metrics:
    """Cores that processes outside the benchmark used meanwhile, and the hypervisor stole:
    much of either means the run shared the machine."""
    if seconds <= 0:
        return {}
    return {
        "other_cores": CpuMeter.outside_total(spent) / seconds,
        "steal_cores": spent.steal / seconds,
    }


def spent_metrics(spent: Reading, prefix: str) -> Metrics:
    return {f"{prefix}_{group}_cpu_s": cpu for group, cpu in spent.groups.items()}
