"""Finding the numbered SQL files in migrations/ and what a database still lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from exportd import db

# The project's top-level migrations/ folder (the package is installed editable, see Dockerfile).
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "migrations"


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[db.Migration]:
    migrations = [db.Migration.from_file(p) for p in sorted(folder.glob("[0-9]*_*.sql"))]
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {folder}")
    return migrations


async def pending_migrations(conn: db.Conn) -> list[db.Migration]:
    done = await db.applied_migrations(conn)
    return [m for m in load_migrations() if m.version not in done]


async def migrate(dsn: str) -> list[db.Migration]:
    """Apply what is missing; safe when several replicas run it at once (advisory lock)."""
    conn = await db.connect(dsn)
    try:
        return await db.apply_migrations(conn, load_migrations())
    finally:
        await conn.close()
