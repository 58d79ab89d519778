"""What an export reaching a final state queues, in the same transaction as the change: its
webhook deliveries (one job each), its mail and its expiry. Committed together or not at all,
so no event is lost and none is queued for a change that did not happen."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Self

from exportd.config import Settings
from exportd.db.pool import Executor
from exportd.model import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Followups:
    """The attempts the queued jobs get, and how long a failed or canceled export's leftovers
    wait to be cleaned: past any lease, so no attempt still writes under its prefix."""

    attempts: int
    webhook_attempts: int
    cleanup_after: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            attempts=settings.max_attempts,
            webhook_attempts=settings.webhook_max_attempts,
            cleanup_after=2 * settings.lease,
        )


# Mails and webhook deliveries go ahead of builds: they enter the claim order (ready_at, id)
# a day early, so they wait behind no build queued in the last day, and the claim stays one
# range of its index. Only their first turn: a retry waits its backoff like any job.
HEAD_START: Final = timedelta(days=1)

# One statement: every endpoint of each export's tenant that subscribed to the event gets a
# delivery and a job for it; the owner's mail ($5) and the expiry, or the leftovers'
# cleanup ($6), are queued once per export. The jobs' INSERT trigger wakes the dispatchers.
QUEUE_FOLLOWUPS: Final = """
WITH export AS (SELECT id, tenant, expires_at FROM exports WHERE id = ANY ($1::uuid[])),
delivery AS (
    INSERT INTO webhook_deliveries (id, webhook_id, export_id, event)
    SELECT gen_random_uuid(), webhooks.id, export.id, $2
    FROM webhooks JOIN export ON webhooks.tenant = export.tenant
    WHERE $2 = ANY (webhooks.events)
    RETURNING id, export_id
),
webhook_jobs AS (
    INSERT INTO jobs (kind, export_id, tenant, max_attempts, delivery_id, ready_at)
    SELECT 'webhook', export.id, export.tenant, $3, delivery.id, now() - $7::interval
    FROM delivery JOIN export ON export.id = delivery.export_id
),
notify_job AS (
    INSERT INTO jobs (kind, export_id, tenant, max_attempts, ready_at)
    SELECT 'notify', id, tenant, $4, now() - $7::interval FROM export WHERE $5
    ON CONFLICT (export_id, kind) WHERE kind <> 'webhook' DO NOTHING
)
INSERT INTO jobs (kind, export_id, tenant, max_attempts, ready_at)
SELECT 'expire', id, tenant, $4, coalesce(expires_at, now() + $8::interval)
FROM export WHERE $6
ON CONFLICT (export_id, kind) WHERE kind <> 'webhook' DO NOTHING"""


async def export_finished(
    conn: Executor, export_ids: Sequence[uuid.UUID], event: Event, followups: Followups
) -> None:
    """Queue what follows `event` for each export: webhooks always; the owner's mail on
    success or failure; the expiry (or cleanup) unless the file has just expired."""
    await conn.execute(
        QUEUE_FOLLOWUPS,
        export_ids,
        event,
        followups.webhook_attempts,
        followups.attempts,
        event in (Event.SUCCEEDED, Event.FAILED),
        event != Event.EXPIRED,
        HEAD_START,
        followups.cleanup_after,
    )
