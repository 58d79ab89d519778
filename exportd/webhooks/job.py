"""The `webhook` job: deliver one event to one endpoint, at least once. Every attempt is on
record (the delivery's last status and error) and in the log; a failed one goes back to the
queue with backoff until the attempts run out. The `webhook-id` is the delivery's id, the
same on every attempt, so a receiver drops the copies a retry after a lost answer sends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from exportd.db import jobs, webhooks
from exportd.db.pool import Pool
from exportd.db.rows import ExportRow, JobRow
from exportd.db.webhooks import Pending
from exportd.errors import JobFailure, LeaseLost
from exportd.logs import Log
from exportd.metrics import Metrics
from exportd.model import Event
from exportd.public import export_json
from exportd.webhooks.outbound import Sender
from exportd.webhooks.signing import signed_headers


def payload(pending: Pending, export: ExportRow, *, base_url: str) -> bytes:
    """The Standard Webhooks body: the event's type and time, and the export's public fields
    and API link (never a presigned URL) showing the event's status; the rest is as it is
    when sent (a late `succeeded` after the file expired has no download_url)."""
    event = Event(pending.delivery.event)
    body = {
        "type": event,
        "timestamp": pending.delivery.created_at.isoformat(),
        "data": export_json(export, base_url=base_url, status=event.status),
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookJob:
    pool: Pool
    sender: Sender
    base_url: str
    metrics: Metrics

    async def __call__(self, job: JobRow, log: Log) -> None:
        assert job.delivery_id is not None  # a CHECK constraint: webhook jobs name one
        pending = await webhooks.get_pending(self.pool, job.delivery_id)
        export = job.export
        if pending is None:  # deleted meanwhile: nobody to tell
            if not await jobs.finish_job(self.pool, job):
                raise LeaseLost
            return
        body = payload(pending, export, base_url=self.base_url)
        headers = signed_headers(
            pending.secret,
            message_id=str(pending.delivery.id),
            timestamp=datetime.now(UTC),
            body=body,
        )
        attempt = await self.sender.post(pending.url, body, headers)
        # The tenant's URL may carry a token in its path or query: log its host only.
        log.info(
            "webhook.attempt",
            delivery_id=str(pending.delivery.id),
            webhook_id=str(pending.delivery.webhook_id),
            type=pending.delivery.event,
            host=urlsplit(pending.url).hostname,
            status=attempt.status,
            error=attempt.error,
        )
        if attempt.delivered:
            assert attempt.status is not None
            self.metrics.webhook_attempts.labels(outcome="delivered").inc()
            if not await webhooks.complete_delivery(self.pool, job, attempt.status):
                raise LeaseLost
            return
        outcome = "failed" if attempt.retryable else "refused"
        self.metrics.webhook_attempts.labels(outcome=outcome).inc()
        if not await webhooks.record_attempt(self.pool, job, attempt.status, attempt.error):
            raise LeaseLost
        raise JobFailure(
            "webhook_undelivered",
            attempt.error or "The endpoint did not accept the event.",
            retryable=attempt.retryable,
        )
