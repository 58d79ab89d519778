"""Connections and pools, the jsonb codec, and what counts as "the database is away"."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final, TypeAlias

import asyncpg

Conn: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# Anything that runs one statement: a connection, or the pool (which borrows one).
Executor: TypeAlias = "Conn | Pool"

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


def in_schema(schema: str | None) -> dict[str, str]:
    """Server settings that make exportd's own schema the one its statements name: the SQL
    stays unqualified, and an application's tables of the same names are never touched."""
    return {} if schema is None else {"search_path": schema}


async def connect(dsn: str, *, schema: str | None = None) -> asyncpg.Connection[asyncpg.Record]:
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn, timeout=10, server_settings=in_schema(schema)
    )
    await init_connection(conn)
    return conn


if TYPE_CHECKING:
    _Connection = asyncpg.Connection[asyncpg.Record]
else:
    _Connection = asyncpg.Connection


class StatelessConnection(_Connection):
    """A pooled connection released without the reset query (UNLISTEN, RESET ALL, CLOSE ALL,
    advisory unlock: one round trip per checkout). exportd leaves no session state behind:
    settings are SET LOCAL, advisory locks transaction-scoped, cursors live inside
    transactions, and LISTEN has its own connection. On the source, whose SQL is the
    operator's, each export's transaction ends with that reset itself (`source.snapshot`).
    An open transaction is still rolled back on release (asyncpg does that)."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str, *, schema: str | None, min_size: int, max_size: int, codecs: bool = True
) -> Pool:
    """A pool; `schema` for exportd's own database (None for the export source, which reads
    the application's tables as the operator's SQL names them); `codecs=False` for the
    source, where jsonb stays text as the server sends it (no parse and re-serialise)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection if codecs else None,
        command_timeout=60,
        server_settings=in_schema(schema),
        connection_class=StatelessConnection,
    )
