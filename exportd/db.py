"""Every SQL statement exportd runs, named, with typed wrappers and row dataclasses."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Self, TypeAlias

import asyncpg

Conn: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# Anything that runs one statement: a connection, or the pool (which borrows one).
Executor: TypeAlias = "Conn | Pool"

TERMINAL_STATUSES: Final = ("succeeded", "failed", "canceled")

# SQLSTATE classes that say "try again later": connection, rollback (serialization,
# deadlock), resources, operator intervention (shutdown, restart), system errors.
TRANSIENT_SQLSTATE_CLASSES: Final = ("08", "40", "53", "57", "58")


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database is away (down, restarting, overloaded) rather than
    that a statement is wrong: callers back off and retry."""
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] in TRANSIENT_SQLSTATE_CLASSES
    return isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    )


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool `init=` hook: jsonb in and out as Python values."""
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def connect(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(dsn, timeout=10)
    await init_connection(conn)
    return conn


async def create_pool(dsn: str, *, min_size: int, max_size: int, codecs: bool = True) -> Pool:
    """A pool; `codecs=False` for the export source, where jsonb stays text as the server
    sends it (no parse and re-serialise per value)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection if codecs else None,
        command_timeout=60,
    )


# --- migrations ---------------------------------------------------------------

MIGRATION_LOCK_KEY: Final = 0x6578706F7274  # "export": one advisory lock for every replica

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS exportd_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""

# Serializes replicas migrating at once; released when the transaction ends.
LOCK_MIGRATIONS: Final = "SELECT pg_advisory_xact_lock($1)"

APPLIED_MIGRATIONS: Final = "SELECT version FROM exportd_migrations"

RECORD_MIGRATION: Final = "INSERT INTO exportd_migrations (version, name) VALUES ($1, $2)"

MIGRATIONS_TABLE_EXISTS: Final = "SELECT to_regclass('exportd_migrations') IS NOT NULL"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @classmethod
    def from_file(cls, path: Path) -> Self:
        number, _, _ = path.stem.partition("_")
        return cls(version=int(number), name=path.stem, sql=path.read_text())


async def applied_migrations(conn: Conn) -> set[int]:
    if not await conn.fetchval(MIGRATIONS_TABLE_EXISTS):
        return set()
    return {r["version"] for r in await conn.fetch(APPLIED_MIGRATIONS)}


async def apply_migrations(conn: Conn, migrations: list[Migration]) -> list[Migration]:
    """Apply the missing migrations in one transaction under the advisory lock."""
    async with conn.transaction():
        await conn.execute(LOCK_MIGRATIONS, MIGRATION_LOCK_KEY)
        await conn.execute(CREATE_MIGRATIONS_TABLE)
        done = await applied_migrations(conn)
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(RECORD_MIGRATION, migration.version, migration.name)
            applied.append(migration)
        return applied


# --- rows -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportRow:
    id: uuid.UUID
    tenant: str
    owner_sub: str
    recipient: str | None
    export_name: str
    params: dict[str, Any]
    format: str
    compression: str
    options: dict[str, Any]
    file_name: str
    status: str
    progress_rows: int
    progress_bytes: int
    attempts: int
    error_code: str | None
    error_message: str | None
    object_key: str | None
    result_size: int | None
    result_rows: int | None
    result_sha256: str | None
    content_type: str | None
    as_of: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    notified_at: datetime | None
    mail_attempted_at: datetime | None
    expires_at: datetime | None
    version: int

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(
            id=r["id"],
            tenant=r["tenant"],
            owner_sub=r["owner_sub"],
            recipient=r["recipient"],
            export_name=r["export_name"],
            params=r["params"],
            format=r["format"],
            compression=r["compression"],
            options=r["options"],
            file_name=r["file_name"],
            status=r["status"],
            progress_rows=r["progress_rows"],
            progress_bytes=r["progress_bytes"],
            attempts=r["attempts"],
            error_code=r["error_code"],
            error_message=r["error_message"],
            object_key=r["object_key"],
            result_size=r["result_size"],
            result_rows=r["result_rows"],
            result_sha256=r["result_sha256"],
            content_type=r["content_type"],
            as_of=r["as_of"],
            created_at=r["created_at"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            notified_at=r["notified_at"],
            mail_attempted_at=r["mail_attempted_at"],
            expires_at=r["expires_at"],
            version=r["version"],
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRow:
    id: int
    kind: str
    export_id: uuid.UUID
    tenant: str
    attempts: int
    max_attempts: int
    lease_token: uuid.UUID

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(
            id=r["id"],
            kind=r["kind"],
            export_id=r["export_id"],
            tenant=r["tenant"],
            attempts=r["attempts"],
            max_attempts=r["max_attempts"],
            lease_token=r["lease_token"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewExport:
    id: uuid.UUID
    tenant: str
    owner_sub: str
    recipient: str | None
    export_name: str
    params: dict[str, Any]
    format: str
    compression: str
    file_name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildResult:
    object_key: str
    size: int
    rows: int
    sha256: str
    content_type: str
    as_of: datetime


# --- exports --------------------------------------------------------------------

INSERT_EXPORT: Final = """
INSERT INTO exports (id, tenant, owner_sub, recipient, export_name, params, format, compression,
                     file_name, options)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING *"""

# The build job goes in with its export; its INSERT trigger NOTIFYs on commit.
INSERT_JOB: Final = """
INSERT INTO jobs (kind, export_id, tenant, max_attempts) VALUES ($1, $2, $3, $4)"""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    key: str
    request_hash: str
    ttl: timedelta


class IdempotencyConflict(Exception):
    """The key was used before, for a different request."""


# An expired key is free again.
EXPIRE_IDEMPOTENCY_KEY: Final = """
DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND expires_at <= now()"""

# Taking the key first serializes concurrent retries: a second insert waits for the first
# transaction, then finds the key taken.
TAKE_IDEMPOTENCY_KEY: Final = """
INSERT INTO idempotency_keys (tenant, key, request_hash, export_id, expires_at)
VALUES ($1, $2, $3, $4, now() + $5::interval)
ON CONFLICT (tenant, key) DO NOTHING
RETURNING export_id"""

FIND_IDEMPOTENCY_KEY: Final = """
SELECT request_hash, export_id FROM idempotency_keys WHERE tenant = $1 AND key = $2"""

# Housekeeping, a batch at a time.
PURGE_IDEMPOTENCY_KEYS: Final = """
DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT 1000))"""


async def purge_idempotency_keys(conn: Executor) -> None:
    await conn.execute(PURGE_IDEMPOTENCY_KEYS)


COUNT_QUEUED: Final = "SELECT count(*) FROM exports WHERE tenant = $1 AND status = 'queued'"


async def count_queued(conn: Executor, tenant: str) -> int:
    count: int = await conn.fetchval(COUNT_QUEUED, tenant)
    return count


async def create_export(
    pool: Pool, new: NewExport, *, max_attempts: int, idempotency: IdempotencyKey | None = None
) -> tuple[ExportRow, bool]:
    """Insert the export and its build job in one transaction; (export, replayed).

    With an idempotency key already taken by the same request, return that export instead;
    taken by another request, raise IdempotencyConflict.
    """
    async with pool.acquire() as conn, conn.transaction():
        if idempotency is not None:
            await conn.execute(EXPIRE_IDEMPOTENCY_KEY, new.tenant, idempotency.key)
            taken = await conn.fetchval(
                TAKE_IDEMPOTENCY_KEY,
                new.tenant,
                idempotency.key,
                idempotency.request_hash,
                new.id,
                idempotency.ttl,
            )
            if taken is None:
                found = await conn.fetchrow(FIND_IDEMPOTENCY_KEY, new.tenant, idempotency.key)
                assert found is not None  # taken and not expired: it is there
                if found["request_hash"] != idempotency.request_hash:
                    raise IdempotencyConflict
                existing = await conn.fetchrow(GET_EXPORT_BY_ID, found["export_id"])
                assert existing is not None  # the key cascades away with its export
                return ExportRow.from_record(existing), True
        record = await conn.fetchrow(
            INSERT_EXPORT,
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
        )
        await conn.execute(INSERT_JOB, "build", new.id, new.tenant, max_attempts)
    assert record is not None
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
    pool: Pool, export_id: uuid.UUID, tenant: str, sub: str
) -> ExportRow | None:
    """Cancel a queued or running export; None when it is not (or no longer) cancelable."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(CANCEL_BUILD_JOB, export_id, tenant, sub)
        record = await conn.fetchrow(CANCEL_EXPORT, export_id, tenant, sub)
    return ExportRow.from_record(record) if record else None


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


# --- jobs: claim, heartbeat, fenced writes --------------------------------------------

CLAIM_JOBS: Final = """
-- running: builds per tenant under a live lease (few rows: at most the fleet's workers)
WITH running AS (
    SELECT tenant, count(*) AS n FROM jobs
    WHERE lease_token IS NOT NULL AND kind = 'build' AND ready_at > now()
    GROUP BY tenant
),
-- next: claimable rows (due, or lease expired) in FIFO order that no other replica holds,
-- skipping builds of tenants already at their cap ($4); $2 = free worker slots
next AS (
    SELECT id FROM jobs
    WHERE ready_at <= now()
      AND (kind <> 'build' OR tenant NOT IN (SELECT tenant FROM running WHERE n >= $4))
    ORDER BY ready_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
-- ranked: within one batch too, a tenant gets no more builds than its cap leaves room for
ranked AS (
    SELECT jobs.id, jobs.kind, coalesce(running.n, 0) AS n,
           row_number() OVER (PARTITION BY jobs.tenant, jobs.kind ORDER BY jobs.ready_at, jobs.id)
               AS rn
    FROM jobs JOIN next ON next.id = jobs.id LEFT JOIN running ON running.tenant = jobs.tenant
),
-- claimed: a fresh lease token fences every later write; the attempt counts now, so a
-- job whose replica dies mid-run still runs out of attempts
claimed AS (
    UPDATE jobs SET lease_owner = $1, lease_token = gen_random_uuid(),
                    ready_at = now() + $3::interval, attempts = jobs.attempts + 1
    FROM ranked
    WHERE jobs.id = ranked.id AND (ranked.kind <> 'build' OR ranked.n + ranked.rn <= $4)
    RETURNING jobs.*
),
-- started: a build's export shows running and its attempt count
started AS (
    UPDATE exports SET status = 'running', attempts = claimed.attempts,
                       started_at = coalesce(exports.started_at, now()),
                       version = exports.version + 1
    FROM claimed
    WHERE exports.id = claimed.export_id AND claimed.kind = 'build'
      AND exports.status IN ('queued', 'running')
)
SELECT * FROM claimed"""


async def claim_jobs(
    conn: Executor, owner: str, free: int, lease: timedelta, *, tenant_cap: int
) -> list[JobRow]:
    records = await conn.fetch(CLAIM_JOBS, owner, free, lease, tenant_cap)
    return [JobRow.from_record(r) for r in records]


# Extends the lease; zero rows means another replica owns the job now.
HEARTBEAT: Final = """
UPDATE jobs SET ready_at = now() + $3::interval WHERE id = $1 AND lease_token = $2"""


async def heartbeat(conn: Executor, job: JobRow, lease: timedelta) -> bool:
    return await conn.execute(HEARTBEAT, job.id, job.lease_token, lease) == "UPDATE 1"


UPDATE_PROGRESS: Final = """
UPDATE exports SET progress_rows = $3, progress_bytes = $4, version = exports.version + 1
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id
  AND exports.status = 'running'"""


async def update_progress(conn: Executor, job: JobRow, rows: int, size: int) -> bool:
    return await conn.execute(UPDATE_PROGRESS, job.id, job.lease_token, rows, size) == "UPDATE 1"


# What a running worker checks when its export changes: was it canceled?
EXPORT_CANCELED: Final = "SELECT status = 'canceled' FROM exports WHERE id = $1"


async def export_canceled(conn: Executor, export_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(EXPORT_CANCELED, export_id))


# Fenced delete: the claim that holds the token, and only it, finishes the job.
DELETE_JOB: Final = "DELETE FROM jobs WHERE id = $1 AND lease_token = $2 RETURNING export_id"

RECORD_RESULT: Final = """
UPDATE exports SET status = 'succeeded', object_key = $2, result_size = $3, result_rows = $4,
                   result_sha256 = $5, content_type = $6, as_of = $7,
                   progress_rows = $4, progress_bytes = $3, error_code = NULL,
                   error_message = NULL, finished_at = now(), expires_at = now() + $8::interval,
                   version = version + 1
WHERE id = $1"""


async def complete_build(
    pool: Pool, job: JobRow, result: BuildResult, *, retention: timedelta
) -> bool:
    """Record the result, delete the build job and enqueue notify, all or nothing."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is None:
            return False
        await conn.execute(
            RECORD_RESULT,
            job.export_id,
            result.object_key,
            result.size,
            result.rows,
            result.sha256,
            result.content_type,
            result.as_of,
            retention,
        )
        await conn.execute(INSERT_JOB, "notify", job.export_id, job.tenant, job.max_attempts)
    return True


# Fenced claim of the one send: zero rows when the lease is lost or a send was begun before.
BEGIN_MAIL: Final = """
UPDATE exports SET mail_attempted_at = now()
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id
  AND exports.mail_attempted_at IS NULL AND exports.notified_at IS NULL
RETURNING exports.id"""


async def begin_mail(conn: Executor, job: JobRow) -> bool:
    return await conn.fetchval(BEGIN_MAIL, job.id, job.lease_token) is not None


# The SMTP server refused the mail (nothing was delivered): a later attempt may send it.
MAIL_REFUSED: Final = """
UPDATE exports SET mail_attempted_at = NULL
FROM jobs
WHERE jobs.id = $1 AND jobs.lease_token = $2 AND exports.id = jobs.export_id"""


async def mail_refused(conn: Executor, job: JobRow) -> None:
    await conn.execute(MAIL_REFUSED, job.id, job.lease_token)


MARK_NOTIFIED: Final = """
UPDATE exports SET notified_at = now(), version = version + 1
WHERE id = $1 AND notified_at IS NULL"""


async def complete_notify(pool: Pool, job: JobRow) -> bool:
    """Record the mail as sent and delete the notify job, fenced by its lease."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is None:
            return False
        await conn.execute(MARK_NOTIFIED, job.export_id)
    return True


# Back off: the job becomes claimable at $3; its export shows the error meanwhile.
RETRY_JOB: Final = """
WITH retried AS (
    UPDATE jobs SET lease_owner = NULL, lease_token = NULL, last_error_code = $4,
                    ready_at = now() + $3::interval
    WHERE id = $1 AND lease_token = $2
    RETURNING export_id, kind
)
UPDATE exports SET status = CASE WHEN retried.kind = 'build' THEN 'queued' ELSE exports.status END,
                   error_code = $4, error_message = $5, version = exports.version + 1
FROM retried WHERE exports.id = retried.export_id
RETURNING exports.id"""


async def retry_job(conn: Executor, job: JobRow, delay: timedelta, code: str, message: str) -> bool:
    return await conn.fetchval(RETRY_JOB, job.id, job.lease_token, delay, code, message) is not None


FAIL_EXPORT: Final = """
UPDATE exports SET status = CASE WHEN $2 = 'build' THEN 'failed' ELSE status END,
                   error_code = $3, error_message = $4,
                   finished_at = CASE WHEN $2 = 'build' THEN now() ELSE finished_at END,
                   version = version + 1
WHERE id = $1"""


async def fail_job(pool: Pool, job: JobRow, code: str, message: str) -> bool:
    """Give up on the job: delete it and record the error on its export."""
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(DELETE_JOB, job.id, job.lease_token) is None:
            return False
        await conn.execute(FAIL_EXPORT, job.export_id, job.kind, code, message)
    return True


# Hand a job back untouched (shutdown): runnable elsewhere at once, and not an attempt.
RELEASE_JOB: Final = """
WITH released AS (
    UPDATE jobs SET lease_owner = NULL, lease_token = NULL, ready_at = now(),
                    attempts = greatest(jobs.attempts - 1, 0)
    WHERE id = $1 AND lease_token = $2
    RETURNING export_id, kind
)
UPDATE exports SET status = 'queued', version = exports.version + 1
FROM released WHERE exports.id = released.export_id AND released.kind = 'build'
  AND exports.status = 'running'"""


async def release_job(conn: Executor, job: JobRow) -> None:
    await conn.execute(RELEASE_JOB, job.id, job.lease_token)


# --- source -------------------------------------------------------------------------

# The transaction's start: what the export's snapshot shows the data as of.
SNAPSHOT_TIME: Final = "SELECT now()"


async def snapshot_time(conn: Executor) -> datetime:
    value: datetime = await conn.fetchval(SNAPSHOT_TIME)
    return value


# --- export query shapes (the catalog's SQL, wrapped) -----------------------------------

# One JSON object per row, rendered by PostgreSQL: row_to_json keeps numerics exact and
# writes timestamps, arrays and jsonb as JSON. COPY's CSV mode with control characters for
# delimiter and quote (JSON escapes both) passes each object through untouched.
JSONL_DELIMITER: Final = "\x02"
JSONL_QUOTE: Final = "\x01"

# A text cell a spreadsheet would run as a formula (OWASP "CSV injection") starts with one
# of = + - @ tab CR; it is prefixed with a single quote.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
FORMULA_TEST: Final = (
    "left({col}, 1) IN ("
    + ", ".join("E'" + s.replace("\t", "\\t").replace("\r", "\\r") + "'" for s in FORMULA_STARTS)
    + ")"
)
_TEXT_TYPES: Final = frozenset({"text", "varchar", "bpchar", "name", "citext", "char"})


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def jsonl_query(sql: str) -> str:
    return f"SELECT row_to_json(q)::text FROM ({sql}) AS q"


def spreadsheet_safe_query(sql: str, columns: list[tuple[str, str]]) -> str:
    """The query with every text column's formula-like cells neutralised."""
    exprs = []
    for name, pg_type in columns:
        col = "q." + quote_ident(name)
        if pg_type in _TEXT_TYPES:
            test = FORMULA_TEST.format(col=col)
            col = f"CASE WHEN {test} THEN '''' || {col} ELSE {col} END AS {quote_ident(name)}"
        exprs.append(col)
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS q"


def text_columns_query(sql: str, columns: list[tuple[str, bool]]) -> str:
    """The query with the flagged columns cast to text."""
    exprs = [
        f"q.{quote_ident(name)}::text AS {quote_ident(name)}" if cast else f"q.{quote_ident(name)}"
        for name, cast in columns
    ]
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS q"


# Timestamps with zone come out of COPY in the session's zone: make it UTC (this transaction).
UTC_SESSION: Final = "SET LOCAL timezone = 'UTC'"


async def use_utc(conn: Executor) -> None:
    await conn.execute(UTC_SESSION)


# --- health ---------------------------------------------------------------------


# Queue depth by kind and state, for /metrics (the table is small: finished jobs are deleted).
QUEUE_DEPTH: Final = """
SELECT kind,
       CASE WHEN lease_token IS NOT NULL AND ready_at > now() THEN 'running'
            WHEN ready_at > now() THEN 'delayed'
            ELSE 'ready' END AS state,
       count(*) AS jobs
FROM jobs GROUP BY 1, 2"""


async def queue_depth(conn: Executor) -> list[tuple[str, str, int]]:
    return [(r["kind"], r["state"], r["jobs"]) for r in await conn.fetch(QUEUE_DEPTH)]


PING: Final = "SELECT 1"


async def ping(conn: Executor) -> None:
    await conn.fetchval(PING)
