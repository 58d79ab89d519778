"""Webhooks: a tenant's endpoints, and each delivery of an event to one of them (the `webhook`
job's bookkeeping, fenced by its lease like every job's)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from exportd.db.pool import Executor, Pool
from exportd.db.rows import DeliveryRow, JobRow, WebhookRow

# Endpoints per tenant: enough for every integration, and a bound on one event's fan-out.
MAX_PER_TENANT: Final = 20


class TooManyWebhooks(Exception):
    """The tenant has as many endpoints as it may."""


# One tenant's registrations take turns, so the count each one checks stays true.
LOCK_TENANT_WEBHOOKS: Final = """
SELECT pg_advisory_xact_lock(hashtextextended('exportd.webhooks:' || $1, 0))"""

COUNT_WEBHOOKS: Final = "SELECT count(*) FROM webhooks WHERE tenant = $1"

INSERT_WEBHOOK: Final = """
INSERT INTO webhooks (id, tenant, created_by, url, events, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *"""


async def create_webhook(
    pool: Pool,
    *,
    tenant: str,
    created_by: str,
    url: str,
    events: Sequence[str],
    secret: str,
    cap: int,
) -> WebhookRow:
    """Register an endpoint; raise TooManyWebhooks when the tenant has `cap` already."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK_TENANT_WEBHOOKS, tenant)
        if await conn.fetchval(COUNT_WEBHOOKS, tenant) >= cap:
            raise TooManyWebhooks
        record = await conn.fetchrow(
            INSERT_WEBHOOK, uuid.uuid4(), tenant, created_by, url, events, secret
        )
    assert record is not None
    return WebhookRow.from_record(record)


LIST_WEBHOOKS: Final = """
SELECT * FROM webhooks WHERE tenant = $1
ORDER BY created_at DESC, id DESC"""


async def list_webhooks(conn: Executor, tenant: str) -> list[WebhookRow]:
    """All of the tenant's endpoints (a handful: registrations are capped)."""
    return [WebhookRow.from_record(r) for r in await conn.fetch(LIST_WEBHOOKS, tenant)]


GET_WEBHOOK: Final = "SELECT * FROM webhooks WHERE id = $1 AND tenant = $2"


async def get_webhook(conn: Executor, webhook_id: uuid.UUID, tenant: str) -> WebhookRow | None:
    record = await conn.fetchrow(GET_WEBHOOK, webhook_id, tenant)
    return WebhookRow.from_record(record) if record else None


# Its deliveries and their jobs go with it (ON DELETE CASCADE): a running attempt finds its
# lease gone.
DELETE_WEBHOOK: Final = "DELETE FROM webhooks WHERE id = $1 AND tenant = $2 RETURNING id"


async def delete_webhook(conn: Executor, webhook_id: uuid.UUID, tenant: str) -> bool:
    return await conn.fetchval(DELETE_WEBHOOK, webhook_id, tenant) is not None


DELETE_WEBHOOKS_BY: Final = "DELETE FROM webhooks WHERE tenant = $1 AND created_by = $2"


async def delete_webhooks_by(conn: Executor, tenant: str, created_by: str) -> None:
    await conn.execute(DELETE_WEBHOOKS_BY, tenant, created_by)


# Keyset page, newest first; $2/$3 is the last row of the previous page.
LIST_DELIVERIES: Final = """
SELECT * FROM webhook_deliveries
WHERE webhook_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4"""


async def list_deliveries(
    conn: Executor,
    webhook_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[DeliveryRow]:
    created, last_id = after if after else (None, None)
    records = await conn.fetch(LIST_DELIVERIES, webhook_id, created, last_id, limit)
    return [DeliveryRow.from_record(r) for r in records]


@dataclass(frozen=True, slots=True)
class Pending:
    """What one attempt sends: the event, and the endpoint with its secret."""

    delivery: DeliveryRow
    url: str
    secret: str


GET_PENDING: Final = """
SELECT webhook_deliveries.*, webhooks.url, webhooks.secret
FROM webhook_deliveries JOIN webhooks ON webhooks.id = webhook_deliveries.webhook_id
WHERE webhook_deliveries.id = $1"""


async def get_pending(conn: Executor, delivery_id: uuid.UUID) -> Pending | None:
    record = await conn.fetchrow(GET_PENDING, delivery_id)
    if record is None:
        return None
    return Pending(DeliveryRow.from_record(record), record["url"], record["secret"])


# Each attempt on record (the owner reads the last one), fenced by the job's lease.
RECORD_ATTEMPT: Final = """
UPDATE webhook_deliveries SET attempts = webhook_deliveries.attempts + 1, last_status = $3,
                              last_error = $4, last_at = now()
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND webhook_deliveries.id = jobs.delivery_id
RETURNING webhook_deliveries.id"""


async def record_attempt(
    conn: Executor, job: JobRow, status: int | None, error: str | None
) -> bool:
    return await conn.fetchval(RECORD_ATTEMPT, job.id, job.lease_token, status, error) is not None


# One statement, so the receiver's 2xx is on record in a single round trip.
COMPLETE_DELIVERY: Final = """
WITH done AS (DELETE FROM jobs WHERE id = $1 AND lease_token = $2 RETURNING delivery_id),
delivered AS (
    UPDATE webhook_deliveries SET state = 'delivered', delivered_at = now(),
                                  attempts = webhook_deliveries.attempts + 1,
                                  last_status = $3, last_error = NULL, last_at = now()
    FROM done WHERE webhook_deliveries.id = done.delivery_id
)
SELECT count(*) FROM done"""


async def complete_delivery(conn: Executor, job: JobRow, status: int) -> bool:
    """Record the delivery and delete its job; False when the lease was lost."""
    return bool(await conn.fetchval(COMPLETE_DELIVERY, job.id, job.lease_token, status))
