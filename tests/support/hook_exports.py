"""A hook module for the tests: a Python export registered beside the TOML catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from exportd.export.hooks import HookContext, Param, Registry

START = datetime(2025, 1, 1, tzinfo=UTC)


def expected_rows(count: int, tenant: str, orders: int) -> list[tuple[Any, ...]]:
    """What `squares` yields, for the tests to compare against."""
    labels = ["plain", 'comma, and "quote"', "line\nbreak ✓", "=1+2"]
    return [
        (n, Decimal(n * n) / 4, f"{tenant}:{orders}:{labels[n % 4]}", START + timedelta(hours=n))
        for n in range(1, count + 1)
    ]


def register(registry: Registry) -> None:
    @registry.export(
        "squares",
        title="Squares (Python)",
        columns=[
            ("n", "int8"),
            ("quarter_square", "numeric"),
            ("label", "text"),
            ("at", "timestamptz"),
        ],
        params=[Param(name="count", type="int", required=True)],
        spreadsheet_safe=True,
    )
    async def squares(ctx: HookContext) -> AsyncIterator[Sequence[Any]]:
        # The snapshot connection is the hook's to query; the tenant comes from identity.
        orders = await ctx.conn.fetchval(
            "SELECT count(*) FROM demo.orders WHERE tenant = $1", ctx.tenant
        )
        for row in expected_rows(ctx.params["count"], ctx.tenant, orders):
            yield row
