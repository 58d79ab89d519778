"""Progress with a denominator: percent, rate and ETA while building; place in the queue while
queued. Every answer is checked against the API document (wait_for and create do)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.client import Export, create, wait_for, wait_until
from tests.support.tokens import auth


async def watch(client: TestClient[Any, Any], export_id: str, until: str) -> list[Export]:
    """The export now, then every change a long-poll hears, until its status is `until` (or
    it finished)."""
    now = await client.get(f"/v1/exports/{export_id}", headers=auth())
    answers: list[Export] = [await now.json()]

    def record(body: Export) -> bool:
        answers.append(body)
        return bool(body["status"] == until or body["progress"]["phase"] == "done")

    await wait_for(client, export_id, record, poll_s=5)
    return answers


async def test_a_build_shows_percent_rising_with_a_rate_and_an_eta(
    client: TestClient[Any, Any],
) -> None:
    # ~40,000 rows, pausing 50 ms each 1,000: about two seconds, ten progress reports.
    created = await create(client, {"export": "slow", "params": {"rows": 40_000}})
    answers = await watch(client, created["id"], until="succeeded")
    running = [a["progress"] for a in answers if a["status"] == "running"]
    percents = [p["percent"] for p in running if p["percent"] is not None]

    assert len(set(percents)) >= 2, running
    assert percents == sorted(percents) and percents[-1] > percents[0]
    assert all(0 <= p < 100 for p in percents)
    assert all(p["rows_estimate"] and p["rows_estimate"] > 0 for p in running if p["rows"])
    assert any(p["eta_s"] is not None and p["eta_s"] >= 0 for p in running), running
    assert all(p["rate_rows_s"] is None or p["rate_rows_s"] >= 0 for p in running)
    assert {p["phase"] for p in running} <= {"building", "uploading"}

    final = await wait_until(client, created["id"])
    assert final["status"] == "succeeded"
    assert final["progress"]["percent"] == 100
    assert final["progress"]["rows"] == 40_000
    assert final["queue"] is None


async def test_a_queued_export_s_position_falls_as_the_builds_ahead_start(
    make_client: Any,
) -> None:
    # One worker, and a tenant cap above what it queues: the worker is what it waits for.
    client = await make_client(workers=1, tenant_max_running=10)
    # A history of finished builds first, so the queue can estimate a start time.
    for _ in range(3):
        done = await create(client, {"export": "numbers", "params": {"rows": 1}})
        assert (await wait_until(client, done["id"]))["status"] == "succeeded"
    # One worker: a long build runs (~3 s, so the queue stands still while we look), two
    # shorter ones wait before the one we watch.
    slow = {"export": "slow", "params": {"rows": 3_000, "pause_ms": 300}}
    first = {"export": "slow", "params": {"rows": 10_000, "pause_ms": 300}}
    ahead = [await create(client, first), await create(client, slow), await create(client, slow)]
    await wait_for(client, ahead[0]["id"], lambda e: e["status"] == "running")
    watched = await create(client, slow)

    answers = await watch(client, watched["id"], until="running")
    places = [a["queue"] for a in answers if a["status"] == "queued"]
    positions = [q["position"] for q in places]

    assert positions[0] == 3, places
    assert positions == sorted(positions, reverse=True)
    assert len(set(positions)) >= 2, positions
    assert all(q["ahead"] == q["position"] - 1 for q in places)
    assert all(q["waiting_for"] == "worker" for q in places)
    estimate = places[0]["estimated_start_at"]
    assert estimate is not None
    assert datetime.fromisoformat(estimate) >= datetime.fromisoformat(watched["created_at"])
    assert answers[-1]["queue"] is None

    # The list shows the same standing for the queued ones.
    listed = await (await client.get("/v1/exports?status=queued", headers=auth())).json()
    assert all(item["queue"]["position"] >= 1 for item in listed["items"])
    for export in [*ahead, watched]:
        await wait_until(client, export["id"])


async def test_a_tenant_at_its_cap_is_told_it_waits_for_its_own_builds(
    make_client: Any,
) -> None:
    client = await make_client(workers=2, tenant_max_running=1)
    slow = {"export": "slow", "params": {"rows": 3_000, "pause_ms": 300}}
    running = await create(client, slow)
    await wait_for(client, running["id"], lambda e: e["status"] == "running")
    waiting = await create(client, slow)

    body = await (await client.get(f"/v1/exports/{waiting['id']}", headers=auth())).json()

    assert body["status"] == "queued"
    assert body["queue"]["waiting_for"] == "tenant_limit"
    assert body["queue"]["position"] == 1
    # Another tenant's later export takes the free worker meanwhile.
    other = await create(client, slow, tenant="t2")
    started = await wait_for(client, other["id"], lambda e: e["status"] != "queued", tenant="t2")
    assert started["status"] in ("running", "succeeded")
    for export in (running, waiting):
        await wait_until(client, export["id"])
    await wait_until(client, other["id"], tenant="t2")
