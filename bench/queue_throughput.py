"""Throughput measures: claim → complete with exportd's statements against a bare SKIP LOCKED
loop, and creates (exportd's `create_export`, `POST /v1/exports`) against their baselines.

Each run starts from emptied tables, seeds what it needs before the clock starts, and runs its
load in a process of its own; CPU is read per process group around the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from bench.procstats import CpuMeter, Reading
from bench.queue_claimers import jobs_of, seed
from bench.queue_creators import BARE_TABLE
from bench.queue_load import load_clients
from bench.queue_measures import Metrics, latency_metrics
from bench.queue_stack import Bed, bench_connection, reset
from bench.queue_watch import disturbance

# exportd's queue pool (server.py): what one claimer, a replica's worth, completes through.
POOL_SIZE: Final = 10
RUN_WITHIN_S: Final = 600.0


async def run_load(
    bed: Bed, workdir: Path, mode: str, params: dict[str, Any], **groups: list[int]
) -> tuple[dict[str, Any], Reading]:
    """One load process from `go` to `done`: its result, and the CPU every group spent."""
    async with load_clients(mode, [params], workdir, mode) as [client]:
        meter = bed.meter(load=[client.pid], **groups)
        before = meter.read()
        client.go()
        await client.wait_for("done", RUN_WITHIN_S)
        spent = CpuMeter.spent(before, meter.read())
        return client.result(), spent


def per_item_ms(spent: Reading, items: int, suffix: str) -> Metrics:
    """CPU milliseconds per item, by process group."""
    return {f"{group}_cpu_ms_per_{suffix}": 1000 * s / items for group, s in spent.groups.items()}


async def claim_run(bed: Bed, workdir: Path, variant: str, claimers: int, jobs: int) -> Metrics:
    """Drain `jobs` seeded jobs with `claimers` claimers of the variant (notify, build, bare)."""
    await reset(bed.dsn)
    conn = await bench_connection(bed.dsn)
    try:
        await seed(conn, variant, jobs)
    finally:
        await conn.close()
    params = {"variant": variant, "claimers": claimers, "dsn": bed.dsn, "pool_size": POOL_SIZE}
    result, spent = await run_load(bed, workdir, "claim", params)
    expected = jobs_of(variant, jobs)
    if result["jobs"] != expected:
        raise RuntimeError(f"{result['jobs']} of {expected} jobs completed")
    seconds = float(result["seconds"])
    return (
        {
            "jobs": float(expected),
            "seconds": seconds,
            "jobs_s": expected / seconds,
        }
        | per_item_ms(spent, expected, "job")
        | disturbance(spent, seconds)
    )


async def create_run(
    bed: Bed,
    workdir: Path,
    variant: str,
    *,
    concurrency: int,
    total: int,
    tenants: int | None = None,
    url: str = "",
    exportd_pid: int | None = None,
) -> Metrics:
    """`total` creates by `concurrency` callers: `http` (POST to `url`), `db` or `bare`."""
    await reset(bed.dsn)
    conn = await bench_connection(bed.dsn)
    try:
        await conn.execute(BARE_TABLE)
    finally:
        await conn.close()
    params = {
        "variant": variant,
        "concurrency": concurrency,
        "total": total,
        "tenants": tenants or concurrency,
        "dsn": bed.dsn,
        "url": url,
    }
    groups = {"exportd": [exportd_pid]} if exportd_pid is not None else {}
    result, spent = await run_load(bed, workdir, "create", params, **groups)
    done = len(result["latencies"])
    if result["error_count"]:
        raise RuntimeError(f"{result['error_count']} creates failed: {result['errors'][:3]}")
    seconds = float(result["seconds"])
    return (
        {"creates": float(done), "seconds": seconds, "creates_s": done / seconds}
        | latency_metrics(result["latencies"], "create")
        | per_item_ms(spent, done, "create")
        | disturbance(spent, seconds)
    )
