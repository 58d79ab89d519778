"""Replica chaos at scale: N `exportd serve` replicas behind nginx, one killed -9 again and again.

The larger version of tests/process/test_replicas.py, on its own embedded stack (PostgreSQL,
SeaweedFS S3, an SMTP sink, all on loopback). A client POSTs the exports through nginx
(Idempotency-Key, retries) while a replica holding jobs is killed every few seconds and
started again on its port; then it waits for every export's story to end (built, mailed,
its webhooks delivered, its file expired) and counts, from the database, S3, the mail sink,
the webhook receivers and the replica logs, what happened. Prints the counts and writes
them to bench/results/replica_chaos-<timestamp>.{json,md}. Bounded in count and time; every
process it starts is stopped on the way out.

    .venv/bin/python -m bench.replica_chaos --exports 2000 --replicas 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

from exportd.config import Settings
from exportd.db.migrate import migrate
from exportd.dev.servers import free_port
from exportd.dev.stack import Stack, running_stack
from tests.support import chaos as scenario
from tests.support import chaos_tally as tally
from tests.support.catalog import CATALOG_PATH, HOOKS
from tests.support.database import SCHEMA, connect
from tests.support.loadbalancer import LoadBalancer, nginx_binary
from tests.support.processes import ROOT, ExportdProcess, fleet_env
from tests.support.receiver import Receiver
from tests.support.tokens import AUDIENCE, JWT_SECRET

RESULTS: Final = ROOT / "bench" / "results"
DATABASE: Final = "replica_chaos"
BUCKET: Final = "exportd-chaos"
MAX_EXPORTS: Final = 20_000
MAX_REPLICAS: Final = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=int, default=2000, help="exports to request")
    parser.add_argument("--replicas", type=int, default=3, help="exportd serve processes")
    parser.add_argument("--workers", type=int, default=4, help="EXPORTD_WORKERS per replica")
    parser.add_argument("--rows", type=int, default=200, help="rows per export")
    parser.add_argument("--concurrency", type=int, default=20, help="POSTs in flight at most")
    parser.add_argument("--rate", type=float, default=10.0, help="exports a second (average)")
    parser.add_argument("--burst", type=int, default=20, help="exports sent together")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 3.0), metavar="S")
    parser.add_argument("--max-kills", type=int, default=500, help="stop the chaos after")
    parser.add_argument("--seed", type=int, help="chaos seed (random by default)")
    parser.add_argument("--drain-limit", type=float, default=300, help="seconds to finish")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds for it all")
    parser.add_argument("--keep", action="store_true", help="keep the stack dir (logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.exports <= MAX_EXPORTS:
        parser.error(f"--exports must be 1-{MAX_EXPORTS}")
    if not 1 <= args.replicas <= MAX_REPLICAS:
        parser.error(f"--replicas must be 1-{MAX_REPLICAS}")
    if args.rate <= 0 or args.burst < 1 or args.concurrency < 1 or args.workers < 1:
        parser.error("--rate, --burst, --concurrency and --workers must be positive")
    return args


def replica_env(settings: Settings, workers: int) -> dict[str, str]:
    """What the test's `replicas` fixture gives its processes, with the scenario's settings."""
    return fleet_env(settings) | scenario.REPLICA_ENV | {"EXPORTD_WORKERS": str(workers)}


async def run(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    dsn = await stack.pg.recreate_database(DATABASE)
    await migrate(dsn, schema=SCHEMA)
    root, s3, sink = stack.root, stack.s3, stack.mail
    settings = Settings(
        **(stack.settings() | {"database_url": dsn}),
        catalog_path=CATALOG_PATH,
        catalog_hooks=",".join(HOOKS),
        host="127.0.0.1",
        jwt_secret=JWT_SECRET,
        jwt_audience=AUDIENCE,
        public_url="http://127.0.0.1",
        s3_prefix=f"chaos-{uuid.uuid4().hex[:8]}",
        max_wait=timedelta(seconds=30),
    )
    env = replica_env(settings, args.workers)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    fleet = [
        ExportdProcess.serve(f"r{n}", port=free_port(), env=env, log_path=logs / f"r{n}.log")
        for n in range(1, args.replicas + 1)
    ]
    conn = await connect(dsn)
    nginx = LoadBalancer([r.port for r in fleet], root / "nginx")
    receivers = [Receiver() for _ in scenario.TENANTS]
    try:
        await asyncio.gather(*(r.start() for r in fleet), *(r.start() for r in receivers))
        nginx.start()
        await scenario.register_webhooks(nginx.url, receivers)
        chaos = scenario.Chaos(
            fleet,
            partial(scenario.live_leases, conn),
            interval=(args.kill_every[0], args.kill_every[1]),
            max_kills=args.max_kills,
            seed=random.randrange(2**32) if args.seed is None else args.seed,
        )
        print(
            f"replica chaos: {args.exports} exports, {args.replicas} replicas x {args.workers}"
            f" workers, {args.rate}/s in bursts of {args.burst}, a kill every"
            f" {args.kill_every[0]}-{args.kill_every[1]} s (seed {chaos.seed}); nginx at"
            f" {nginx.url}, logs in {root}",
            flush=True,
        )
        body = {"export": "numbers", "params": {"rows": args.rows}}
        started = time.monotonic()
        traffic = await scenario.drive_with_chaos(
            nginx.url,
            fleet,
            args.exports,
            chaos=chaos,
            concurrency=args.concurrency,
            rate=args.rate,
            burst=args.burst,
            body=body,
        )
        print(
            f"  {len(traffic.acknowledged)} acknowledged in {traffic.seconds:.0f} s,"
            f" {chaos.kills} kills; draining ...",
            flush=True,
        )
        drain_s = await scenario.drained(conn, args.exports, within=args.drain_limit)
        wall_s = time.monotonic() - started
        finished = tally.Run(
            args.exports, fleet, traffic, chaos, nginx.failovers(), drain_s, wall_s
        )
        outcome, report = await tally.conclude(
            conn, s3, settings.s3_prefix, sink.messages, receivers, finished
        )
        try:
            tally.check(outcome, args.exports)
            report["verdict"] = "ok"
        except AssertionError as exc:
            report["verdict"] = f"FAILED: {str(exc)[:2000]}"
        return report
    finally:
        for replica in fleet:
            if replica.running:
                await replica.kill()
        for receiver in receivers:
            await receiver.stop()
        nginx.stop()
        await conn.close()


def write_results(args: argparse.Namespace, report: dict[str, Any]) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    params = {k: v for k, v in vars(args).items() if k not in ("keep", "time_limit", "drain_limit")}
    document = {"benchmark": "replica_chaos", "at": stamp, "params": params, "result": report}
    json_path = RESULTS / f"replica_chaos-{stamp}.json"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        f"# Replica chaos, {stamp}",
        "",
        f"{args.exports} exports (`numbers`, {args.rows} rows) through nginx to"
        f" {args.replicas} replicas x {args.workers} workers; {args.rate}/s in bursts of"
        f" {args.burst}, {args.concurrency} POSTs in flight at most; a replica holding jobs"
        f" killed -9 every {args.kill_every[0]}-{args.kill_every[1]} s and restarted.",
        "",
        "| count | value |",
        "|---|---|",
        *(
            f"| {k} | {json.dumps(v) if isinstance(v, dict | list) else v} |"
            for k, v in report.items()
        ),
        "",
    ]
    md_path = RESULTS / f"replica_chaos-{stamp}.md"
    md_path.write_text("\n".join(lines))
    return json_path, md_path


def print_report(report: dict[str, Any]) -> None:
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"  {key:<{width}}  {value}")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally and the ExitStack


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nginx_binary()  # fail at once, before starting anything, when nginx is missing
    signal.signal(signal.SIGTERM, _exit_on_signal)
    root = Path(tempfile.mkdtemp(prefix="exportd-replica-chaos-"))
    report: dict[str, Any] = {"verdict": "did not finish"}
    try:
        with running_stack(root, bucket=BUCKET) as stack:

            async def bounded() -> dict[str, Any]:
                async with asyncio.timeout(args.time_limit):
                    return await run(args, stack)

            report = asyncio.run(bounded())
    finally:
        if args.keep or report["verdict"] != "ok":
            print(f"stack dir (logs) kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_report(report)
    json_path, md_path = write_results(args, report)
    print(f"written: {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}")
    return 0 if report["verdict"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
