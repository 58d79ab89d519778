"""`exportd migrate` on fresh empty databases, and `exportd serve` refusing an unmigrated one."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from exportd.db.migrate import MIGRATION_LOCK_KEY, load_migrations
from exportd.dev.servers import EmbeddedPostgres, free_port
from tests.support.catalog import CATALOG_PATH
from tests.support.processes import ROOT, Run, base_env, run_exportd
from tests.support.tokens import AUDIENCE, JWT_SECRET

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
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT version, name FROM exportd_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(r["version"], r["name"]) for r in rows]


async def test_migrate_applies_every_migration_then_none(empty_dsn: str) -> None:
    env = base_env() | {"EXPORTD_DATABASE_URL": empty_dsn}
    expected = expected_migrations()

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
        for table in ("exports", "jobs"):
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
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
        assert await conn.fetchval("SELECT to_regclass('exportd_migrations')") is None
    finally:
        await conn.close()
