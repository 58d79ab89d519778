"""Whole databases: what the embedded stack and its users do to start from an empty one."""

from __future__ import annotations

from typing import Final

import asyncpg

from exportd.db.source import quote_ident

# FORCE closes the database's sessions first (PostgreSQL 13+).
DROP_DATABASE: Final = "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
CREATE_DATABASE: Final = "CREATE DATABASE {name}"


async def recreate_database(admin_dsn: str, name: str) -> None:
    """Drop the database `name` (closing its sessions) and create it empty."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(DROP_DATABASE.format(name=quote_ident(name)))
        await admin.execute(CREATE_DATABASE.format(name=quote_ident(name)))
    finally:
        await admin.close()
