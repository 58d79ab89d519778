"""Mails go ahead of builds: a finished export's mail is not queued behind every build."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tests.support.client import create, wait_for, wait_until
from tests.support.mail import Mailbox

SLOW = {"export": "slow", "params": {"rows": 2_000, "pause_ms": 300}}


async def test_a_mail_goes_ahead_of_builds_queued_before_it(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record], mailbox: Mailbox
) -> None:
    api = await make_client(workers=1)
    quick = await create(api, {"export": "numbers", "params": {"rows": 1}})
    # Queued while the quick one builds: without a head start its mail would wait for all.
    slow = [await create(api, SLOW) for _ in range(3)]
    await wait_until(api, quick["id"])
    await mailbox.wait_for(1)
    await wait_for(api, slow[0]["id"], lambda e: e["status"] != "queued")

    times = await conn.fetch(
        "SELECT id, started_at, notified_at FROM exports WHERE id = ANY($1::uuid[])",
        [uuid.UUID(e["id"]) for e in [quick, *slow]],
    )
    by_id = {str(r["id"]): r for r in times}
    mailed = by_id[quick["id"]]["notified_at"]
    assert mailed is not None
    # The one worker took the mail before any of the builds queued before the mail was
    # (those not started yet are later still).
    started = [by_id[e["id"]]["started_at"] for e in slow]
    assert started[0] is not None
    assert all(at is None or mailed < at for at in started)
    for export in slow:
        await wait_until(api, export["id"])
