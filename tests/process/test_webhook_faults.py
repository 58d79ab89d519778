"""A replica killed mid-delivery: the receiver holds the POST unanswered, the sender dies, and
the event comes again from another replica with the same webhook-id (at least once, and
deduplicable)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg

from exportd.api.auth import WEBHOOKS_SCOPE
from tests.support.client import eventually
from tests.support.database import queue_drained
from tests.support.receiver import Receiver
from tests.support.tokens import auth

SMALL = {"export": "numbers", "params": {"rows": 5}}
FAST_RETRIES = {
    "EXPORTD_WEBHOOK_ALLOW_PRIVATE": "true",
    "EXPORTD_WEBHOOK_RETRY_BASE_S": "0.2",
    "EXPORTD_WEBHOOK_RETRY_MAX_S": "1",
}


async def test_an_event_whose_sender_was_killed_mid_delivery_comes_again(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    first, second = await replicas(2, **FAST_RETRIES)
    await second.kill()  # only the first may take the delivery
    async with Receiver() as receiver, aiohttp.ClientSession(base_url=first.url) as http:
        async with http.post(
            "/v1/webhooks",
            json={"url": receiver.url(), "events": ["export.succeeded"]},
            headers=auth(scopes=(WEBHOOKS_SCOPE,)),
        ) as response:
            assert response.status == 201, await response.text()
            receiver.verify_with((await response.json())["secret"])
        receiver.hold()
        async with http.post("/v1/exports", json=SMALL, headers=auth()) as response:
            assert response.status == 202, await response.text()
            export_id = (await response.json())["id"]
        # The event is with the receiver, its answer held back: the sender dies waiting.
        await eventually(lambda: receiver.held == 1, within=30)
        await first.kill()
        receiver.release()
        await second.start()

        await eventually(lambda: len(receiver.received) == 2, within=30)

        async def delivered() -> bool:
            sql = "SELECT state FROM webhook_deliveries WHERE export_id = $1"
            return bool(await conn.fetchval(sql, uuid.UUID(export_id)) == "delivered")

        await eventually(delivered, within=10)
        first_copy, second_copy = receiver.received
        assert first_copy.webhook_id == second_copy.webhook_id  # one event, deduplicable
        assert receiver.events() == [("export.succeeded", export_id)] * 2
        assert receiver.unverified == []
        left = "SELECT count(*) FROM jobs WHERE kind = 'webhook'"
        assert await conn.fetchval(left) == 0
        await queue_drained(conn)  # the mail, if the killed replica held it, comes again
