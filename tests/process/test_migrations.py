"""`exportd migrate` on fresh empty databases, and `exportd serve` refusing an unmigrated one."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from exportd.db.migrate import MIGRATION_LOCK_KEY, apply_migrations, load_migrations
from exportd.dev.servers import EmbeddedPostgres, free_port
from tests.support.catalog import CATALOG_PATH
from tests.support.database import connect
from tests.support.processes import ROOT, Run, base_env, run_exportd
from tests.support.tokens import AUDIENCE, JWT_SECRET

# The schemas a table of this name is in, sorted.
TABLE_SCHEMAS = (
    "SELECT array_agg(table_schema::text ORDER BY table_schema) FROM information_schema.tables"
    " WHERE table_name = $1"
)
APPLIED = re.compile(r"applied (\d+) migration\(s\)")
# Sessions of this database waiting for an advisory lock (the migration lock is the only one).
LOCK_WAITERS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


def expected_migrations() -> list[tuple[int, str]]:
    """(version, name) of every file in migrations/, in order."""
    files = sorted((ROOT / "migrations").glob("*.sql"))
    assert files, "no migrations in migrations/"
    shipped = [(m.version, m.name) for m in load_migrations()]
    assert shipped == [(int(p.stem.partition("_")[0]), p.stem) for p in files]
    return shipped


def applied_count(run: Run) -> int:
    match = APPLIED.search(run.stdout)
    assert match, run
    return int(match.group(1))


@pytest.fixture
async def empty_dsn(pg: EmbeddedPostgres) -> AsyncIterator[str]:
    """A new database with nothing in it, dropped after the test."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg.uri)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield pg.dsn(name)
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def recorded_migrations(dsn: str) -> list[tuple[int, str]]:
    conn = await connect(dsn)
    try:
        rows = await conn.fetch("SELECT version, name FROM exportd_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(r["version"], r["name"]) for r in rows]


async def test_migrate_applies_every_migration_then_none(empty_dsn: str) -> None:
    env = base_env() | {"EXPORTD_DATABASE_URL": empty_dsn}
    expected = expected_migrations()
    app = await asyncpg.connect(empty_dsn)
    try:  # the application's own tables of the same names, which exportd must not touch
        await app.execute("CREATE TABLE public.jobs (id int); CREATE TABLE public.exports (x text)")
    finally:
        await app.close()

    first = await run_exportd("migrate", env=env)
    second = await run_exportd("migrate", env=env)

    assert first.returncode == 0, first
    assert applied_count(first) == len(expected)
    for _, name in expected:
        assert name in first.stdout
    assert second.returncode == 0, second
    assert applied_count(second) == 0
    assert "none needed" in second.stdout
    assert await recorded_migrations(empty_dsn) == expected
    conn = await asyncpg.connect(empty_dsn)
    try:
        for table in ("exports", "jobs", "idempotency_keys", "exportd_migrations"):
            where = await conn.fetchval(TABLE_SCHEMAS, table)
            assert where == (["exportd", "public"] if table in ("exports", "jobs") else ["exportd"])
        assert await conn.fetch("SELECT * FROM public.jobs") == []  # untouched
    finally:
        await conn.close()


async def test_the_schema_is_a_setting(empty_dsn: str) -> None:
    env = base_env() | {"EXPORTD_DATABASE_URL": empty_dsn, "EXPORTD_DATABASE_SCHEMA": "exp_2"}

    run = await run_exportd("migrate", env=env)

    assert run.returncode == 0, run
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval(TABLE_SCHEMAS, "exports") == ["exp_2"]
    finally:
        await conn.close()


async def test_tables_an_older_exportd_kept_in_public_move_with_their_rows(empty_dsn: str) -> None:
    older = await asyncpg.connect(empty_dsn)
    try:  # the layout up to migration 0004, with an export in it
        await apply_migrations(
            older, [m for m in load_migrations() if m.version <= 4], schema="public"
        )
        await older.execute(
            "INSERT INTO public.exports (id, tenant, owner_sub, export_name, format, file_name)"
            " VALUES (gen_random_uuid(), 'acme', 'u', 'orders', 'csv', 'x.csv')"
        )
    finally:
        await older.close()

    run = await run_exportd("migrate", env=base_env() | {"EXPORTD_DATABASE_URL": empty_dsn})

    assert run.returncode == 0, run
    assert await recorded_migrations(empty_dsn) == expected_migrations()
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM exportd.exports") == 1
        for table in ("exports", "jobs", "idempotency_keys", "exportd_migrations"):
            assert await conn.fetchval(TABLE_SCHEMAS, table) == ["exportd"], table
    finally:
        await conn.close()


async def test_two_migrates_at_once_record_each_migration_exactly_once(empty_dsn: str) -> None:
    env = base_env() | {"EXPORTD_DATABASE_URL": empty_dsn}
    expected = expected_migrations()
    holder = await asyncpg.connect(empty_dsn)
    try:
        # Hold the migration lock until both processes wait on it: then they surely race.
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(run_exportd("migrate", env=env)) for _ in range(2)]
            async with asyncio.timeout(30):
                while await holder.fetchval(LOCK_WAITERS) < len(runs):
                    finished = [run.result() for run in runs if run.done()]
                    assert not finished, f"a migrate ended before the lock was free: {finished}"
                    await asyncio.sleep(0.05)  # polling other processes' progress
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await holder.close()

    results = [run.result() for run in runs]
    for result in results:
        assert result.returncode == 0, result
    assert sum(applied_count(result) for result in results) == len(expected), results
    assert await recorded_migrations(empty_dsn) == expected


async def test_serve_refuses_an_unmigrated_database(empty_dsn: str) -> None:
    env = base_env() | {
        "EXPORTD_DATABASE_URL": empty_dsn,
        "EXPORTD_CATALOG": str(CATALOG_PATH),
        "EXPORTD_JWT_SECRET": JWT_SECRET,
        "EXPORTD_JWT_AUDIENCE": AUDIENCE,
        "EXPORTD_PUBLIC_URL": "http://exports.test",
        "EXPORTD_S3_BUCKET": "exportd-test",
        "EXPORTD_PORT": str(free_port()),
    }

    run = await run_exportd("serve", env=env, limit_s=30)

    assert run.returncode != 0, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "not migrated" in lines[0]
    assert "exportd migrate" in lines[0]
    conn = await asyncpg.connect(empty_dsn)
    try:  # and it did not migrate on its own
        assert await conn.fetchval("SELECT to_regclass('exportd.exportd_migrations')") is None
    finally:
        await conn.close()
