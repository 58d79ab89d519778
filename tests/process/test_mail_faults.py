"""A mail is never silently dropped: a replica killed inside the SMTP conversation (the relay
holds the message and has not answered 250) leaves the outcome unknown, and the next claim
sends the mail again with the same Message-ID, counted as a resend."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import eventually
from tests.support.database import work_left
from tests.support.mail import HoldingSink, mail_id
from tests.support.processes import ExportdProcess
from tests.support.tokens import auth

SMALL = {"export": "numbers", "params": {"rows": 5}}


async def resends(replica: ExportdProcess) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{replica.url}/metrics") as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "exportd_mail_resends_total"
    )


async def test_a_replica_killed_before_the_relays_answer_leads_to_a_resend(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    with HoldingSink() as sink:
        first, second = await replicas(2, **sink.env())
        await second.kill()  # only the first may take the mail
        with sink.holding():
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{first.url}/v1/exports", json=SMALL, headers=auth()) as response,
            ):
                assert response.status == 202, await response.text()
                export_id = (await response.json())["id"]
            # The message is with the relay, its 250 held back: the sender dies waiting.
            await eventually(lambda: len(sink.messages) == 1, within=30)
            await first.kill()
        await second.start()

        # Once the dead claim's lease runs out, the mail goes again, the same mail.
        await eventually(lambda: len(sink.messages) == 2, within=30)

        async def recorded() -> bool:
            sql = "SELECT notified_at IS NOT NULL FROM exports WHERE id = $1"
            return bool(await conn.fetchval(sql, uuid.UUID(export_id)))

        await eventually(recorded, within=10)
        assert [m["Message-ID"] for m in sink.messages] == [mail_id(export_id)] * 2
        assert await conn.fetchval("SELECT error_code FROM exports") is None
        assert await work_left(conn) == 0
        assert "notify.resending" in second.log()
        assert await resends(second) == 1
