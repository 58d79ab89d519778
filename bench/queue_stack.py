"""The queue benchmark's bed: the embedded stack (PostgreSQL, S3), the SMTP sink in a process of
its own, a one-row catalog, `exportd serve` replicas on it, and CPU meters over all of them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg

from bench.procstats import CpuMeter, CpuReader, process_reader, tree_reader
from bench.queue_names import BENCH_APP, EXPORT_NAME
from exportd.config import Settings, as_env
from exportd.db.migrate import migrate
from exportd.db.pool import in_schema
from exportd.dev.servers import free_port
from exportd.dev.stack import Stack, running_stack
from tests.support.database import SCHEMA, connect
from tests.support.processes import ExportdProcess, base_env
from tests.support.tokens import AUDIENCE, JWT_SECRET

BUCKET: Final = "exportd-queue-bench"
SINK_READY_S: Final = 15.0

CATALOG: Final = f"""# Written by bench/queue_bench.py for one run.
[exports.{EXPORT_NAME}]
title = "One row"
description = "One constant row: the export costs the queue, not the data."
tenant_scoped = false
sql = "SELECT 1 AS n, 'bench' AS label"
"""

# Between runs every measure starts from empty tables (idempotency keys go with the exports).
RESET: Final = "TRUNCATE exports, jobs CASCADE"


@dataclass(frozen=True, slots=True)
class Bed:
    stack: Stack
    catalog_path: Path
    sink: subprocess.Popen[bytes]
    sink_port: int

    @property
    def dsn(self) -> str:
        return self.stack.pg.uri

    def settings(self, **overrides: Any) -> Settings:
        """exportd's settings on this bed: loopback, JSON logs, no queued cap in the way."""
        fields: dict[str, Any] = {
            **self.stack.settings(),
            "smtp_host": "127.0.0.1",
            "smtp_port": self.sink_port,
            "catalog_path": self.catalog_path,
            "host": "127.0.0.1",
            "jwt_secret": JWT_SECRET,
            "jwt_audience": AUDIENCE,
            "public_url": "http://127.0.0.1",
            "s3_prefix": "queue-bench",
            "log_format": "json",
            "tenant_max_queued": 1_000_000,
        }
        settings = Settings(**(fields | overrides))
        settings.validate()
        return settings

    def meter(self, **groups: Sequence[int]) -> CpuMeter:
        """CPU of PostgreSQL (every backend), weed, the sink, and each named group of processes
        (exportd replicas, load clients: read them while they live)."""
        readers: dict[str, CpuReader] = {
            "postgres": tree_reader(self.stack.pg.pid),
            "s3": tree_reader(self.stack.s3.pid),
            "sink": process_reader(self.sink.pid),
        }
        readers |= {name: _group_reader(pids) for name, pids in groups.items()}
        return CpuMeter(readers, roots=(os.getpid(), self.stack.pg.pid))


def _group_reader(pids: Sequence[int]) -> CpuReader:
    readers = [tree_reader(pid) for pid in pids]
    return lambda: sum(read() for read in readers)


@contextmanager
def queue_bed(root: Path) -> Iterator[Bed]:
    """The stack under `root`, migrated, with the bench catalog and the sink; all stopped after."""
    with running_stack(root, bucket=BUCKET, mail=False) as stack:
        asyncio.run(migrate(stack.pg.uri, schema=SCHEMA))
        catalog_path = root / "catalog.toml"
        catalog_path.write_text(CATALOG)
        port = free_port()
        sink = subprocess.Popen(
            [sys.executable, "-m", "bench.queue_sink", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _wait_line(sink, "ready")
            yield Bed(stack, catalog_path, sink, port)
        finally:
            _stop(sink)


def _wait_line(process: subprocess.Popen[bytes], expected: str) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if line != expected:
        raise RuntimeError(f"the SMTP sink did not start (said {line!r})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(SINK_READY_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def start_replica(
    bed: Bed, name: str, *, role: str, env: Mapping[str, str] | None = None, **settings: Any
) -> ExportdProcess:
    """`exportd serve --role ROLE` on the bed, ready; its log beside the stack."""
    replica = ExportdProcess.serve(
        name,
        port=free_port(),
        env=base_env() | as_env(bed.settings(**settings)) | dict(env or {}),
        log_path=bed.stack.root / f"{name}.log",
        role=role,
    )
    try:
        await replica.start()
    except BaseException:
        replica.stop()
        raise
    return replica


async def reset(dsn: str) -> None:
    """Empty exports and jobs, and vacuum them, so each run starts from the same tables."""
    conn = await connect(dsn)
    try:
        await conn.execute(RESET)
        await conn.execute("VACUUM ANALYZE exports, jobs")
    finally:
        await conn.close()


async def bench_connection(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    """The driver's own connection: exportd's tables unqualified, marked in pg_stat_activity
    so the connection counts leave it out."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn, server_settings=in_schema(SCHEMA) | {"application_name": BENCH_APP}
    )
    return conn
