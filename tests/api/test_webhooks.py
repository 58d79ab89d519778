"""Webhooks end to end in one process: managing endpoints (scope, tenants, address rules), and
every final state of an export delivered, signed, retried and given up on, to a real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from exportd.api.auth import WEBHOOKS_SCOPE
from tests.support.client import Http, create, eventually, wait_until
from tests.support.contract import conforms, problem
from tests.support.receiver import Receiver
from tests.support.tokens import auth

NUMBERS = {"export": "numbers", "params": {"rows": 10}}
EVENTS = ["export.canceled", "export.expired", "export.failed", "export.succeeded"]
PUBLIC_URL = "https://hooks.example.com/exportd?token=abc"
FAST_RETRIES = {
    "webhook_allow_private": True,
    "webhook_retry_base": timedelta(milliseconds=100),
    "webhook_retry_max": timedelta(milliseconds=500),
}
WEBHOOK_JOBS = "SELECT count(*) FROM jobs WHERE kind = 'webhook'"


def manager(**claims: Any) -> dict[str, str]:
    """Headers for a token that may manage the tenant's webhooks."""
    return auth(scopes=(WEBHOOKS_SCOPE,), **claims)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def register(http: Http, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url} | ({"events": events} if events else {})
    response = await http.post("/v1/webhooks", json=body, headers=manager())
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    conforms("WebhookCreated", created)
    assert response.headers["Location"] == f"/v1/webhooks/{created['id']}"
    assert response.headers["Cache-Control"] == "no-store"
    return created


async def subscribe(http: Http, receiver: Receiver, events: list[str] | None = None) -> str:
    """Register the receiver's URL, tell it the secret; the webhook's id."""
    created = await register(http, receiver.url(), events)
    receiver.verify_with(created["secret"])
    return str(created["id"])


async def deliveries(http: Http, webhook_id: str, query: str = "") -> dict[str, Any]:
    response = await http.get(f"/v1/webhooks/{webhook_id}/deliveries{query}", headers=manager())
    assert response.status == 200, await response.text()
    page: dict[str, Any] = await response.json()
    conforms("DeliveryPage", page)
    return page


async def settled(http: Http, webhook_id: str, count: int) -> list[dict[str, Any]]:
    """Wait until the webhook has `count` deliveries (or more), none pending; return them."""

    async def done() -> bool:
        items = (await deliveries(http, webhook_id))["items"]
        return len(items) >= count and all(d["state"] != "pending" for d in items)

    await eventually(done, within=30)
    return list((await deliveries(http, webhook_id))["items"])


def routes(webhook_id: str) -> list[tuple[str, str]]:
    """One webhook's routes, as (method, path)."""
    path = f"/v1/webhooks/{webhook_id}"
    return [("GET", path), ("DELETE", path), ("GET", f"{path}/deliveries")]


async def test_webhooks_are_registered_listed_read_and_deleted_with_the_scope(
    make_client: Any,
) -> None:
    api = await make_client(role="api")
    failures = await register(api, PUBLIC_URL, ["export.failed"])
    every = await register(api, "https://hooks.example.com/all")

    listed = await api.get("/v1/webhooks", headers=manager())
    one = await api.get(f"/v1/webhooks/{every['id']}", headers=manager())

    assert failures["secret"].startswith("whsec_") and failures["secret"] != every["secret"]
    assert (failures["url"], failures["events"]) == (PUBLIC_URL, ["export.failed"])
    assert every["events"] == EVENTS
    assert listed.status == one.status == 200
    body, shown = await listed.json(), await one.json()
    conforms("WebhookList", body)
    conforms("Webhook", shown)
    assert {w["id"] for w in body["items"]} == {failures["id"], every["id"]}
    assert all("secret" not in w for w in body["items"])
    assert shown == {k: v for k, v in every.items() if k != "secret"}
    assert (await api.delete(f"/v1/webhooks/{every['id']}", headers=manager())).status == 204
    for method, path in routes(every["id"]):
        await problem(await api.request(method, path, headers=manager()), 404, "webhook_not_found")
    left = await (await api.get("/v1/webhooks", headers=manager())).json()
    assert [w["id"] for w in left["items"]] == [failures["id"]]


async def test_managing_webhooks_without_the_scope_is_forbidden(make_client: Any) -> None:
    api = await make_client(role="api")
    webhook_id = (await register(api, PUBLIC_URL))["id"]

    for method, path in [("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), *routes(webhook_id)]:
        response = await api.request(method, path, json={"url": PUBLIC_URL}, headers=auth())
        await problem(response, 403, "insufficient_scope")
    assert (await api.get(f"/v1/webhooks/{webhook_id}", headers=manager())).status == 200


async def test_another_tenants_webhook_is_not_found(make_client: Any) -> None:
    api = await make_client(role="api")
    webhook_id = (await register(api, PUBLIC_URL))["id"]
    globex = manager(tenant="globex", sub="g1")

    for method, path in routes(webhook_id):
        await problem(await api.request(method, path, headers=globex), 404, "webhook_not_found")
    assert (await (await api.get("/v1/webhooks", headers=globex)).json())["items"] == []
    assert (await api.get(f"/v1/webhooks/{webhook_id}", headers=manager())).status == 200


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook"]
)
async def test_a_private_url_is_refused_unless_allowed(make_client: Any, url: str) -> None:
    strict = await make_client(role="api")
    lenient = await make_client(role="api", webhook_allow_private=True)

    refused = await strict.post("/v1/webhooks", json={"url": url}, headers=manager())

    await problem(refused, 422, "webhook_url_invalid")
    assert (await register(lenient, url))["url"] == url


async def test_a_tenant_may_register_at_most_twenty_webhooks(make_client: Any) -> None:
    api = await make_client(role="api")
    for n in range(20):
        await register(api, f"https://hooks.example.com/{n}")

    response = await api.post("/v1/webhooks", json={"url": PUBLIC_URL}, headers=manager())

    await problem(response, 409, "too_many_webhooks")


async def test_every_final_state_is_delivered_signed_to_its_subscribers(
    make_client: Any, receiver: Receiver
) -> None:
    app = await make_client(webhook_allow_private=True, retention=timedelta(seconds=2))
    async with Receiver() as failures_only:
        every_id = await subscribe(app, receiver)
        failures_id = await subscribe(app, failures_only, ["export.failed"])
        ok = (await create(app, NUMBERS))["id"]
        bad = (await create(app, {"export": "broken"}))["id"]
        slow = (await create(app, {"export": "slow"}))["id"]
        assert (await app.post(f"/v1/exports/{slow}/cancel", headers=auth())).status == 200
        await wait_until(app, ok, ("expired",))

        items = await settled(app, every_id, 4)
        [failure] = await settled(app, failures_id, 1)

    expected = [("export.canceled", slow), ("export.expired", ok), ("export.failed", bad)]
    expected = sorted([*expected, ("export.succeeded", ok)])
    assert sorted(receiver.events()) == expected
    assert failures_only.events() == [("export.failed", bad)]
    assert receiver.unverified == failures_only.unverified == []
    for request in receiver.received + failures_only.received:
        event, data = request.json()["type"], request.json()["data"]
        conforms("Export", data)
        assert data["status"] == event.removeprefix("export.")
        assert b"x-amz" not in request.body.lower()
    assert sorted((d["event"], d["export_id"]) for d in items) == expected
    assert {d["id"] for d in items} == receiver.ids()
    assert (failure["event"], failure["export_id"]) == ("export.failed", bad)
    done = {(d["state"], d["attempts"], d["last_status"]) for d in [*items, failure]}
    assert done == {("delivered", 1, 204)}
    first = await deliveries(app, every_id, "?limit=3")
    rest = await deliveries(app, every_id, f"?limit=3&cursor={first['next_cursor']}")
    assert [d["id"] for d in first["items"] + rest["items"]] == [d["id"] for d in items]
    assert rest["next_cursor"] is None


async def test_a_receiver_answering_503_gets_the_event_on_a_later_attempt(
    make_client: Any, receiver: Receiver
) -> None:
    app = await make_client(**FAST_RETRIES)
    webhook_id = await subscribe(app, receiver, ["export.succeeded"])
    receiver.answer(503, times=2)

    export_id = (await create(app, NUMBERS))["id"]

    [delivery] = await settled(app, webhook_id, 1)
    assert (delivery["state"], delivery["attempts"]) == ("delivered", 3)
    assert (delivery["last_status"], delivery["last_error"]) == (204, None)
    assert [r.webhook_id for r in receiver.received] == [delivery["id"]] * 3  # one id, 3 copies
    route = f"http://exportd.test/v1/exports/{export_id}/download"  # never a presigned URL
    for request in receiver.received:
        data = request.json()["data"]
        assert (data["status"], data["result"]["download_url"]) == ("succeeded", route)
    assert receiver.unverified == []


async def test_a_receiver_down_for_a_while_gets_the_event_as_it_was_once_it_is_back(
    make_client: Any, receiver: Receiver
) -> None:
    retries = FAST_RETRIES | {"webhook_max_attempts": 1000}
    app = await make_client(**retries, retention=timedelta(seconds=2))
    webhook_id = await subscribe(app, receiver, ["export.succeeded"])
    await receiver.stop()
    export_id = (await create(app, NUMBERS))["id"]

    async def refused() -> bool:
        items = (await deliveries(app, webhook_id))["items"]
        return [(d["state"], d["last_error"]) for d in items] == [("pending", "connection refused")]

    await eventually(refused, within=30)
    # Down until the file has expired: the late event still tells of the success.
    await wait_until(app, export_id, ("expired",))
    await receiver.start()

    [delivery] = await settled(app, webhook_id, 1)
    assert (delivery["state"], delivery["last_status"]) == ("delivered", 204)
    assert delivery["attempts"] >= 2
    [request] = receiver.received
    assert request.webhook_id == delivery["id"]
    data = request.json()["data"]
    assert (data["status"], data["result"]["download_url"]) == ("succeeded", None)
    assert receiver.unverified == []


async def test_delivery_is_given_up_after_its_max_attempts(
    make_client: Any, receiver: Receiver, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    app = await make_client(**FAST_RETRIES, webhook_max_attempts=2)
    webhook_id = await subscribe(app, receiver, ["export.succeeded"])
    receiver.answer(500)

    await create(app, NUMBERS)

    [delivery] = await settled(app, webhook_id, 1)
    assert (delivery["state"], delivery["attempts"]) == ("failed", 2)
    assert (delivery["last_status"], delivery["last_error"]) == (500, "HTTP 500")
    assert len(receiver.received) == 2
    assert await conn.fetchval(WEBHOOK_JOBS) == 0


async def test_a_replica_forbidding_private_addresses_refuses_an_endpoint_allowed_elsewhere(
    make_client: Any, receiver: Receiver, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api", webhook_allow_private=True)
    webhook_id = await subscribe(api, receiver, ["export.succeeded"])
    await make_client(role="all")  # webhook_allow_private=False: the default

    await create(api, NUMBERS)

    [delivery] = await settled(api, webhook_id, 1)
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == ("failed", 1, None)
    assert "address not allowed" in delivery["last_error"]
    assert receiver.received == []
    assert await conn.fetchval(WEBHOOK_JOBS) == 0


async def test_deleting_a_webhook_drops_its_pending_deliveries(
    make_client: Any, receiver: Receiver, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    # The first attempt fails and the next waits a minute: the delivery stays pending.
    app = await make_client(webhook_allow_private=True, webhook_retry_base=timedelta(minutes=1))
    webhook_id = await subscribe(app, receiver, ["export.succeeded"])
    receiver.answer(503)
    await create(app, NUMBERS)

    async def tried_once() -> bool:
        items = (await deliveries(app, webhook_id))["items"]
        return [(d["state"], d["attempts"]) for d in items] == [("pending", 1)]

    await eventually(tried_once, within=30)
    assert await conn.fetchval(WEBHOOK_JOBS) == 1

    response = await app.delete(f"/v1/webhooks/{webhook_id}", headers=manager())

    assert response.status == 204
    assert await conn.fetchval(WEBHOOK_JOBS) == 0
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 0
    assert len(receiver.received) == 1
