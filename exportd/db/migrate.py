"""Schema migrations: the numbered SQL files shipped as `exportd.migrations`, applied in one
transaction under an advisory lock so replicas starting together are safe, inside exportd's
own schema (the files name no schema; the search path points at it)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final, Self

from exportd.db.pool import Conn, connect
from exportd.db.source import quote_ident

# The top-level migrations/ folder, installed as this package (see pyproject.toml).
MIGRATIONS_PACKAGE: Final = "exportd.migrations"
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

CREATE_SCHEMA: Final = "CREATE SCHEMA IF NOT EXISTS {schema}"

# This transaction's statements name exportd's schema first (and only it).
USE_SCHEMA: Final = "SET LOCAL search_path TO {schema}"

# exportd up to migration 0004 kept its objects in `public`: found there (and not yet in
# the schema), they move, data and all.
LEGACY_LAYOUT: Final = """
SELECT to_regclass('public.exportd_migrations') IS NOT NULL
   AND to_regclass(quote_ident($1) || '.exportd_migrations') IS NULL"""
ADOPT_LEGACY: Final = (
    "ALTER TABLE public.exportd_migrations SET SCHEMA {schema}",
    "ALTER TABLE public.idempotency_keys SET SCHEMA {schema}",
    "ALTER TABLE public.jobs SET SCHEMA {schema}",
    "ALTER TABLE public.exports SET SCHEMA {schema}",
    "ALTER FUNCTION public.exportd_jobs_notify() SET SCHEMA {schema}",
    "ALTER FUNCTION public.exportd_exports_notify() SET SCHEMA {schema}",
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @classmethod
    def from_file(cls, path: Traversable) -> Self:
        stem = path.name.removesuffix(".sql")
        number, _, _ = stem.partition("_")
        return cls(version=int(number), name=stem, sql=path.read_text(encoding="utf-8"))


def load_migrations() -> list[Migration]:
    """Every migration shipped with this exportd, in order."""
    files = [
        f
        for f in resources.files(MIGRATIONS_PACKAGE).iterdir()
        if f.name.endswith(".sql") and f.name[:1].isdigit() and "_" in f.name
    ]
    migrations = sorted((Migration.from_file(f) for f in files), key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {MIGRATIONS_PACKAGE}")
    return migrations


async def applied_migrations(conn: Conn) -> set[int]:
    if not await conn.fetchval(MIGRATIONS_TABLE_EXISTS):
        return set()
    return {r["version"] for r in await conn.fetch(APPLIED_MIGRATIONS)}


async def pending_migrations(conn: Conn) -> list[Migration]:
    done = await applied_migrations(conn)
    return [m for m in load_migrations() if m.version not in done]


async def apply_migrations(
    conn: Conn, migrations: list[Migration], *, schema: str
) -> list[Migration]:
    """Apply the missing migrations to `schema` in one transaction under the advisory lock."""
    name = quote_ident(schema)
    async with conn.transaction():
        await conn.execute(LOCK_MIGRATIONS, MIGRATION_LOCK_KEY)
        await conn.execute(CREATE_SCHEMA.format(schema=name))
        if schema != "public" and await conn.fetchval(LEGACY_LAYOUT, schema):
            for statement in ADOPT_LEGACY:
                await conn.execute(statement.format(schema=name))
        await conn.execute(USE_SCHEMA.format(schema=name))
        await conn.execute(CREATE_MIGRATIONS_TABLE)
        done = await applied_migrations(conn)
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(RECORD_MIGRATION, migration.version, migration.name)
            applied.append(migration)
        return applied


async def migrate(dsn: str, *, schema: str) -> list[Migration]:
    """Apply what is missing; safe when several replicas run it at once (advisory lock)."""
    conn = await connect(dsn)
    try:
        return await apply_migrations(conn, load_migrations(), schema=schema)
    finally:
        await conn.close()
