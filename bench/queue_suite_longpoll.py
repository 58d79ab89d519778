"""The issue's table, measure by measure: what each side runs and which rows it shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import aiohttp

from bench import queue_floor as floor
from bench import queue_longpoll as lp
from bench.queue_measures import Measure, Row, RunOnce, Side, alternate
from bench.queue_names import claims, labelled
from bench.queue_profile import profiling
from bench.queue_stack import Bed, bench_connection, reset, start_replica
from bench.queue_throughput import create_run
from exportd.db.pool import create_pool
from tests.support.database import SCHEMA
from tests.support.tokens import make_token

Say = Callable[[str], None]
FANOUT_EXPORTS = 50
# The exports belong to 10 tenants: exportd caps one tenant's long-polls per replica (2,000 by
# default), and 10,000 waiters of one tenant would mostly be refused.
FANOUT_TENANTS = 10


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    rounds: int
    waiters: int  # measure 1: long-polls over 50 exports
    one_export_waiters: int  # measure 1b: long-polls on one export
    idle_s: float  # measure 1: the watched wait with nothing changing
    single_reps: int  # measure 6: one long-poll at a time, per run
    claim_jobs: int  # measure 2: jobs per run
    creates: int  # measures 3 and 4: creates per run
    e2e_exports: int  # measure 5
    wait_s: float = 30.0
    profile: Path | None = None  # py-spy: collapsed stacks at `profile`-<measure>-<run>.txt

    def profile_at(self, name: str) -> Path | None:
        return (
            None if self.profile is None else self.profile.with_name(f"{self.profile.name}-{name}")
        )


# Full: ?wait=60, not 30. Connecting 10,000 waiters takes 11-22 s here (exportd reads each
# export once per request, ~1 ms of CPU each) and the idle window 10 s: with wait=30 the first
# waiters' waits run out before the change, and their re-polls would be measured as idle cost.
# A wait longer than connecting 10,000 waiters takes here (~50 s), so none runs out first.
FULL = Plan("full", 3, 10_000, 2_000, 10.0, 200, 10_000, 5_000, 1_000, wait_s=120.0)
QUICK = Plan("quick", 1, 1_000, 500, 2.0, 40, 1_000, 1_000, 200)


def latency_rows(what: str, side: str = "baseline") -> list[Row]:
    return [
        Row(f"{what} p50, ms", "latency_p50_ms", "latency_p50_ms", baseline_side=side),
        Row(f"{what} p99, ms", "latency_p99_ms", "latency_p99_ms", baseline_side=side),
        Row(f"{what} max, ms", "latency_max_ms", "latency_max_ms", baseline_side=side),
    ]


@asynccontextmanager
async def polling(bed: Bed, plan: Plan, workdir: Path) -> AsyncIterator[lp.Polling]:
    """One `exportd serve --role api` (no workers: queued exports stay queued), and the
    driver's connections."""
    api = await start_replica(bed, "api", role="api", max_wait=timedelta(seconds=plan.wait_s))
    pool = await create_pool(labelled(bed.dsn), schema=SCHEMA, min_size=1, max_size=4)
    conn = await bench_connection(bed.dsn)
    tokens = tuple(make_token(**claims(n)) for n in range(FANOUT_TENANTS))
    try:
        await asyncio.sleep(0.5)  # past its start-up
        fresh = await lp.fresh_state(api, conn)
        async with aiohttp.ClientSession() as http:
            yield lp.Polling(bed, api, conn, pool, http, tokens, workdir, plan.wait_s, fresh)
    finally:
        await conn.close()
        await pool.close()
        await asyncio.to_thread(api.stop)


async def longpoll_suite(bed: Bed, plan: Plan, workdir: Path, say: Say) -> list[Measure]:
    async with polling(bed, plan, workdir) as p:
        single = Measure(
            "notify_floor",
            "6. one long-poll vs the NOTIFY floor",
            {
                "baseline": Side("bare LISTEN (pg_notify; the same UPDATE)"),
                "exportd": Side("exportd: one long-poll, UPDATE → answer"),
            },
            [
                Row(
                    "UPDATE → answer vs pg_notify → callback p50, ms",
                    "latency_p50_ms",
                    "notify_p50_ms",
                ),
                Row(
                    "UPDATE → answer vs pg_notify → callback p99, ms",
                    "latency_p99_ms",
                    "notify_p99_ms",
                ),
                *latency_rows("UPDATE → answer vs UPDATE → LISTEN callback")[:2],
            ],
        )
        reps = plan.single_reps
        await alternate(
            single,
            plan.rounds,
            {
                "baseline": partial(floor.notify_floor, p, reps),
                "exportd": partial(lp.single_waiter, p, reps),
            },
            say,
        )
        await reset(bed.dsn)
        ids = await lp.create_exports(p, FANOUT_EXPORTS, FANOUT_TENANTS)
        fanout = Measure(
            "fanout",
            f"1. long-poll fan-out: {plan.waiters:,} waiters on {FANOUT_EXPORTS} queued exports",
            {
                "baseline": Side("exportd with no waiter; a bare LISTEN hears the change"),
                "exportd": Side(f"exportd, {plan.waiters:,} long-polls"),
                "bare": Side(f"bare aiohttp on uvloop, {plan.waiters:,} long-polls"),
            },
            [
                *latency_rows("change → answer (baseline: → LISTEN callback)"),
                *latency_rows("change → answer vs bare aiohttp's", side="bare")[:2],
                Row(
                    "answering CPU per answer vs bare aiohttp's, ms",
                    "answer_cpu_ms_per_waiter",
                    "answer_cpu_ms_per_waiter",
                    "{:.3f}",
                    baseline_side="bare",
                ),
                Row(
                    "bare aiohttp: answering CPU s, server vs the load client",
                    "answer_exportd_cpu_s",
                    "answer_load_cpu_s",
                    exportd_side="bare",
                    baseline_side="bare",
                ),
                Row("answered, share of waiters", "answered_share", None),
                Row(
                    "DB connections while waiting vs the fresh replica's (pool + listener)",
                    "connections_max",
                    "connections_fresh",
                    "{:.0f}",
                ),
                Row(
                    "exportd RSS peak vs the fresh replica's, MiB",
                    "rss_peak_mib",
                    "rss_fresh_mib",
                    "{:.1f}",
                ),
                Row("/healthz p99 while waiting, ms", "healthz_p99_ms", "healthz_p99_ms"),
                Row(
                    f"idle {plan.idle_s:g} s: exportd CPU, cores",
                    "idle_exportd_cores",
                    "idle_exportd_cores",
                    "{:.3f}",
                ),
                Row(
                    f"idle {plan.idle_s:g} s: PostgreSQL CPU, cores",
                    "idle_postgres_cores",
                    "idle_postgres_cores",
                    "{:.3f}",
                ),
                Row(
                    "whole run CPU s: exportd vs the load client",
                    "run_exportd_cpu_s",
                    "run_load_cpu_s",
                    baseline_side="exportd",
                ),
                Row(
                    "answering CPU s: exportd vs the load client",
                    "answer_exportd_cpu_s",
                    "answer_load_cpu_s",
                    baseline_side="exportd",
                ),
                Row("connecting all waiters, s", "ramp_s", None),
                Row("re-polls (a wait ran out first)", "repolls", None, "{:.0f}"),
                Row("answers other than 200 (refused, errors)", "bad_status", None, "{:.0f}"),
            ],
            notes=[
                f"GET /v1/exports/{{id}}?wait={plan.wait_s:g} with If-None-Match, from "
                f"{lp.POLLER_PROCESSES} load processes; the {FANOUT_EXPORTS} exports belong to "
                f"{FANOUT_TENANTS} tenants; the change is one UPDATE bumping their versions",
                "latency is measured from sending the UPDATE (its commit included)",
                "bare aiohttp (bench/queue_bare_http.py): the same waiters and change against "
                "an aiohttp server on uvloop that answers a fixed body the moment the export's "
                "NOTIFY arrives: no token, no read, no log line, no metrics",
            ],
        )
        await alternate(
            fanout,
            plan.rounds,
            {
                "baseline": partial(floor.fanout_baseline, p, ids, plan.idle_s),
                "exportd": watched(
                    p,
                    plan,
                    "fanout",
                    partial(lp.fanout_exportd, p, ids, FANOUT_TENANTS, plan.waiters, plan.idle_s),
                ),
                "bare": partial(lp.fanout_bare, p, ids, plan.waiters),
            },
            say,
        )
        many = plan.one_export_waiters
        one = Measure(
            "one_export",
            f"1b. {many:,} long-polls on one export, answered by its completion",
            {"baseline": Side("exportd, 1 waiter"), "exportd": Side(f"exportd, {many:,} waiters")},
            [
                *latency_rows("completion → answer"),
                Row("answered, share of waiters", "answered_share", "answered_share"),
                Row("answering: exportd CPU s", "answer_exportd_cpu_s", "answer_exportd_cpu_s"),
                Row("the completion's own round trip, ms", "change_ms", "change_ms"),
            ],
        )
        await alternate(
            one,
            plan.rounds,
            {
                "baseline": partial(lp.one_export, p, 1),
                "exportd": watched(p, plan, "one_export", partial(lp.one_export, p, many)),
            },
            say,
        )
        http = Measure(
            "http_create",
            "4. POST /v1/exports at concurrency 32 vs db.create_export",
            {
                "baseline": Side("db.create_export directly, 32 callers"),
                "exportd": Side("POST /v1/exports, 32 callers"),
            },
            create_rows(exportd_cpu=True),
        )
        run = partial(
            create_run, bed, workdir, concurrency=32, total=plan.creates, exportd_pid=p.api.pid
        )
        await alternate(
            http,
            plan.rounds,
            {
                "baseline": partial(run, "db"),
                "exportd": watched(p, plan, "http_create", partial(run, "http", url=p.api.url)),
            },
            say,
        )
    return [single, fanout, one, http]


def watched(p: lp.Polling, plan: Plan, name: str, run: RunOnce) -> RunOnce:
    """The run, with the API replica under py-spy when the plan asks for profiles."""
    return profiling(lambda: p.api.pid, plan.profile_at(name), run)


def create_rows(*, exportd_cpu: bool) -> list[Row]:
    rows = [
        Row("creates/s", "creates_s", "creates_s", "{:.0f}"),
        Row("create p50, ms", "create_p50_ms", "create_p50_ms"),
        Row("create p99, ms", "create_p99_ms", "create_p99_ms"),
        Row(
            "PostgreSQL CPU per create, ms",
            "postgres_cpu_ms_per_create",
            "postgres_cpu_ms_per_create",
            "{:.3f}",
        ),
        Row(
            "client CPU per create, ms",
            "load_cpu_ms_per_create",
            "load_cpu_ms_per_create",
            "{:.3f}",
        ),
    ]
    if exportd_cpu:
        rows.append(Row("exportd CPU per create, ms", "exportd_cpu_ms_per_create", None, "{:.3f}"))
    return rows
