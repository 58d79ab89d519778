"""What a replica checks before it serves: its databases answer, the schema is migrated, the
mail templates render, and every catalog export's SQL plans on the source with its typed
parameters, so a typo or a missing column stops the start instead of failing every user's
export later."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg

from exportd.config import Settings
from exportd.db import source
from exportd.db.migrate import pending_migrations
from exportd.db.pool import connect
from exportd.errors import ConfigError, DependencyRefused
from exportd.export.catalog import Catalog
from exportd.metrics import Metrics
from exportd.notify.mailer import Mailer
from exportd.notify.message import Templates
from exportd.storage.s3 import open_storage

# The tenant the check binds: any value plans the same.
PREFLIGHT_TENANT = "exportd-preflight"
REFUSAL_CHECK_S: Final = 5.0
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def preflight(settings: Settings, catalog: Catalog, *, builds: bool) -> list[str]:
    """Every problem found, one line each (empty when all is well). `builds`: this replica
    runs jobs, so the source database and the catalog's SQL must be right too."""
    problems = await _queue_database(settings)
    if builds:
        problems += _templates(settings)
        problems += await _refusals(settings)
    if builds and not problems:
        problems += await _catalog(settings, catalog)
    return problems


async def _refusals(settings: Settings) -> list[str]:
    """S3 or the mail relay refusing our credentials (or the bucket missing) is a setting to
    fix, not an outage to wait out: say so now. One that does not answer at all may be
    starting too; readiness waits for it."""
    problems = []
    async with open_storage(settings, Metrics()) as storage:
        s3 = _refused(
            storage.check,
            "S3",
            "EXPORTD_S3_BUCKET, EXPORTD_S3_ACCESS_KEY_ID, EXPORTD_S3_SECRET_ACCESS_KEY",
        )
        problems += await s3
    smtp = _refused(
        Mailer(settings).check, "the mail relay", "EXPORTD_SMTP_USERNAME, EXPORTD_SMTP_PASSWORD"
    )
    problems += await smtp
    return problems


async def _refused(check: Callable[[], Awaitable[None]], what: str, variables: str) -> list[str]:
    try:
        async with asyncio.timeout(REFUSAL_CHECK_S):
            await check()
    except DependencyRefused as exc:
        return [f"{what} refused us, {exc.reason} (check {variables}): {exc.detail}"]
    except Exception:  # not answering: readiness keeps looking, and claims wait for it
        return []
    return []


def _templates(settings: Settings) -> list[str]:
    """An operator's mail templates render: a broken one stops the start, not every mail."""
    try:
        Templates(settings.mail_templates).check()
    except ConfigError as exc:
        return [exc.detail]
    return []


def one_line(exc: Exception) -> str:
    """The database's message on one line, with its hint when it gives one."""
    message, *_ = str(exc).splitlines() or [type(exc).__name__]
    hint = getattr(exc, "hint", None)
    return f"{message} (hint: {hint})" if hint else message


async def _queue_database(settings: Settings) -> list[str]:
    try:
        conn = await connect(settings.database_url, schema=settings.database_schema)
    except _CONNECT_ERRORS as exc:
        return [f"cannot connect to EXPORTD_DATABASE_URL: {exc}"]
    try:
        missing = await pending_migrations(conn)
    finally:
        await conn.close()
    if missing:
        return [
            f"database is not migrated ({len(missing)} migration(s) pending, first "
            f"{missing[0].name}); run `exportd migrate` first"
        ]
    return []


async def _catalog(settings: Settings, catalog: Catalog) -> list[str]:
    variable = (
        "EXPORTD_SOURCE_DATABASE_URL" if settings.source_database_url else "EXPORTD_DATABASE_URL"
    )
    try:
        conn = await connect(settings.source_url)
    except _CONNECT_ERRORS as exc:
        return [f"cannot connect to the source database ({variable}): {exc}"]
    problems = []
    try:
        for export in catalog.exports.values():
            if export.rows is not None:
                continue  # a Python export: no SQL of its own to plan
            sample = export.bind({p.name: p.sample() for p in export.params})
            args = export.args(sample, PREFLIGHT_TENANT)
            try:
                await source.explain(conn, export.positional_sql, args)
            except (asyncpg.PostgresError, asyncpg.DataError) as exc:
                problems.append(f"catalog export {export.name!r} does not plan: {one_line(exc)}")
    finally:
        await conn.close()
    return problems
