"""The `notify` job: mail the link to a finished export, at most once, and tidy what dead
build attempts left under its prefix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exportd.db import exports, jobs, mail
from exportd.db.pool import Pool
from exportd.db.rows import ExportRow, JobRow
from exportd.errors import LeaseLost, new_error_id
from exportd.logs import Log
from exportd.metrics import Metrics
from exportd.model import Status
from exportd.notify.mailer import Mailer, MailNotSent
from exportd.notify.message import ReadyMail, compose
from exportd.storage.errors import StorageUnavailable
from exportd.storage.keys import export_prefix
from exportd.storage.s3 import Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyJob:
    pool: Pool
    storage: Storage
    mailer: Mailer
    s3_prefix: str
    link_ttl: timedelta
    metrics: Metrics

    async def __call__(self, job: JobRow, log: Log) -> None:
        export = await exports.get_export_by_id(self.pool, job.export_id)
        if export is not None and export.object_key is not None and export.attempts > 1:
            await self._remove_leftovers(export, export.object_key, log)
        if (
            export is None
            or export.status != Status.SUCCEEDED
            or export.notified_at is not None
            or not export.recipient
            or export.object_key is None
            or export.expires_at is None
        ):
            log.info("notify.skipped")
            await mail.complete_notify(self.pool, job)
            return
        now = datetime.now(UTC)
        ttl = min(self.link_ttl, export.expires_at - now)
        if ttl.total_seconds() <= 0:
            log.info("notify.expired")
            await mail.complete_notify(self.pool, job)
            return
        if export.mail_attempted_at is not None:
            # A claim before us began sending and died before recording the outcome: the mail
            # may have gone out. At most one mail per export, so not again.
            log.warning("notify.outcome_unknown")
            await jobs.fail_job(
                self.pool,
                job,
                "mail_outcome_unknown",
                "A replica stopped while sending the mail; it was not sent again.",
                new_error_id(),
            )
            return
        url = await self.storage.presign_get(export.object_key, ttl)
        message = compose(
            ReadyMail(
                export_id=str(export.id),
                recipient=export.recipient,
                file_name=export.file_name,
                size=export.result_size or 0,
                rows=export.result_rows or 0,
                url=url,
                link_expires_at=now + ttl,
            ),
            sender=self.mailer.sender,
        )
        # The fence before the side effect that cannot be taken back, recorded before it.
        if not await mail.begin_mail(self.pool, job):
            raise LeaseLost
        try:
            with self.metrics.mail_seconds.time():
                await self.mailer.send(message)
        except MailNotSent:
            # No 250 for the message: the server did not take it, so another attempt may.
            await mail.mail_refused(self.pool, job)
            raise
        if not await mail.complete_notify(self.pool, job):
            raise LeaseLost
        log.info("notify.sent")

    async def _remove_leftovers(self, export: ExportRow, key: str, log: Log) -> None:
        """Delete what build attempts that died left under the export's prefix (whole files,
        open uploads). Run here, not by the build, so a replica dying right after a build's
        commit cannot skip it: this job runs again until it completes."""
        prefix = export_prefix(self.s3_prefix, export.tenant, export.id)
        try:
            removed = await self.storage.delete_others(prefix, keep=key)
        except StorageUnavailable as exc:
            log.warning("notify.cleanup_failed", error=exc.message)  # the result stands
        else:
            if removed:
                log.info("notify.cleaned_up", removed=len(removed))
