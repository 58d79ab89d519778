"""The demo: a catalog and an orders table across three tenants, for `exportd dev` and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from exportd.db.migrate import migrate
from exportd.db.pool import connect

DATA_DIR: Final = Path(__file__).parent / "data"
CATALOG_PATH: Final = DATA_DIR / "catalog.toml"
SCHEMA_PATH: Final = DATA_DIR / "schema.sql"
TENANTS: Final = ("acme", "globex", "initech")


async def load_demo(dsn: str, *, schema: str) -> None:
    """Migrate the database (exportd's tables in `schema`) and (re)load the demo schema and
    its rows."""
    await migrate(dsn, schema=schema)
    conn = await connect(dsn)
    try:
        await conn.execute(SCHEMA_PATH.read_text())
    finally:
        await conn.close()
