"""The `notify` job: mail the owner a link to the finished file, or why the export failed,
and tidy what dead build attempts left under its prefix.

A mail is never silently dropped: when a replica died inside an earlier send (the outcome is
unknown), the mail goes again with the same Message-ID, which receivers use to drop a copy
they already hold. A rare second copy is better than a user waiting for a mail that never
comes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from exportd.db import jobs, mail
from exportd.db.completions import Completions
from exportd.db.downloads import new_link_token
from exportd.db.pool import Pool
from exportd.db.rows import ExportRow, JobRow
from exportd.errors import LeaseLost
from exportd.logs import Log
from exportd.metrics import Metrics
from exportd.model import Status
from exportd.notify.mailer import Mailer, MailNotSent
from exportd.notify.message import FailedMail, Mail, ReadyMail, Templates, compose
from exportd.storage.errors import StorageUnavailable
from exportd.storage.keys import export_prefix
from exportd.storage.s3 import Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyJob:
    pool: Pool
    completions: Completions
    storage: Storage
    mailer: Mailer
    # An export's human title, by its catalog name.
    title_of: Callable[[str], str]
    templates: Templates
    s3_prefix: str
    # Where the mail's links point: exportd's public address.
    public_url: str
    message_id_domain: str
    metrics: Metrics

    async def __call__(self, job: JobRow, log: Log) -> None:
        export = job.export
        if export.object_key is not None and export.attempts > 1:
            await self._remove_leftovers(export, export.object_key, log)
        reason = _nothing_to_send(export)
        if reason is not None:
            log.info("notify.skipped", reason=reason)
            if not await jobs.finish_job(self.pool, job):
                raise LeaseLost
            return
        token = new_link_token() if export.status == Status.SUCCEEDED else None
        message = compose(
            self._mail(export, token),
            sender=self.mailer.sender,
            message_id_domain=self.message_id_domain,
            templates=self.templates,
        )
        # Held through the send: a refused mail's undo needs no new connection.
        async with self.pool.acquire() as conn:
            # The fence, and the record that a send begins, before what cannot be taken back.
            if not await mail.begin_mail(conn, job, link_token=token):
                raise LeaseLost
            if export.mail_attempted_at is not None:
                log.warning("notify.resending", previous_attempt=str(export.mail_attempted_at))
                self.metrics.mail_resends.inc()
            try:
                with self.metrics.mail_seconds.time():
                    await self.mailer.send(message)
            except MailNotSent:
                # No 250 for the message: the relay did not take it; the next try is a first.
                await mail.mail_refused(conn, job, link_token=token)
                raise
        # Recorded once the connection is back: the completion shares a batch with other
        # jobs' (the window in which a dying replica leaves the outcome unknown is one write).
        if not await self.completions.mail_sent(job):
            raise LeaseLost
        log.info("notify.sent", mail=export.status)

    def _mail(self, export: ExportRow, token: str | None) -> Mail:
        assert export.recipient is not None  # _nothing_to_send checked it
        title = self.title_of(export.export_name)
        if token is None:
            return FailedMail(
                export_id=str(export.id),
                recipient=export.recipient,
                export_title=title,
                params=export.params,
                file_name=export.file_name,
                reason=export.error_message or "The export could not be finished.",
                error_id=export.error_id,
                failed_at=export.finished_at or datetime.now(UTC),
            )
        assert export.as_of is not None and export.expires_at is not None
        return ReadyMail(
            export_id=str(export.id),
            recipient=export.recipient,
            export_title=title,
            params=export.params,
            file_name=export.file_name,
            size=export.result_size or 0,
            rows=export.result_rows or 0,
            as_of=export.as_of,
            url=f"{self.public_url}/d/{token}",
            expires_at=export.expires_at,
        )

    async def _remove_leftovers(self, export: ExportRow, key: str, log: Log) -> None:
        """Delete what build attempts that died left under the export's prefix (whole files,
        open uploads). Run here, not by the build, so a replica dying right after a build's
        commit cannot skip it: this job runs again until it completes."""
        prefix = export_prefix(self.s3_prefix, export.tenant, export.id)
        try:
            removed = await self.storage.delete_under(prefix, keep=key)
        except StorageUnavailable as exc:
            log.warning("notify.cleanup_failed", error=exc.message)  # the result stands
        else:
            if removed:
                log.info("notify.cleaned_up", removed=len(removed))


def _nothing_to_send(export: ExportRow) -> str | None:
    """Why no mail goes out for this export (None: one does)."""
    if export.notified_at is not None:
        return "already_sent"
    if not export.recipient:
        return "no_recipient"
    if export.status == Status.FAILED:
        return None
    if export.status != Status.SUCCEEDED or export.object_key is None:
        return f"export_{export.status}"
    if export.expires_at is None or export.expires_at <= datetime.now(UTC):
        return "file_expired"
    return None
