"""What a replica checks before it serves: its databases answer, the schema is migrated, and
every catalog export's SQL plans on the source with its typed parameters, so a typo or a
missing column stops the start instead of failing every user's export later."""

from __future__ import annotations

import asyncpg

from exportd.config import Settings
from exportd.db import source
from exportd.db.migrate import pending_migrations
from exportd.db.pool import connect
from exportd.export.catalog import Catalog

# The tenant the check binds: any value plans the same.
PREFLIGHT_TENANT = "exportd-preflight"
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def preflight(settings: Settings, catalog: Catalog, *, builds: bool) -> list[str]:
    """Every problem found, one line each (empty when all is well). `builds`: this replica
    runs jobs, so the source database and the catalog's SQL must be right too."""
    problems = await _queue_database(settings)
    if builds and not problems:
        problems += await _catalog(settings, catalog)
    return problems


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
