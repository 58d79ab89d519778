"""Long-poll fan-out: every waiter on an export shares one read per change; nothing is read
while nothing changes; a version already held costs no read; caps answer 429."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from exportd.api.keys import METRICS, WATCH
from tests.support.client import create, eventually
from tests.support.contract import problem
from tests.support.tokens import auth

ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}


def reads(api: TestClient[Any, Any]) -> float:
    """exportd_longpoll_reads_total: reads made for waiters."""
    value: float | None = api.app[METRICS].registry.get_sample_value("exportd_longpoll_reads_total")
    assert value is not None
    return value


def waiting(api: TestClient[Any, Any]) -> int:
    count: int = api.app[WATCH].waiting
    return count


async def current_etag(api: TestClient[Any, Any], export_id: str) -> str:
    response = await api.get(f"/v1/exports/{export_id}", headers=auth())
    etag: str = response.headers["ETag"]
    return etag


def poll(api: TestClient[Any, Any], export_id: str, etag: str, wait: int = 20) -> Any:
    return asyncio.ensure_future(
        api.get(f"/v1/exports/{export_id}?wait={wait}", headers=auth() | {"If-None-Match": etag})
    )


async def test_many_waiters_on_one_export_share_one_read_of_its_change(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")  # no workers: only we change the export
    export_id = (await create(api, ORDERS))["id"]
    etag = await current_etag(api, export_id)
    # aiohttp's client opens at most 100 connections to a host: 90 waiters.
    polls = [poll(api, export_id, etag) for _ in range(90)]
    await eventually(lambda: waiting(api) == 90, within=30)
    before = reads(api)

    await conn.execute(
        "UPDATE exports SET progress_rows = 7, version = version + 1 WHERE id = $1",
        uuid.UUID(export_id),
    )
    answers = await asyncio.gather(*polls)

    assert {a.status for a in answers} == {200}
    bodies = [await a.json() for a in answers]
    assert {b["progress"]["rows"] for b in bodies} == {7}
    assert len({a.headers["ETag"] for a in answers}) == 1
    assert reads(api) - before == 1
    assert waiting(api) == 0


async def test_nothing_is_read_while_nothing_changes(make_client: Any) -> None:
    # The sweep interval is 1 s in tests: waiters used to re-read on it, each on its own.
    api = await make_client(role="api")
    export_id = (await create(api, ORDERS))["id"]
    etag = await current_etag(api, export_id)
    before = reads(api)

    answers = await asyncio.gather(*[poll(api, export_id, etag, wait=3) for _ in range(20)])

    assert {a.status for a in answers} == {304}
    assert reads(api) == before


async def test_a_notification_of_a_version_already_held_costs_no_read(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record], settings: Any
) -> None:
    api = await make_client(role="api")
    created = await create(api, ORDERS)
    etag = await current_etag(api, created["id"])
    waiter = poll(api, created["id"], etag, wait=3)
    await eventually(lambda: waiting(api) == 1, within=10)
    before = reads(api)

    # What the trigger sends, for the version the waiter holds (a duplicate, say).
    channel = f"{settings.database_schema}_exports"
    await conn.execute("SELECT pg_notify($1, $2)", channel, f"{created['id']}:{created['version']}")
    answer = await waiter

    assert answer.status == 304
    assert reads(api) == before


async def test_a_change_between_the_read_and_the_wait_is_not_missed(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")
    export_id = (await create(api, ORDERS))["id"]
    etag = await current_etag(api, export_id)
    # The change commits before the long-poll registers: it holds an older version than the
    # notification already heard, and reads at once.
    await conn.execute(
        "UPDATE exports SET version = version + 1 WHERE id = $1", uuid.UUID(export_id)
    )
    await asyncio.sleep(0.2)  # the notification arrives while nobody waits

    answer = await api.get(
        f"/v1/exports/{export_id}?wait=20", headers=auth() | {"If-None-Match": etag}
    )

    assert answer.status == 200
    assert answer.headers["ETag"] != etag


async def test_waiters_past_a_cap_are_told_to_come_back(make_client: Any) -> None:
    api = await make_client(role="api", max_waiters=3, tenant_max_waiters=2)
    export_id = (await create(api, ORDERS))["id"]
    etag = await current_etag(api, export_id)
    held = [poll(api, export_id, etag, wait=5) for _ in range(2)]
    await eventually(lambda: waiting(api) == 2, within=10)

    refused = await api.get(
        f"/v1/exports/{export_id}?wait=5", headers=auth() | {"If-None-Match": etag}
    )
    await problem(refused, 429, "too_many_waiters")
    assert int(refused.headers["Retry-After"]) > 0
    # Another tenant still has room under the replica's cap; a poll that need not wait, too.
    other = await create(api, ORDERS, tenant="globex")
    other_etag = await api.get(f"/v1/exports/{other['id']}", headers=auth(tenant="globex"))
    other_poll = await api.get(
        f"/v1/exports/{other['id']}?wait=1",
        headers=auth(tenant="globex") | {"If-None-Match": other_etag.headers["ETag"]},
    )
    assert other_poll.status == 304
    assert (await api.get(f"/v1/exports/{export_id}", headers=auth())).status == 200
    assert {a.status for a in await asyncio.gather(*held)} == {304}
