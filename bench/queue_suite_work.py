"""The issue's table, continued: claim → complete (measure 2), creates (3), end to end (5)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench import queue_pgqueuer
from bench.queue_e2e import e2e_run
from bench.queue_measures import Measure, Metrics, Row, RunOnce, Side, alternate
from bench.queue_stack import Bed
from bench.queue_suite_longpoll import Plan, create_rows
from bench.queue_throughput import claim_run, create_run

Say = Callable[[str], None]


def claim_rows(pgqueuer: bool) -> list[Row]:
    rows = [
        Row("notify: jobs/s vs bare", "jobs_s", "jobs_s", "{:.0f}"),
        Row("build + its mail: jobs/s vs bare", "jobs_s", "jobs_s", "{:.0f}", exportd_side="build"),
        Row(
            "notify: PostgreSQL CPU per job vs bare, ms",
            "postgres_cpu_ms_per_job",
            "postgres_cpu_ms_per_job",
            "{:.3f}",
        ),
        Row(
            "build: PostgreSQL CPU per job vs bare, ms",
            "postgres_cpu_ms_per_job",
            "postgres_cpu_ms_per_job",
            "{:.3f}",
            exportd_side="build",
        ),
        Row(
            "notify: client CPU per job vs bare, ms",
            "load_cpu_ms_per_job",
            "load_cpu_ms_per_job",
            "{:.3f}",
        ),
    ]
    if pgqueuer:
        rows += [
            Row(
                "notify: jobs/s vs PgQueuer's drain",
                "jobs_s",
                "jobs_s",
                "{:.0f}",
                baseline_side="pgqueuer",
            ),
            Row(
                "notify: PostgreSQL CPU per job vs PgQueuer's, ms",
                "postgres_cpu_ms_per_job",
                "postgres_cpu_ms_per_job",
                "{:.3f}",
                baseline_side="pgqueuer",
            ),
        ]
    return rows


async def claim_suite(bed: Bed, plan: Plan, workdir: Path, say: Say) -> list[Measure]:
    notes: list[str] = []
    pgq: queue_pgqueuer.PgQueuerBench | None = None
    try:
        pgq = await queue_pgqueuer.prepare(bed, workdir)
        notes.append(
            f"PgQueuer {pgq.version}: its sdist's tools/benchmark.py --strategy drain"
            f" --dequeue-batch-size {queue_pgqueuer.BATCH}, run by {pgq.python}; its jobs/s"
            " is its own (the drain only), its PostgreSQL CPU also covers its enqueue (one"
            " batched INSERT) and set-up"
        )
    except Exception as exc:
        notes.append(f"PgQueuer's benchmark could not run: {type(exc).__name__}: {exc}")
        say(f"  PgQueuer skipped: {exc}")
    measures = []
    jobs = plan.claim_jobs
    for claimers in (1, 4):
        sides = {
            "baseline": Side(f"bare SKIP LOCKED claim + batch DELETE, {claimers} claimer(s)"),
            "exportd": Side(f"claim_jobs k=16 + batched mail completions, {claimers} claimer(s)"),
            "build": Side(
                f"claim_jobs k=16 + batched build completions, then mails, {claimers} claimer(s)"
            ),
        }
        run = partial(claim_run, bed, workdir, claimers=claimers, jobs=jobs)
        runs: dict[str, RunOnce] = {
            "baseline": partial(run, "bare"),
            "exportd": partial(run, "notify"),
            "build": partial(run, "build"),
        }
        if pgq is not None:
            sides["pgqueuer"] = Side(f"PgQueuer {pgq.version} drain, {claimers} dequeue task(s)")
            runs["pgqueuer"] = partial(queue_pgqueuer.drain, pgq, bed, workdir, claimers, jobs)
        measure = Measure(
            f"claims_{claimers}",
            f"2. claim → complete, {claimers} claimer(s), {jobs:,} jobs",
            sides,
            claim_rows(pgq is not None),
            notes=list(notes),
        )
        measures.append(await alternate(measure, plan.rounds, runs, say))
    return measures


async def create_suite(bed: Bed, plan: Plan, workdir: Path, say: Say) -> list[Measure]:
    run = partial(create_run, bed, workdir, concurrency=16, total=plan.creates)
    measure = Measure(
        "db_create",
        f"3. db.create_export at concurrency 16 vs INSERT + NOTIFY, {plan.creates:,} creates",
        {
            "baseline": Side("bare INSERT + NOTIFY, one transaction each, 16 connections"),
            "exportd": Side("db.create_export, 16 callers, a tenant each"),
            "one_tenant": Side("db.create_export, 16 callers, one tenant"),
        },
        [
            *create_rows(exportd_cpu=False),
            Row(
                "one tenant: creates/s",
                "creates_s",
                "creates_s",
                "{:.0f}",
                exportd_side="one_tenant",
            ),
        ],
        notes=[
            "exportd takes a per-tenant advisory lock in each create (the queued cap), so "
            "one tenant's creates run one at a time"
        ],
    )
    runs: dict[str, RunOnce] = {
        "baseline": partial(run, "bare"),
        "exportd": partial(run, "db"),
        "one_tenant": partial(run, "db", tenants=1),
    }
    return [await alternate(measure, plan.rounds, runs, say)]


async def e2e_suite(bed: Bed, plan: Plan, workdir: Path, say: Say) -> list[Measure]:
    n = plan.e2e_exports
    measure = Measure(
        "e2e",
        f"5. {n:,} one-row exports end to end (POST → mailed), 16 vs 4 workers",
        {
            "baseline": Side("exportd serve, 4 workers"),
            "exportd": Side("exportd serve, 16 workers"),
        },
        [
            Row("exports/s", "exports_s", "exports_s", "{:.1f}"),
            Row("created → mailed p50, ms", "mailed_p50_ms", "mailed_p50_ms", "{:.0f}"),
            Row("created → mailed p99, ms", "mailed_p99_ms", "mailed_p99_ms", "{:.0f}"),
            Row("created → built p99, ms", "built_p99_ms", "built_p99_ms", "{:.0f}"),
            Row("built → mailed p50, ms", "mail_after_p50_ms", "mail_after_p50_ms", "{:.0f}"),
            Row("built → mailed p99, ms", "mail_after_p99_ms", "mail_after_p99_ms", "{:.0f}"),
            *(
                Row(
                    f"{group} CPU per export, ms",
                    f"{key}_cpu_ms_per_export",
                    f"{key}_cpu_ms_per_export",
                )
                for group, key in (
                    ("exportd", "exportd"),
                    ("PostgreSQL", "postgres"),
                    ("S3 (weed)", "s3"),
                    ("SMTP sink", "sink"),
                    ("load client", "load"),
                )
            ),
        ],
        notes=[
            "no outside baseline: the 4-worker run is the reference column; all POSTs go "
            "in at once (16 in flight), so created → mailed is mostly time in the queue; "
            "built → mailed is how long a mail trails its file (it does not queue behind builds)"
        ],
    )
    runs: dict[str, RunOnce] = {
        "baseline": _e2e(bed, plan, workdir, 4),
        "exportd": _e2e(bed, plan, workdir, 16),
    }
    return [await alternate(measure, plan.rounds, runs, say)]


def _e2e(bed: Bed, plan: Plan, workdir: Path, workers: int) -> RunOnce:
    calls = 0

    async def run() -> Metrics:
        nonlocal calls
        calls += 1
        profile = plan.profile_at(f"e2e{workers}-{calls}.txt")
        return await e2e_run(
            bed, workdir, workers=workers, exports=plan.e2e_exports, profile=profile
        )

    return run
