"""exportd against the database's COPY limit and a user's script, on the same query, side by side.

    .venv/bin/python -m bench.export_bench --rows 10000000   # make bench (~1.2 GB of CSV)
    .venv/bin/python -m bench.export_bench --rows 300000     # make bench-quick

Starts an embedded stack (PostgreSQL, SeaweedFS S3, an SMTP sink) in a temp dir, fills
bench.rows, starts one real `exportd serve` (1 worker), then runs the variants one at a time,
family by family (CSV, CSV+gzip, CSV+zstd, JSONL, Parquet), each family's three kinds in a row:

- limit:   psql `COPY (query) TO STDOUT` to /dev/null (plain, | gzip -1, | zstd -1; JSONL
           built by PostgreSQL with row_to_json);
- script:  the same COPY piped into boto3 `upload_fileobj` (bench/s3_upload.py);
- exportd: POST /v1/exports, long-poll until done (a format or compression the service
           refuses with `unknown_format` is reported as "not supported yet").

Every variant's CPU is counted per process (PostgreSQL, weed, psql/gzip/zstd/uploader or
exportd), and so is any other process's: a busy machine is flagged, not silently measured.
Prints a table and writes bench/results/export_bench-<rows>-<timestamp>.json and .md.
Exit status: 0 when every variant ran (whatever the targets say), 1 when one failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import fields
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

import psutil

from bench import report
from bench.benchstack import bench_stack, load_rows, server_version
from bench.exportd_runner import start_exportd
from bench.measure import (
    ExportdContext,
    PipelineContext,
    csv_size,
    measure_exportd,
    measure_pipeline,
    missing_tool,
)
from bench.procstats import MIB, CpuMeter, process_reader, tree_reader
from bench.variants import VARIANTS, Measurement, Variant
from exportd.config import Settings
from exportd.dev.stack import Stack
from exportd.export.compress import GZIP_LEVEL, ZSTD_LEVEL

BENCH_DIR: Final = Path(__file__).resolve().parent
REPO_DIR: Final = BENCH_DIR.parent
IDLE_SETTLE_S: Final = 1.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in bench.rows")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated kinds or keys to run, e.g. 'limit/csv,exportd' (default: all)",
    )
    parser.add_argument(
        "--part-size-mib",
        type=int,
        default=setting_default("part_size") // MIB,
        help="EXPORTD_PART_SIZE for the service, in MiB (default: exportd's default)",
    )
    parser.add_argument(
        "--parts-in-flight",
        type=int,
        default=setting_default("parts_in_flight"),
        help="EXPORTD_PARTS_IN_FLIGHT (default: exportd's default)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per variant; the median (by wall) is kept"
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    return args


def setting_default(name: str) -> int:
    value = next(f.default for f in fields(Settings) if f.name == name)
    assert isinstance(value, int)
    return value


def selected(only: str) -> list[Variant]:
    """The variants named in `only`: kinds (`exportd`) or keys (`script/csv+gzip`); all if empty."""
    names = {n.strip() for n in only.split(",") if n.strip()}
    return [v for v in VARIANTS if not names or v.key in names or v.kind in names]


def variant_timeout_s(rows: int) -> float:
    """Generous: ~25 s per million rows above a minute (10 M rows take ~10 s when healthy)."""
    return 60 + rows * 25e-6


def psql_path() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "psql"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    variants = selected(args.only)
    # Not under a 0700 private dir of ours alone: postgres runs as the `pgserver` user.
    root = Path(tempfile.mkdtemp(prefix="exportd-bench-"))
    try:
        with bench_stack(root) as (stack, catalog_path):
            return run(stack, catalog_path, args, variants)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(
    stack: Stack, catalog_path: Path, args: argparse.Namespace, variants: Sequence[Variant]
) -> int:
    started = datetime.now(UTC)
    load_avg = os.getloadavg()
    timeout_s = variant_timeout_s(args.rows)
    say(f"filling bench.rows with {args.rows:,} rows ...")
    load_s = load_rows(stack.pg.uri, args.rows, timeout_s=timeout_s * 2)
    meter = stack_meter(stack)
    pctx = PipelineContext(stack, psql_path(), meter, uuid.uuid4().hex[:8], timeout_s)
    csv_bytes = csv_size(pctx)
    say(f"  {load_s:.1f} s; the query's CSV is {csv_bytes / report.MB:,.1f} MB")
    with ExitStack() as running:
        ectx = None
        if any(v.kind == "exportd" for v in variants):
            ectx = exportd_context(stack, catalog_path, args, timeout_s, running)
        measure = partial(measure_variant, pctx=pctx, ectx=ectx)
        measurements = run_rounds(variants, measure, args.repeat)
    meta = machine_info(stack, args, started, load_avg, load_s)
    result = assemble(meta, measurements, csv_bytes)
    show(result)
    stem = f"export_bench-{args.rows}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    paths = report.write(result, args.out_dir, stem)
    failed = [m for m in measurements if m.status == "failed"]
    if failed:
        keep_logs(stack, args.out_dir, stem)
    say("\nwrote " + ", ".join(str(p) for p in paths))
    return 1 if failed else 0


def stack_meter(stack: Stack, exportd: int | None = None) -> CpuMeter:
    """CPU of PostgreSQL (all its processes), weed and, when given, the exportd process."""
    readers = {"postgres": tree_reader(stack.pg.pid), "s3": tree_reader(stack.s3.pid)}
    if exportd is not None:
        readers["exportd"] = process_reader(exportd)
    return CpuMeter(readers, roots=(os.getpid(), stack.pg.pid))


def exportd_context(
    stack: Stack,
    catalog_path: Path,
    args: argparse.Namespace,
    timeout_s: float,
    running: ExitStack,
) -> ExportdContext:
    """One `exportd serve` for the whole run (idle while the other variants run)."""
    server = start_exportd(
        stack,
        catalog_path,
        part_size=args.part_size_mib * MIB,
        parts_in_flight=args.parts_in_flight,
    )
    running.callback(server.stop)
    time.sleep(IDLE_SETTLE_S)
    return ExportdContext(
        server=server,
        meter=stack_meter(stack, exportd=server.pid),
        rss_idle=int(psutil.Process(server.pid).memory_info().rss),
        timeout_s=timeout_s,
    )


def measure_variant(
    variant: Variant, *, pctx: PipelineContext, ectx: ExportdContext | None
) -> Measurement:
    if variant.kind != "exportd":
        return measure_pipeline(variant, pctx)
    assert ectx is not None
    return measure_exportd(variant, ectx)


def run_rounds(
    variants: Sequence[Variant], measure: Callable[[Variant], Measurement], repeat: int
) -> list[Measurement]:
    """Run the variants in order, `repeat` times round-robin; keep each one's median run.

    Variants are ordered by family (COPY limit, script, exportd for CSV, then CSV+gzip, ...),
    so a drift of the machine or of the S3 server's state over the run favours no one.

    A variant that did not run the first time (skipped, not supported, failed) is not retried.
    """
    runs: dict[str, list[Measurement]] = {v.key: [] for v in variants}
    for round_no in range(repeat):
        if repeat > 1:
            say(f"round {round_no + 1} of {repeat}")
        for v in variants:
            if runs[v.key] and not runs[v.key][0].ok:
                continue
            runs[v.key].append(attempt(v, partial(measure, v)))
    return [median_run(runs[v.key]) for v in variants]


def median_run(runs: Sequence[Measurement]) -> Measurement:
    ok = sorted((m for m in runs if m.ok), key=lambda m: m.wall_s or 0.0)
    if not ok:
        return runs[0]
    chosen = ok[(len(ok) - 1) // 2]
    chosen.walls = tuple(m.wall_s for m in ok if m.wall_s is not None)
    chosen.rss_growth = max((m.rss_growth for m in ok if m.rss_growth is not None), default=None)
    chosen.rss_peak = max((m.rss_peak for m in ok if m.rss_peak is not None), default=None)
    failed = [m.note for m in runs if not m.ok]
    if failed:
        chosen.note = f"{len(failed)} of {len(runs)} runs failed: {failed[0]}"
    return chosen


def attempt(variant: Variant, measure: Callable[[], Measurement]) -> Measurement:
    """Run one variant; a missing tool skips it, an error is recorded (the others still run)."""
    reason = missing_tool(variant)
    if reason is not None:
        m = Measurement(variant, "skipped", note=reason)
    else:
        try:
            m = measure()
        except Exception as exc:
            m = Measurement(variant, "failed", note=f"{type(exc).__name__}: {exc}")
    say(progress_line(m))
    return m


def progress_line(m: Measurement) -> str:
    head = f"  {m.variant.key:<18} {m.variant.label:<36}"
    if not m.ok or m.wall_s is None:
        return f"{head} {m.status}: {m.note}"
    cpu = ", ".join(f"{g} {s:.2f}" for g, s in m.cpu.items())
    return f"{head} {m.wall_s:7.2f} s   CPU s: {cpu}"


def assemble(meta: dict[str, Any], measurements: Sequence[Measurement], csv_bytes: int) -> Any:
    cores = int(meta["cores"])
    summaries = [report.summarize(m, csv_bytes, cores) for m in measurements]
    report.add_ratios(summaries, measurements)
    return {
        "meta": meta,
        "csv_bytes": csv_bytes,
        "variants": summaries,
        "targets": report.targets(summaries, csv_bytes),
        "budget": report.budget(summaries, cores),
    }


def show(result: dict[str, Any]) -> None:
    summaries = result["variants"]
    say("")
    say(report.text_table(summaries))
    say("")
    say(report.targets_text(result["targets"]))
    say("")
    for line in report.budget_lines(result["budget"], summaries):
        say(line)
    for note in report.notes(summaries):
        say(f"note: {note}")


def machine_info(
    stack: Stack,
    args: argparse.Namespace,
    started: datetime,
    load_avg: tuple[float, float, float],
    load_s: float,
) -> dict[str, Any]:
    return {
        "rows": args.rows,
        "started_at": started.isoformat(timespec="seconds"),
        "cores": os.cpu_count() or 1,
        "cpu_model": cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": server_version(stack.pg.uri),
        "weed": tool_version([str(Path(sys.executable).parent / "weed"), "version"]),
        "gzip": tool_version(["gzip", "--version"]),
        "zstd": tool_version(["zstd", "--version"]),
        "exportd_commit": git_commit(),
        "exportd_levels": exportd_levels(),
        "exportd_settings": (
            f"EXPORTD_WORKERS=1, EXPORTD_PART_SIZE={args.part_size_mib} MiB, "
            f"EXPORTD_PARTS_IN_FLIGHT={args.parts_in_flight}"
        ),
        "script_settings": "boto3 upload_fileobj, 16 MiB parts, max_concurrency 4",
        "repeat": args.repeat,
        "table_load_s": round(load_s, 1),
        "load_avg_before": " ".join(f"{x:.2f}" for x in load_avg),
        "load_avg_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def exportd_levels() -> str:
    """The compression levels the service uses (the shell variants use gzip -1 and zstd -1)."""
    return f"gzip {GZIP_LEVEL}, zstd {ZSTD_LEVEL}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip(" *") if lines else "unknown"


def git_commit() -> str:
    head = tool_version(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    dirty = tool_version(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "exportd"])
    return head + (" (exportd/ modified)" if dirty not in ("unknown", "not available") else "")


def keep_logs(stack: Stack, out_dir: Path, stem: str) -> None:
    """Copy the service's and the S3 server's logs next to the results, for a failed run."""
    for name, path in (("exportd", stack.root / "exportd.log"), ("weed", stack.s3.log_path)):
        if path.exists():
            shutil.copyfile(path, out_dir / f"{stem}-{name}.log")


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
