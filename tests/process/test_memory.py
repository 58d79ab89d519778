"""Memory stays flat: a large export through a real process, its RSS sampled all along."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.support.client import create, wait_until
from tests.support.memory import RssSampler

ROWS = 500_000  # ~75 MB of CSV: a whole-file buffer would add at least that much
BOUND_MIB = 96


@pytest.mark.parametrize(
    ("fmt", "compression"),
    [("csv", "none"), ("csv", "gzip"), ("jsonl", "zstd"), ("parquet", "none")],
)
async def test_memory_stays_flat_for_a_large_export(
    replicas: Callable[..., Any], fmt: str, compression: str
) -> None:
    (replica,) = await replicas(1, EXPORTD_WORKERS="1")
    body = {
        "export": "numbers",
        "params": {"rows": ROWS},
        "format": fmt,
        "compression": compression,
    }
    async with aiohttp.ClientSession(base_url=replica.url) as http:
        with RssSampler(replica.pid) as rss:
            created = await create(http, body)
            done = await wait_until(http, created["id"])

    assert done["status"] == "succeeded", done
    assert done["result"]["rows"] == ROWS
    assert rss.samples > 0
    growth_mib = (rss.peak - rss.first) / 2**20
    assert growth_mib < BOUND_MIB, f"RSS grew {growth_mib:.0f} MiB"
