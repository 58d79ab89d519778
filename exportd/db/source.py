"""The source side: the snapshot's time, and the catalog's SQL wrapped into the shapes each
encoding needs (PostgreSQL does the encoding; these only rewrite the select list)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any, Final

import asyncpg

from exportd.db.pool import Conn, Executor

# The transaction's start: what the export's snapshot shows the data as of. In the same round
# trip, plans in this transaction are made for the export's actual parameters: a connection's
# cached statement may otherwise switch to a generic plan after five runs, which knows
# nothing of the values (generate_series(1, $1) is "1000 rows" to it) and estimates and
# plans worse for it.
SNAPSHOT_TIME: Final = "SELECT now(), set_config('plan_cache_mode', 'force_custom_plan', true)"


BEGIN_SNAPSHOT: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

# The end of an export's transaction, and of the connection's part in it, in one round trip:
# ROLLBACK (nothing was written, and it undoes what the export's SQL or hook changed in the
# session: settings, cursors, LISTEN), then the reset asyncpg's pool sends on release to a
# PostgreSQL server (the source is one: the pipeline needs its COPY), which the source pool
# then skips: a round trip less per export.
END_SNAPSHOT: Final = "ROLLBACK; SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL"


@asynccontextmanager
async def snapshot(conn: Conn) -> AsyncIterator[None]:
    """The export's transaction: REPEATABLE READ, READ ONLY, ended by END_SNAPSHOT. A plain
    BEGIN opens it, so asyncpg's `conn.transaction()` will not nest in it: a hook that wants
    a savepoint writes SAVEPOINT."""
    try:
        await conn.execute(BEGIN_SNAPSHOT)
        yield
    except BaseException:
        if not _dropped(conn):  # `copy_out` drops a COPY it stopped: the server rolls back
            with suppress(Exception):  # the export's own error is the one to report
                await _end_snapshot(conn)
        raise
    # A connection lost by now fails the export here: its rows may be short.
    await _end_snapshot(conn)


def _dropped(conn: Conn) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # a pool's proxy, its connection terminated and taken back
        return True


async def _end_snapshot(conn: Conn) -> None:
    """END_SNAPSHOT; a connection whose end failed is dropped: its session state is unknown."""
    try:
        await conn.execute(END_SNAPSHOT)
    except BaseException:
        if not _dropped(conn):
            conn.terminate()
        raise


async def snapshot_time(conn: Executor) -> datetime:
    value: datetime = await conn.fetchval(SNAPSHOT_TIME)
    return value


# asyncpg's timeout covers a COPY as a whole (the pool's 60 s command timeout would fail
# every export whose COPY runs longer): a COPY gets a budget beyond any export instead, and
# fails once no data has moved for COPY_STALL_S (the source hangs, or the upload has
# stopped taking bytes).
COPY_BUDGET_S: Final = 7 * 24 * 3600.0
COPY_STALL_S: Final = 60.0

# asyncpg hands `output` what one socket read returned, and stops reading until it is done.
# When PostgreSQL writes slower than exportd reads (JSON Lines, a busy source), that is
# ~10 KiB at a time, and the work per chunk (stop and resume reading, a wake-up, the sink's
# call) was half of exportd's CPU and slowed PostgreSQL's own sends. After a small chunk, a
# millisecond's pause lets the kernel's buffer fill: chunks of ~70 KiB, and exportd's CPU
# per GB of CSV went from 7.4 to 3.1 s; JSON Lines from 0.84x to 1.07x the `COPY | upload`
# script (bench/results/export_bench-10000000-20261206T150725Z). Not longer: the buffer
# holds about 2 ms of a fast COPY, and a 3 ms pause stalled it.
COALESCE_BELOW: Final = 64 * 1024
COALESCE_S: Final = 0.001


async def copy_out(
    conn: Conn,
    sql: str,
    args: Sequence[Any],
    output: Callable[[bytes], Awaitable[None]],
    *,
    stall_s: float = COPY_STALL_S,
    **options: Any,
) -> str:
    """COPY the query's rows to `output`, chunk by chunk; its status line. A COPY that stops
    part-way (the output's error, a cancel, the stall) drops its connection: asyncpg 0.32
    takes the next batch of rows still in flight for the answer to its cancel of the COPY,
    and the ROLLBACK after it failed with InternalClientError in place of the real error (a
    canceled build was logged as an internal failure). The server rolls back on its own."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(stall_s) as deadline:

            async def moved(data: bytes) -> None:
                deadline.reschedule(loop.time() + stall_s)
                await output(data)
                if len(data) < COALESCE_BELOW:
                    await asyncio.sleep(COALESCE_S)
                deadline.reschedule(loop.time() + stall_s)

            status: str = await conn.copy_from_query(
                sql, *args, output=moved, timeout=COPY_BUDGET_S, **options
            )
    except asyncpg.PostgresError:
        raise  # the server ended the COPY itself: the protocol is where it should be
    except BaseException:
        conn.terminate()
        raise
    return status


# Timestamps with zone come out of COPY in the session's zone: make it UTC (this transaction).
UTC_SESSION: Final = "SET LOCAL timezone = 'UTC'"


async def use_utc(conn: Executor) -> None:
    await conn.execute(UTC_SESSION)


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
# Columns of these types print as numbers, booleans or dates, which no spreadsheet runs as a
# formula (a negative number stays a number); every other column is text to a spreadsheet.
_FORMULA_FREE_TYPES: Final = frozenset(
    {"int2", "int4", "int8", "float4", "float8", "numeric", "oid", "bool"}
    | {"date", "time", "timetz", "timestamp", "timestamptz", "interval"}
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def jsonl_query(sql: str) -> str:
    return f"SELECT row_to_json(q)::text FROM ({sql}) AS q"


def spreadsheet_safe_query(sql: str, columns: list[tuple[str, str]]) -> str:
    """The query with every text-like column (text, enums, json, uuids, arrays: anything not a
    number, boolean or date) as text, its formula-like cells neutralised."""
    exprs = []
    for name, pg_type in columns:
        col = "q." + quote_ident(name)
        if pg_type not in _FORMULA_FREE_TYPES:
            text = f"{col}::text"
            test = FORMULA_TEST.format(col=text)
            col = f"CASE WHEN {test} THEN '''' || {text} ELSE {text} END AS {quote_ident(name)}"
        exprs.append(col)
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS q"


def text_columns_query(sql: str, columns: list[tuple[str, bool]]) -> str:
    """The query with the flagged columns cast to text."""
    exprs = [
        f"q.{quote_ident(name)}::text AS {quote_ident(name)}" if cast else f"q.{quote_ident(name)}"
        for name, cast in columns
    ]
    return f"SELECT {', '.join(exprs)} FROM ({sql}) AS q"


# Plans the query without running it: the database parses it, resolves every name and binds
# the typed arguments, which is all that a typo or a wrong type would fail.
EXPLAIN: Final = "EXPLAIN {sql}"


async def explain(conn: Executor, sql: str, args: list[Any]) -> None:
    await conn.fetch(EXPLAIN.format(sql=sql), *args)


# The planner's row estimate for a query with these arguments: a denominator for progress,
# as cheap as planning. An estimate only: statistics can be stale and filters misjudged.
EXPLAIN_JSON: Final = "EXPLAIN (FORMAT JSON) {sql}"


async def estimate_rows(conn: Executor, sql: str, args: list[Any]) -> int:
    plan = await conn.fetchval(EXPLAIN_JSON.format(sql=sql), *args)
    document = json.loads(plan) if isinstance(plan, str) else plan
    return int(document[0]["Plan"]["Plan Rows"])
