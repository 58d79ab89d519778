"""The queue side of exportd against its baselines, on the embedded stack, in one run.

    .venv/bin/python -m bench.queue_bench           # make bench-queue: medians of 3 rounds
    .venv/bin/python -m bench.queue_bench --quick   # in make bench-quick: 1 round, smaller

Starts PostgreSQL and S3 (exportd.dev.stack), the SMTP sink in its own process and `exportd
serve` processes on loopback, then measures, each side by side with its baseline and the
rounds alternating (baseline, exportd, baseline, …):

1.  long-poll fan-out: N long-polls over 50 queued exports, answered by one change (vs a bare
    LISTEN, and exportd with nobody waiting); 1b. many long-polls on one export, answered by
    its completion (vs one waiter);
2.  claim → complete with exportd's statements (vs a bare SKIP LOCKED loop, PgQueuer's own
    benchmark from its sdist);
3.  db.create_export at concurrency 16 (vs INSERT + NOTIFY);
4.  POST /v1/exports at concurrency 32 (vs db.create_export);
5.  one-row exports end to end with 16 and 4 workers;
6.  one long-poll at a time (vs the NOTIFY round trip).

Loads run in processes of their own. Prints the table, writes
bench/results/queue_bench-<mode>-<UTC time>.{json,md}; every process it started is stopped.
Exit status: 0 when every run ran, 1 when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import psutil

from bench import queue_report
from bench.benchstack import server_version
from bench.export_bench import cpu_model, git_commit, say, tool_version
from bench.queue_measures import Measure
from bench.queue_profile import hot_frames
from bench.queue_stack import Bed, queue_bed
from bench.queue_suite_longpoll import FULL, QUICK, Plan, longpoll_suite
from bench.queue_suite_work import claim_suite, create_suite, e2e_suite

RESULTS: Final = Path(__file__).resolve().parent / "results"
Suite = Callable[[Bed, Plan, Path, Callable[[str], None]], Awaitable[list[Measure]]]
SUITES: Final[dict[str, Suite]] = {
    "longpoll": longpoll_suite,  # 6, 1, 1b, 4 (one API replica)
    "creates": create_suite,  # 3
    "claims": claim_suite,  # 2
    "e2e": e2e_suite,  # 5
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round, smaller loads (<2 min)")
    parser.add_argument("--only", default="", help=f"comma-separated suites: {', '.join(SUITES)}")
    parser.add_argument("--rounds", type=int, help="rounds per measure (default 3; quick 1)")
    parser.add_argument("--waiters", type=int, help="long-polls in measure 1")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--time-limit", type=float, help="seconds for it all (then it stops)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy on exportd during its runs (pip install py-spy)",
    )
    args = parser.parse_args(argv)
    unknown = {s for s in args.only.split(",") if s} - set(SUITES)
    if unknown:
        parser.error(f"unknown suites: {', '.join(sorted(unknown))}")
    if (args.rounds is not None and args.rounds < 1) or (args.waiters or 1) < 1:
        parser.error("--rounds and --waiters must be at least 1")
    return args


def plan_of(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    if args.waiters:
        plan = dataclasses.replace(plan, waiters=args.waiters)
    return plan


def raise_fd_limit() -> int:
    """Let this process and its children (exportd, the load) hold 10,000+ connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run(bed: Bed, plan: Plan, suites: Sequence[str], workdir: Path, limit: float) -> Any:
    measures: list[Measure] = []
    try:
        async with asyncio.timeout(limit):
            for name in suites:
                measures += await SUITES[name](bed, plan, workdir, say)
    except TimeoutError:
        say(f"time limit ({limit:.0f} s) reached: stopping with what was measured")
    return measures


def meta(bed: Bed, plan: Plan, started: datetime, load: tuple[float, ...]) -> dict[str, Any]:
    return {
        "mode": plan.name,
        "started_at": started.isoformat(timespec="seconds"),
        "load_avg_at_start": " ".join(f"{x:.2f}" for x in load),
        "load_avg_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "cores": os.cpu_count() or 1,
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": server_version(bed.dsn),
        "weed": tool_version([str(Path(sys.executable).parent / "weed"), "version"]),
        "exportd_commit": git_commit(),
        "plan": {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(plan).items()
        },
    }


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: processes are stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_of(args)
    suites = [s for s in SUITES if not args.only or s in args.only.split(",")]
    limit = args.time_limit or (300.0 if args.quick else 2400.0)
    load, started, clock = os.getloadavg(), datetime.now(UTC), time.monotonic()
    stem = f"queue_bench-{plan.name}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    if args.profile:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        plan = dataclasses.replace(plan, profile=args.out_dir / f"{stem}-profile")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    say(
        f"queue benchmark ({plan.name}): load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f},"
        f" {raise_fd_limit()} open files allowed"
    )
    # Not under a 0700 private dir: postgres runs as the `pgserver` user.
    root = Path(tempfile.mkdtemp(prefix="exportd-queue-bench-"))
    workdir = root / "load"
    workdir.mkdir()
    try:
        with queue_bed(root) as bed:
            measures = asyncio.run(run(bed, plan, suites, workdir, limit))
            info = meta(bed, plan, started, load) | {"seconds": round(time.monotonic() - clock)}
    finally:
        if args.keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    result = {"meta": info, "measures": [m.as_json() for m in measures]}
    say("")
    say(queue_report.text_table(measures))
    paths = queue_report.write(result, measures, args.out_dir, stem)
    say("wrote " + ", ".join(str(p) for p in paths))
    for raw in sorted(args.out_dir.glob(f"{stem}-profile-*.txt")):
        say(f"\n{raw.name}: leaf share, on-stack share")
        for frame, leaf, anywhere in hot_frames(raw):
            say(f"  {leaf:6.1%} {anywhere:6.1%}  {frame}")
    failed = any(side.errors for m in measures for side in m.sides.values())
    return 1 if failed or not measures else 0


if __name__ == "__main__":
    sys.exit(main())
