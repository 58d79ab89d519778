"""The names the queue benchmark's processes share (kept light: load processes import it)."""

from __future__ import annotations

from typing import Any, Final

EXPORT_NAME: Final = "one_row"
# Whose exports the benchmark makes; creates spread over several tenants (see tenant()).
SUB: Final = "bench"
EMAIL: Final = "bench@bench.example"
# The benchmark's own connections, as pg_stat_activity names them.
BENCH_APP: Final = "queue-bench"


def tenant(n: int) -> str:
    return f"bench{n}"


def claims(n: int = 0) -> dict[str, Any]:
    """Token claims of the benchmark's caller number `n` (one tenant each)."""
    return {"tenant": tenant(n), "sub": SUB, "email": EMAIL, "ttl_s": 86400}


def labelled(dsn: str) -> str:
    """The DSN with BENCH_APP as application_name (asyncpg passes unknown parameters on as
    server settings), so the connection counts leave the benchmark's own pools out."""
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={BENCH_APP}"
