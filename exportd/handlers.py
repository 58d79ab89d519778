"""What each job kind does: `build` makes the file, `notify` mails its link."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aiosmtplib
import asyncpg
import botocore.exceptions
import structlog

from exportd import db
from exportd.catalog import Catalog
from exportd.config import Settings
from exportd.errors import ExportdError, JobFailure, LeaseLost
from exportd.formats import content_type
from exportd.mailer import Mailer, ReadyMail
from exportd.parquet import UnsupportedValue
from exportd.pipeline import ProgressMeter, Request, export_rows
from exportd.storage import Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What handlers need, built once per process."""

    settings: Settings
    pool: db.Pool
    source: db.Pool
    storage: Storage
    mailer: Mailer
    catalog: Catalog


Handler = Callable[
    [db.JobRow, Services, structlog.typing.FilteringBoundLogger], Coroutine[None, None, None]
]


def export_prefix(settings: Settings, export: db.ExportRow) -> str:
    return f"{settings.s3_prefix.strip('/')}/{export.tenant}/{export.id}/"


def object_key(settings: Settings, export: db.ExportRow, job: db.JobRow) -> str:
    """Per-claim key: a stale attempt can only ever write (and delete) its own object."""
    return f"{export_prefix(settings, export)}{job.lease_token}/{export.file_name}"


async def build(job: db.JobRow, svc: Services, log: structlog.typing.FilteringBoundLogger) -> None:
    export = await db.get_export_by_id(svc.pool, job.export_id)
    if export is None or export.terminal:
        # Nothing left to build (the export ended some other way): drop the job, fenced.
        if not await db.fail_job(svc.pool, job, "export_closed", "export already finished"):
            raise LeaseLost
        return
    try:
        export_type = svc.catalog.get(export.export_name)
        request = Request(
            export_type=export_type,
            tenant=export.tenant,
            params=export.params,
            format=export.format,
            compression=export.compression,
            options=export.options,
        )
    except ExportdError as exc:
        raise JobFailure(exc.code, exc.detail, retryable=False) from exc
    media_type = content_type(export.format, export.compression)

    async def report(rows: int, size: int) -> None:
        if not await db.update_progress(svc.pool, job, rows, size):
            raise LeaseLost

    key = object_key(svc.settings, export, job)
    writer = svc.storage.writer(key, content_type=media_type, file_name=export.file_name)
    meter = ProgressMeter(report, svc.settings.progress_interval, writer)
    try:
        snapshot = await export_rows(svc.source, request, writer, meter)
        # Fence before the upload becomes an object: a worker that lost its claim stops here.
        if not await db.heartbeat(svc.pool, job, svc.settings.lease):
            raise LeaseLost
        stored = await writer.close()
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    result = db.BuildResult(
        object_key=key,
        size=stored.size,
        rows=snapshot.rows,
        sha256=stored.sha256,
        content_type=media_type,
        as_of=snapshot.as_of,
    )
    if not await db.complete_build(svc.pool, job, result, retention=svc.settings.retention):
        await svc.storage.delete(key)
        raise LeaseLost
    log.info("build.succeeded", rows=snapshot.rows, size=stored.size, parts=stored.parts)


async def remove_leftovers(
    svc: Services, export: db.ExportRow, key: str, log: structlog.typing.FilteringBoundLogger
) -> None:
    """Delete what build attempts that died left under the export's prefix (whole files,
    open uploads). Run by the notify job, so a replica dying right after a build's commit
    cannot skip it: the job runs again until it completes."""
    try:
        removed = await svc.storage.delete_others(export_prefix(svc.settings, export), keep=key)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        log.warning("notify.cleanup_failed", error=str(exc))  # the result stands: only litter
    else:
        if removed:
            log.info("notify.cleaned_up", removed=len(removed))


async def notify(job: db.JobRow, svc: Services, log: structlog.typing.FilteringBoundLogger) -> None:
    export = await db.get_export_by_id(svc.pool, job.export_id)
    if export is not None and export.object_key is not None and export.attempts > 1:
        await remove_leftovers(svc, export, export.object_key, log)
    if (
        export is None
        or export.status != "succeeded"
        or export.notified_at is not None
        or not export.recipient
        or export.object_key is None
        or export.expires_at is None
    ):
        log.info("notify.skipped")
        await db.complete_notify(svc.pool, job)
        return
    now = datetime.now(UTC)
    ttl = min(svc.settings.link_ttl, export.expires_at - now)
    if ttl.total_seconds() <= 0:
        log.info("notify.expired")
        await db.complete_notify(svc.pool, job)
        return
    if export.mail_attempted_at is not None:
        # A claim before us began sending and died before recording the outcome: the mail
        # may have gone out. At most one mail per export, so not again.
        log.warning("notify.outcome_unknown")
        await db.fail_job(
            svc.pool, job, "mail_outcome_unknown", "a replica died while sending the mail"
        )
        return
    url = await svc.storage.presign_get(export.object_key, ttl)
    # The fence before the side effect that cannot be taken back, recorded before it.
    if not await db.begin_mail(svc.pool, job):
        raise LeaseLost
    mail = ReadyMail(
        export_id=str(export.id),
        recipient=export.recipient,
        file_name=export.file_name,
        size=export.result_size or 0,
        rows=export.result_rows or 0,
        url=url,
        link_expires_at=now + ttl,
    )
    try:
        await svc.mailer.send(mail)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        # No 250 for the message: the server did not take it, so another attempt may.
        await db.mail_refused(svc.pool, job)
        raise
    if not await db.complete_notify(svc.pool, job):
        raise LeaseLost
    log.info("notify.sent")


HANDLERS: Final[dict[str, Handler]] = {"build": build, "notify": notify}


def classify(exc: BaseException) -> JobFailure:
    """Map an unexpected error to retryable (outages, timeouts) or permanent (bad SQL, refusals)."""
    if isinstance(exc, JobFailure):
        return exc
    if isinstance(exc, UnsupportedValue):
        return JobFailure("unsupported_value", str(exc), retryable=False)
    if isinstance(exc, asyncpg.PostgresError):
        if db.is_unavailable(exc):
            return JobFailure("database_unavailable", str(exc), retryable=True)
        return JobFailure("query_failed", f"export query failed: {exc}", retryable=False)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return JobFailure("recipient_refused", str(exc), retryable=False)
    if isinstance(exc, aiosmtplib.SMTPException):
        return JobFailure("mail_unavailable", str(exc), retryable=True)
    if isinstance(exc, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        return JobFailure("storage_unavailable", str(exc), retryable=True)
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return JobFailure("unavailable", f"{type(exc).__name__}: {exc}", retryable=True)
    return JobFailure("internal", f"{type(exc).__name__}: {exc}", retryable=True)
