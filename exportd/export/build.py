"""The `build` job: run the pipeline for one claimed export and record its result, fenced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import asyncpg

from exportd.db import jobs
from exportd.db.completions import Completions
from exportd.db.pool import Pool, is_unavailable
from exportd.db.rows import BuildResult, ExportRow, JobRow, Reading
from exportd.errors import ExportdError, JobFailure, LeaseLost
from exportd.export.arrow import UnsupportedValue
from exportd.export.catalog import Catalog
from exportd.export.formats import content_type
from exportd.export.pipeline import export_rows
from exportd.export.request import ProgressMeter, Request
from exportd.logs import Log
from exportd.metrics import Metrics
from exportd.storage.keys import object_key
from exportd.storage.s3 import Storage

# Besides an outage: a refused login (class 28) or a missing database (3D) on the source is
# the infrastructure's fault, never the export's, and may be fixed while it waits.
_SOURCE_SETUP_CLASSES: Final = ("28", "3D")


@contextmanager
def source_errors() -> Iterator[None]:
    """What the source's errors mean for the export: an outage or a refused login is worth
    a retry; a query the database refuses, or a value the format cannot hold, will fail the
    same way again. The database's own words go to the log, not to the export's owner."""
    try:
        yield
    except UnsupportedValue as exc:
        raise JobFailure(
            "unsupported_value",
            "A value does not fit the file format's column type; the export's definition "
            "needs a fixed type.",
            retryable=False,
            detail=str(exc),
        ) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if is_unavailable(exc) or sqlstate[:2] in _SOURCE_SETUP_CLASSES:
            raise JobFailure(
                "source_unavailable",
                "The source database is unavailable; the export will be retried.",
                retryable=True,
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        raise JobFailure(
            "query_failed",
            "The export's query failed in the database.",
            retryable=False,
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildJob:
    """Makes the file: stream the export into S3, then record it and queue what follows."""

    pool: Pool
    source: Pool
    storage: Storage
    catalog: Catalog
    s3_prefix: str
    lease: timedelta
    completions: Completions
    progress_interval: timedelta
    metrics: Metrics

    async def __call__(self, job: JobRow, log: Log) -> None:
        started = time.monotonic()
        export = job.export
        if export.terminal:
            # Nothing left to build (the export ended some other way): drop the job, fenced.
            if not await jobs.finish_job(self.pool, job):
                raise LeaseLost
            return
        request = self._request(export)
        media_type = content_type(export.format, export.compression)

        async def report(reading: Reading, phase: str = "building") -> None:
            if not await jobs.update_progress(self.pool, job, reading, phase):
                raise LeaseLost

        key = object_key(
            self.s3_prefix, export.tenant, export.id, job.lease_token, export.file_name
        )
        writer = self.storage.writer(key, content_type=media_type, file_name=export.file_name)
        meter = ProgressMeter(report, self.progress_interval, writer)
        try:
            with source_errors():
                snapshot = await export_rows(self.source, request, writer, meter)
            # Fence before the upload becomes an object: a worker that lost its claim stops here.
            if not await jobs.heartbeat(self.pool, job, self.lease):
                raise LeaseLost
            if meter.reported:  # someone may be watching a long build: the upload ends it
                await report(meter.reading(), "uploading")
            stored = await writer.close()
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        result = BuildResult(
            object_key=key,
            size=stored.size,
            rows=snapshot.rows,
            sha256=stored.sha256,
            content_type=media_type,
            as_of=snapshot.as_of,
        )
        if not await self.completions.build_done(job, result):
            await self.storage.delete(key)
            raise LeaseLost
        self.metrics.build_seconds.labels(format=export.format).observe(time.monotonic() - started)
        self.metrics.export_bytes.observe(stored.size)
        self.metrics.export_rows.observe(snapshot.rows)
        log.info("build.succeeded", rows=snapshot.rows, size=stored.size, parts=stored.parts)

    def _request(self, export: ExportRow) -> Request:
        """The stored request against today's catalog; an export gone from it cannot run."""
        try:
            return Request(
                export_type=self.catalog.get(export.export_name),
                tenant=export.tenant,
                params=export.params,
                format=export.format,
                compression=export.compression,
                options=export.options,
            )
        except ExportdError as exc:
            raise JobFailure(exc.code, exc.detail, retryable=False) from exc
