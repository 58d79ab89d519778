"""The exports a user sees: create (with its build job and Idempotency-Key), read, list, cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from exportd.db.followups import Followups, export_finished
from exportd.db.pool import Executor, Pool
from exportd.db.rows import ExportRow, NewExport
from exportd.model import Event

# The tenant's lock, its queued count, the export and its build job, in one call (migration
# 0009 says why a function); no row when the tenant has $12 queued exports already.
CREATE_EXPORT: Final = """
SELECT * FROM exportd_create_export($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    key: str
    request_hash: str
    ttl: timedelta


class IdempotencyConflict(Exception):
    """The key was used before, for a different request."""


class QueueFull(Exception):
    """The tenant already has as many queued exports as it may."""


# An expired key is free again.
EXPIRE_IDEMPOTENCY_KEY: Final = """
DELETE FROM idempotency_keys
WHERE tenant = $1 AND owner_sub = $2 AND key = $3 AND expires_at <= now()"""

# Taking the key first serializes concurrent retries: a second insert waits for the first
# transaction, then finds the key taken.
TAKE_IDEMPOTENCY_KEY: Final = """
INSERT INTO idempotency_keys (tenant, owner_sub, key, request_hash, export_id, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
ON CONFLICT (tenant, owner_sub, key) DO NOTHING
RETURNING export_id"""

FIND_IDEMPOTENCY_KEY: Final = """
SELECT request_hash, export_id FROM idempotency_keys
WHERE tenant = $1 AND owner_sub = $2 AND key = $3"""

# Housekeeping, a batch at a time.
PURGE_IDEMPOTENCY_KEYS: Final = """
DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT 1000))"""


async def purge_idempotency_keys(conn: Executor) -> None:
    await conn.execute(PURGE_IDEMPOTENCY_KEYS)


async def create_export(
    pool: Pool,
    new: NewExport,
    *,
    max_attempts: int,
    queued_cap: int,
    idempotency: IdempotencyKey | None = None,
) -> tuple[ExportRow, bool]:
    """Insert the export and its build job, all or nothing; (export, replayed).

    With an idempotency key already taken by the same request, return that export instead
    (a replay, even at the queued cap); taken by another request, raise IdempotencyConflict.
    With `queued_cap` queued exports for the tenant already, raise QueueFull.
    """
    args = (
        new.id,
        new.tenant,
        new.owner_sub,
        new.recipient,
        new.export_name,
        new.params,
        new.format,
        new.compression,
        new.file_name,
        new.options,
        max_attempts,
        queued_cap,
    )
    if idempotency is None:  # one round trip
        record = await pool.fetchrow(CREATE_EXPORT, *args)
        if record is None:
            raise QueueFull
        return ExportRow.from_record(record), False
    async with pool.acquire() as conn, conn.transaction():
        owner = (new.tenant, new.owner_sub, idempotency.key)
        await conn.execute(EXPIRE_IDEMPOTENCY_KEY, *owner)
        taken = await conn.fetchval(
            TAKE_IDEMPOTENCY_KEY, *owner, idempotency.request_hash, new.id, idempotency.ttl
        )
        if taken is None:
            found = await conn.fetchrow(FIND_IDEMPOTENCY_KEY, *owner)
            assert found is not None  # taken and not expired: it is there
            if found["request_hash"] != idempotency.request_hash:
                raise IdempotencyConflict
            existing = await conn.fetchrow(GET_EXPORT_BY_ID, found["export_id"])
            assert existing is not None  # the key cascades away with its export
            return ExportRow.from_record(existing), True
        record = await conn.fetchrow(CREATE_EXPORT, *args)
        if record is None:  # inside: the key taken for it goes too
            raise QueueFull
    return ExportRow.from_record(record), False


# Owner-scoped: another caller's export reads exactly like a missing one.
GET_EXPORT: Final = "SELECT * FROM exports WHERE id = $1 AND tenant = $2 AND owner_sub = $3"


async def get_export(
    conn: Executor, export_id: uuid.UUID, tenant: str, sub: str
) -> ExportRow | None:
    record = await conn.fetchrow(GET_EXPORT, export_id, tenant, sub)
    return ExportRow.from_record(record) if record else None


GET_EXPORT_BY_ID: Final = "SELECT * FROM exports WHERE id = $1"


async def get_export_by_id(conn: Executor, export_id: uuid.UUID) -> ExportRow | None:
    record = await conn.fetchrow(GET_EXPORT_BY_ID, export_id)
    return ExportRow.from_record(record) if record else None


# Cancel drops the build job first: every writer locks the job row before the export row,
# so cancel and completion cannot deadlock. A running worker finds its job gone and stops.
CANCEL_BUILD_JOB: Final = """
DELETE FROM jobs
WHERE export_id = $1 AND kind = 'build'
  AND EXISTS (SELECT 1 FROM exports WHERE id = $1 AND tenant = $2 AND owner_sub = $3)"""

CANCEL_EXPORT: Final = """
UPDATE exports SET status = 'canceled', finished_at = now(), version = version + 1
WHERE id = $1 AND tenant = $2 AND owner_sub = $3 AND status IN ('queued', 'running')
RETURNING *"""


async def cancel_export(
    pool: Pool, export_id: uuid.UUID, tenant: str, sub: str, followups: Followups
) -> ExportRow | None:
    """Cancel a queued or running export; None when it is not (or no longer) cancelable."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(CANCEL_BUILD_JOB, export_id, tenant, sub)
        record = await conn.fetchrow(CANCEL_EXPORT, export_id, tenant, sub)
        if record is None:
            return None
        await export_finished(conn, [export_id], Event.CANCELED, followups)
    return ExportRow.from_record(record)


# Keyset page, newest first; $3/$4 is the last row of the previous page.
LIST_EXPORTS: Final = """
SELECT * FROM exports
WHERE tenant = $1 AND owner_sub = $2
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
  AND ($5::text IS NULL OR status = $5)
ORDER BY created_at DESC, id DESC
LIMIT $6"""


async def list_exports(
    conn: Executor,
    tenant: str,
    sub: str,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    status: str | None,
    limit: int,
) -> list[ExportRow]:
    created, last_id = after if after else (None, None)
    records = await conn.fetch(LIST_EXPORTS, tenant, sub, created, last_id, status, limit)
    return [ExportRow.from_record(r) for r in records]
