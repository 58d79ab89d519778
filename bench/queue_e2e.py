"""End to end: one-row exports POSTed to one `exportd serve` (API and workers), each built,
uploaded to S3 and mailed to the sink; timed from the first POST until the last is mailed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Final

from bench.procstats import CpuMeter
from bench.queue_load import load_clients
from bench.queue_measures import Metrics, latency_metrics
from bench.queue_profile import profiled
from bench.queue_stack import Bed, bench_connection, reset, start_replica
from bench.queue_watch import disturbance
from tests.support.client import eventually

CONCURRENCY: Final = 16  # POSTs in flight
MAILED: Final = "SELECT count(*) FROM exports WHERE notified_at IS NOT NULL"
# Per export: created → mailed, created → built (the queue and the build), built → mailed.
TIMES: Final = """
SELECT notified_at - created_at AS took, finished_at - created_at AS built,
       notified_at - finished_at AS mail_after
FROM exports WHERE notified_at IS NOT NULL"""
WITHIN_S: Final = 600.0


async def e2e_run(
    bed: Bed, workdir: Path, *, workers: int, exports: int, profile: Path | None = None
) -> Metrics:
    await reset(bed.dsn)
    replica = await start_replica(
        bed, f"e2e-{workers}", role="all", workers=workers, tenant_max_running=workers
    )
    conn = await bench_connection(bed.dsn)
    try:
        await asyncio.sleep(0.5)  # past start-up: its first sweep and readiness checks
        params = {
            "variant": "http",
            "concurrency": CONCURRENCY,
            "total": exports,
            "url": replica.url,
        }
        async with load_clients("create", [params], workdir, "e2e") as [client]:
            meter = bed.meter(exportd=[replica.pid], load=[client.pid])

            async def all_mailed() -> bool:
                return bool(await conn.fetchval(MAILED) >= exports)

            with profiled(replica.pid, profile):
                before, started = meter.read(), time.monotonic()
                client.go()
                await client.wait_for("done", WITHIN_S)
                posted_s = time.monotonic() - started
                await eventually(all_mailed, within=WITHIN_S)
                wall = time.monotonic() - started
            spent = CpuMeter.spent(before, meter.read())
            if client.result()["error_count"]:
                raise RuntimeError(f"POSTs failed: {client.result()['errors'][:3]}")
        times = await conn.fetch(TIMES)
    finally:
        await conn.close()
        await asyncio.to_thread(replica.stop)
    return (
        {
            "exports": float(exports),
            "seconds": wall,
            "posted_s": posted_s,
            "exports_s": exports / wall,
        }
        | latency_metrics([r["took"].total_seconds() for r in times], "mailed")
        | latency_metrics([r["built"].total_seconds() for r in times], "built")
        | latency_metrics([r["mail_after"].total_seconds() for r in times], "mail_after")
        | {f"{g}_cpu_ms_per_export": 1000 * s / exports for g, s in spent.groups.items()}
        | disturbance(spent, wall)
    )
