"""300 exports through nginx to 3 replicas while one is killed -9 again and again: each is
built once, mailed, told to its tenant's webhook, and expires."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest

from exportd.config import Settings
from exportd.dev.servers import EmbeddedS3
from tests.support.chaos import (
    REPLICA_ENV,
    TENANTS,
    Chaos,
    drained,
    drive_with_chaos,
    live_leases,
    register_webhooks,
)
from tests.support.chaos_tally import Run, check, conclude
from tests.support.loadbalancer import LoadBalancer, NginxMissing, nginx_binary
from tests.support.mail import Mailbox
from tests.support.processes import ExportdProcess
from tests.support.receiver import Receiver

EXPORTS: Final = 300
RATE: Final = 10.0  # exports a second, in bursts: 30 s of traffic, 6-10 kills
BURST: Final = 20


@pytest.mark.timeout(240)
async def test_exports_through_nginx_survive_a_replica_killed_again_and_again(
    replicas: Callable[..., Any],
    conn: asyncpg.Connection[asyncpg.Record],
    mailbox: Mailbox,
    s3: EmbeddedS3,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """300 exports through nginx to 3 replicas while, every 2-3 s, a replica holding jobs is
    killed -9 and started again on its port. ExportdProcess and nginx logs stay in tmp_path."""
    try:
        nginx_binary()
    except NginxMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    fleet: list[ExportdProcess] = await replicas(3, **REPLICA_ENV)
    chaos = Chaos(fleet, partial(live_leases, conn), interval=(2.0, 3.0), max_kills=40)

    async with AsyncExitStack() as stack:
        receivers = [await stack.enter_async_context(Receiver()) for _ in TENANTS]
        started = time.monotonic()
        with LoadBalancer([r.port for r in fleet], tmp_path / "nginx") as nginx:
            await register_webhooks(nginx.url, receivers)
            traffic = await drive_with_chaos(
                nginx.url, fleet, EXPORTS, chaos=chaos, rate=RATE, burst=BURST
            )
            drain_s = await drained(conn, EXPORTS, within=150)
        wall_s = time.monotonic() - started

        run = Run(EXPORTS, fleet, traffic, chaos, nginx.failovers(), drain_s, wall_s)
        outcome, report = await conclude(
            conn, s3, settings.s3_prefix, mailbox.messages(), receivers, run
        )
    print(f"\nreplica chaos ({tmp_path}): {json.dumps(report)}")
    assert chaos.kills >= 3 and chaos.jobs_hit >= 1, f"too little chaos to prove much: {report}"
    check(outcome, EXPORTS)
