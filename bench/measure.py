"""Running one variant and measuring it: wall time, CPU per process group, RSS for exportd."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.benchstack import QUERY
from bench.exportd_runner import build_seconds, run_export, wait_notified
from bench.pipelines import Stage, run_pipeline
from bench.procstats import CpuMeter
from bench.variants import Measurement, Variant
from exportd.dev.stack import Stack
from tests.support.memory import RssSampler
from tests.support.processes import ExportdProcess

BENCH_DIR: Final = Path(__file__).resolve().parent
# After a pipeline ends, let the server side finish its bookkeeping (a backend exiting, the
# last part landing) before the "after" CPU reading.
SETTLE_S: Final = 0.3
COMPRESSORS: Final = {"gzip": ("gzip", "-1", "-c"), "zstd": ("zstd", "-1", "-c", "-q")}
SUFFIXES: Final = {"none": "", "gzip": ".gz", "zstd": ".zst"}


def copy_sql(fmt: str) -> str:
    """The COPY statement exportd runs for CSV; for JSONL, PostgreSQL builds each line.

    The JSONL trick: CSV format with a quote and a delimiter that JSON text never contains, so
    each `row_to_json` value is written as-is, one per line.
    """
    if fmt == "csv":
        return f"COPY ({QUERY}) TO STDOUT (FORMAT csv, HEADER)"
    if fmt == "jsonl":
        return (
            f"COPY (SELECT row_to_json(q) FROM ({QUERY}) AS q) TO STDOUT "
            r"(FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')"
        )
    raise ValueError(f"no COPY for {fmt}")


def psql_stage(psql: Path, dsn: str, fmt: str) -> Stage:
    argv = [str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", copy_sql(fmt)]
    return Stage("psql", argv)


def missing_tool(variant: Variant) -> str | None:
    """Why a pipeline variant cannot run here, if it cannot."""
    if variant.kind == "exportd" or variant.compression == "none":
        return None
    tool = COMPRESSORS[variant.compression][0]
    if shutil.which(tool) is None:
        return f"`{tool}` is not installed (apt-get install -y {tool})"
    return None


@dataclass(frozen=True, slots=True)
class PipelineContext:
    stack: Stack
    psql: Path
    meter: CpuMeter
    run_id: str
    timeout_s: float


def stages_for(variant: Variant, ctx: PipelineContext) -> list[Stage]:
    stages = [psql_stage(ctx.psql, ctx.stack.pg.uri, variant.fmt)]
    if variant.compression != "none":
        stages.append(Stage(variant.compression, COMPRESSORS[variant.compression]))
    if variant.kind == "script":
        stages.append(uploader_stage(ctx, object_key(variant, ctx.run_id)))
    return stages


def object_key(variant: Variant, run_id: str) -> str:
    name = f"{variant.fmt}.{variant.fmt}{SUFFIXES[variant.compression]}"
    return f"script/{run_id}/{name}"


def uploader_stage(ctx: PipelineContext, key: str) -> Stage:
    s3 = ctx.stack.s3
    env: Mapping[str, str] = os.environ | {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
    }
    script = str(BENCH_DIR / "s3_upload.py")
    argv = [sys.executable, script, "--endpoint", s3.endpoint_url, "--bucket", s3.bucket]
    return Stage("uploader", [*argv, "--key", key], env)


def measure_pipeline(variant: Variant, ctx: PipelineContext) -> Measurement:
    stages = stages_for(variant, ctx)
    before = ctx.meter.read()
    run = run_pipeline(stages, timeout_s=ctx.timeout_s)
    time.sleep(SETTLE_S)
    spent = CpuMeter.spent(before, ctx.meter.read())
    out_bytes = None
    if variant.kind == "script":
        head = ctx.stack.s3.client().head_object(
            Bucket=ctx.stack.s3.bucket, Key=object_key(variant, ctx.run_id)
        )
        out_bytes = int(head["ContentLength"])
    return Measurement(
        variant,
        "ok",
        wall_s=run.wall_s,
        out_bytes=out_bytes,
        cpu=spent.groups | run.cpu,
        client=tuple(dict.fromkeys(stage.name for stage in stages)),
        machine_cpu=spent.machine,
        steal=spent.steal,
        outside_cpu=CpuMeter.outside_total(spent),
    )


def csv_size(ctx: PipelineContext) -> int:
    """Bytes of the query's CSV (with header); also warms the caches for every variant."""
    run = run_pipeline(
        [psql_stage(ctx.psql, ctx.stack.pg.uri, "csv")], timeout_s=ctx.timeout_s, count_output=True
    )
    assert run.stdout_bytes is not None
    return run.stdout_bytes


@dataclass(frozen=True, slots=True)
class ExportdContext:
    server: ExportdProcess
    meter: CpuMeter
    rss_idle: int
    timeout_s: float


def measure_exportd(variant: Variant, ctx: ExportdContext) -> Measurement:
    """POST the export, long-poll until it is terminal; CPU and RSS over that span."""
    before = ctx.meter.read()
    with RssSampler(ctx.server.pid) as rss:
        finished = run_export(ctx.server, variant.fmt, variant.compression, timeout_s=ctx.timeout_s)
        spent = CpuMeter.spent(before, ctx.meter.read())
    export = finished.export
    if export["status"] != "succeeded":
        error = export.get("error") or {}
        note = f"{export['status']}: {error.get('code')}: {error.get('message')}"
        return Measurement(variant, "failed", note=note)
    wait_notified(ctx.server, export["id"])
    result = export["result"]
    return Measurement(
        variant,
        "ok",
        wall_s=finished.wall_s,
        out_bytes=int(result["size"]),
        rows=int(result["rows"]),
        cpu=spent.groups,
        client=("exportd",),
        machine_cpu=spent.machine,
        steal=spent.steal,
        outside_cpu=CpuMeter.outside_total(spent),
        build_s=build_seconds(export),
        rss_idle=ctx.rss_idle,
        rss_growth=rss.peak - rss.first,
        rss_peak=rss.peak,
    )
