"""Queue guarantees inside one process: cancel, idempotency, fairness, backpressure, retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from exportd.config import Settings
from exportd.db import jobs
from exportd.db.pool import create_pool
from exportd.db.rows import ExportRow
from exportd.dev.servers import EmbeddedS3, free_port
from exportd.model import JobKind
from exportd.queue.listener import Listener
from tests.support.client import create, eventually, wait_for, wait_until
from tests.support.database import SCHEMA, connect, queue_orders, work_left
from tests.support.mail import Mailbox
from tests.support.s3 import nothing_under, objects_under
from tests.support.tokens import auth

ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}
KINDS: list[str] = list(JobKind)
LEASE = timedelta(seconds=30)


async def test_cancel_queued_export_is_immediate(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")
    created = await create(api, ORDERS)

    response = await api.post(f"/v1/exports/{created['id']}/cancel", headers=auth())

    assert response.status == 200
    body = await response.json()
    assert body["status"] == "canceled"
    assert body["finished_at"] is not None
    assert await work_left(conn) == 0
    # What is left is the tidy-up of anything its attempts wrote, due after a lease or two.
    tidy = "SELECT kind, ready_at > now() + interval '15 seconds' FROM jobs"
    assert [tuple(r) for r in await conn.fetch(tidy)] == [("expire", True)]


async def test_cancel_running_export_stops_the_build_and_leaves_no_file(
    client: TestClient[Any, Any],
    settings: Any,
    s3: EmbeddedS3,
    mailbox: Mailbox,
    conn: asyncpg.Connection[asyncpg.Record],
) -> None:
    created = await create(client, {"export": "slow"})
    export_id = created["id"]
    # Wait until more than one part's worth streamed: a multipart upload is open then.
    await wait_for(client, export_id, lambda e: e["progress"]["bytes"] > 9 * 1024 * 1024, poll_s=5)
    _, uploads = objects_under(s3, settings.s3_prefix)
    assert uploads, "the build should have an open multipart upload by now"

    response = await client.post(f"/v1/exports/{export_id}/cancel", headers=auth())

    assert response.status == 200
    assert (await response.json())["status"] == "canceled"
    # The worker hears the NOTIFY, stops, and aborts its upload.
    await eventually(lambda: nothing_under(s3, settings.s3_prefix), within=30)
    final = await wait_until(client, export_id)
    assert final["status"] == "canceled"
    assert final["result"] is None
    assert await work_left(conn) == 0
    assert mailbox.messages() == []


async def test_cancel_finished_export_is_a_conflict(client: TestClient[Any, Any]) -> None:
    created = await create(client, {"export": "numbers", "params": {"rows": 10}})
    await wait_until(client, created["id"])

    response = await client.post(f"/v1/exports/{created['id']}/cancel", headers=auth())

    assert response.status == 409
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "export_finished"


async def test_cancel_of_another_tenants_export_is_not_found(make_client: Any) -> None:
    api = await make_client(role="api")
    created = await create(api, ORDERS)

    response = await api.post(
        f"/v1/exports/{created['id']}/cancel", headers=auth(tenant="globex", sub="g1")
    )

    assert response.status == 404
    again = await api.get(f"/v1/exports/{created['id']}", headers=auth())
    assert (await again.json())["status"] == "queued"


async def test_idempotency_key_replays_the_same_export(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")
    headers = auth() | {"Idempotency-Key": "order-export-1"}

    first = await api.post("/v1/exports", json=ORDERS, headers=headers)
    second = await api.post("/v1/exports", json=ORDERS, headers=headers)

    assert first.status == second.status == 202
    assert (await first.json())["id"] == (await second.json())["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await conn.fetchval("SELECT count(*) FROM exports") == 1


async def test_concurrent_posts_with_one_idempotency_key_make_one_export(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")
    headers = auth() | {"Idempotency-Key": str(uuid.uuid4())}

    responses = await asyncio.gather(
        *(api.post("/v1/exports", json=ORDERS, headers=headers) for _ in range(20))
    )

    assert {r.status for r in responses} == {202}
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert await conn.fetchval("SELECT count(*) FROM exports") == 1
    assert await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'build'") == 1


async def test_idempotency_key_with_another_body_is_rejected(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")
    headers = auth() | {"Idempotency-Key": "k-1"}
    await api.post("/v1/exports", json=ORDERS, headers=headers)

    other = {"export": "orders", "params": {"since": "2025-02-01"}}
    response = await api.post("/v1/exports", json=other, headers=headers)

    assert response.status == 422
    assert (await response.json())["code"] == "idempotency_key_reused"
    assert await conn.fetchval("SELECT count(*) FROM exports") == 1


@pytest.mark.parametrize(
    "other", [{"tenant": "globex", "sub": "g1"}, {"sub": "user-2", "email": "user-2@acme.example"}]
)
async def test_idempotency_keys_belong_to_their_caller(
    make_client: Any, other: dict[str, str]
) -> None:
    api = await make_client(role="api")
    key = {"Idempotency-Key": "shared-key"}

    mine = await api.post("/v1/exports", json=ORDERS, headers=auth() | key)
    # Another tenant, or a colleague in the same tenant: the same key and body is a new
    # export, neither a replay of mine nor a 422 that would tell them the key exists.
    theirs = await api.post("/v1/exports", json=ORDERS, headers=auth(**other) | key)

    assert mine.status == theirs.status == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert (await mine.json())["id"] != (await theirs.json())["id"]


async def test_expired_idempotency_key_makes_a_new_export(make_client: Any) -> None:
    api = await make_client(role="api", idempotency_ttl=timedelta(0))
    headers = auth() | {"Idempotency-Key": "short-lived"}

    first = await api.post("/v1/exports", json=ORDERS, headers=headers)
    second = await api.post("/v1/exports", json=ORDERS, headers=headers)

    assert (await first.json())["id"] != (await second.json())["id"]


async def test_queued_cap_answers_429_with_retry_after(make_client: Any) -> None:
    api = await make_client(role="api", tenant_max_queued=3)
    for _ in range(3):
        await create(api, ORDERS)

    response = await api.post("/v1/exports", json=ORDERS, headers=auth())

    assert response.status == 429
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "too_many_queued"
    assert int(response.headers["Retry-After"]) > 0
    other_tenant = await api.post("/v1/exports", json=ORDERS, headers=auth(tenant="globex"))
    assert other_tenant.status == 202


async def test_a_retry_at_the_queued_cap_is_replayed_not_refused(make_client: Any) -> None:
    api = await make_client(role="api", tenant_max_queued=2)
    key = auth() | {"Idempotency-Key": "retry-me"}
    first = await api.post("/v1/exports", json=ORDERS, headers=key)
    await create(api, ORDERS)  # now at the cap

    again = await api.post("/v1/exports", json=ORDERS, headers=key)
    fresh = await api.post("/v1/exports", json=ORDERS, headers=auth())

    assert again.status == 202, await again.text()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["id"] == (await first.json())["id"]
    assert fresh.status == 429


async def test_a_key_refused_at_the_queued_cap_is_not_spent(make_client: Any) -> None:
    api = await make_client(role="api", tenant_max_queued=1)
    blocker = await create(api, ORDERS)
    key = auth() | {"Idempotency-Key": "later"}

    refused = await api.post("/v1/exports", json=ORDERS, headers=key)
    await api.post(f"/v1/exports/{blocker['id']}/cancel", headers=auth())
    accepted = await api.post("/v1/exports", json=ORDERS, headers=key)

    assert refused.status == 429
    assert accepted.status == 202, await accepted.text()
    assert "Idempotent-Replayed" not in accepted.headers


async def test_one_tenants_backlog_does_not_starve_another(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")
    busy = {"export": "numbers", "params": {"rows": 30_000}}
    for _ in range(200):
        await create(api, busy, tenant="globex", sub="g1")
    single = await create(api, ORDERS)
    await make_client(role="worker", workers=2, tenant_max_running=1)

    done = await wait_until(api, single["id"])

    assert done["status"] == "succeeded"
    # globex never held more than its one build slot, so acme's export ran beside it.
    globex_queued = await conn.fetchval(
        "SELECT count(*) FROM exports WHERE tenant = 'globex' AND status = 'queued'"
    )
    assert globex_queued >= 150


async def test_tenant_cap_bounds_running_builds_in_one_claim(
    dsn: str, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    pool = await create_pool(dsn, schema=SCHEMA, min_size=1, max_size=2)
    try:
        await queue_orders(pool, ["acme", "acme", "acme", "globex"])

        claimed = await jobs.claim_jobs(
            pool, "me", 10, timedelta(seconds=30), tenant_cap=2, kinds=KINDS
        )
        again = await jobs.claim_jobs(
            pool, "me", 10, timedelta(seconds=30), tenant_cap=2, kinds=KINDS
        )
    finally:
        await pool.close()

    assert sorted(j.tenant for j in claimed) == ["acme", "acme", "globex"]
    assert again == []


async def test_a_claimed_job_carries_its_export_as_the_claim_left_it(
    dsn: str, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    # The job's and the export's columns share names (id, tenant, attempts, created_at): each
    # side must read its own. A build's export shows the claim's own change; a mail's export
    # is as it was.
    pool = await create_pool(dsn, schema=SCHEMA, min_size=1, max_size=2)
    try:
        await queue_orders(pool, ["acme", "globex"])
        await conn.execute(
            """
            UPDATE exports SET params = '{"k": [1]}',
                               created_at = created_at - interval '1 hour';
            UPDATE jobs SET kind = 'notify', attempts = 4 WHERE tenant = 'globex';
            UPDATE exports SET status = 'succeeded', attempts = 7 WHERE tenant = 'globex'
            """
        )
        claimed = await jobs.claim_jobs(pool, "me", 10, LEASE, tenant_cap=10, kinds=KINDS)
        jobs_now = {r["id"]: r for r in await pool.fetch("SELECT * FROM jobs")}
        exports_now = {r["id"]: r for r in await pool.fetch("SELECT * FROM exports")}
    finally:
        await pool.close()

    assert sorted(job.kind for job in claimed) == ["build", "notify"]
    for job in claimed:
        row, export = jobs_now[job.id], exports_now[job.export_id]
        assert (job.attempts, job.lease_token) == (row["attempts"], row["lease_token"])
        assert job.created_at == row["created_at"] != export["created_at"]
        assert (job.export.id, job.export.tenant) == (row["export_id"], row["tenant"])
        assert job.export.params == {"k": [1]}
        # Every column as the table holds it after the claim: the version is what the
        # cancel watch already knows.
        assert job.export == ExportRow.from_record(export)
    build = next(job for job in claimed if job.kind == "build")
    notify = next(job for job in claimed if job.kind == "notify")
    assert (build.attempts, build.export.attempts, build.export.status) == (1, 1, "running")
    assert (notify.attempts, notify.export.attempts, notify.export.status) == (5, 7, "succeeded")


async def test_a_cancel_watch_wakes_for_changes_past_the_claim_only(
    dsn: str, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    pool = await create_pool(dsn, schema=SCHEMA, min_size=1, max_size=3)
    try:
        await queue_orders(pool, ["acme", "globex", "initech"])
        job, other, late = await jobs.claim_jobs(pool, "me", 3, LEASE, tenant_cap=10, kinds=KINDS)
    finally:
        await pool.close()
    listener = Listener(dsn=dsn, schema=SCHEMA, probe_interval=timedelta(seconds=5))
    listening = asyncio.create_task(listener.run())

    async def notify(export_id: uuid.UUID, version: int) -> None:
        await conn.execute(
            "SELECT pg_notify($1, $2)", f"{SCHEMA}_exports", f"{export_id}:{version}"
        )

    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        # A cancel committed right after the claim, heard before its build's watch began.
        await notify(late.export_id, late.export.version + 1)
        with listener.watch(other.export_id) as sentinel:
            await notify(other.export_id, other.export.version)
            await asyncio.wait_for(sentinel.wait(), 10)
        with listener.watch(late.export_id, known=late.export.version) as changed_before:
            assert changed_before.is_set()

        with (
            listener.watch(job.export_id, known=job.export.version) as changed,
            listener.watch(other.export_id) as sentinel,
        ):
            # The claim's own change, heard late; then another export's, which arrives after it.
            await notify(job.export_id, job.export.version)
            await notify(other.export_id, other.export.version)
            await asyncio.wait_for(sentinel.wait(), 10)
            assert not changed.is_set()

            await conn.execute(
                "UPDATE exports SET status = 'canceled', version = version + 1 WHERE id = $1",
                job.export_id,
            )
            await asyncio.wait_for(changed.wait(), 10)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening


async def test_transient_failures_retry_then_fail_after_max_attempts(make_client: Any) -> None:
    # Each attempt's source connection is cut under it, as in an outage that never ends.
    app = await make_client(max_attempts=3, retry_base=timedelta(milliseconds=50))
    created = await create(app, {"export": "drops_connection"})

    done = await wait_until(app, created["id"])

    assert done["status"] == "failed"
    assert done["error"]["code"] == "source_unavailable"
    assert (
        done["error"]["message"]
        == "The source database is unavailable; the export will be retried."
    )
    assert done["attempts"] == 3


async def failing_checks(client: TestClient[Any, Any]) -> set[str]:
    response = await client.get("/readyz")
    if response.status == 200:
        return set()
    body = await response.json(content_type="application/problem+json")
    return {name for name, state in body["checks"].items() if state != "ok"}


@pytest.mark.parametrize(
    ("check", "settings_of"),
    [
        # Wrong S3 credentials: before, every claimed build failed (retried, then for good).
        ("storage", lambda s: {"s3_secret_access_key": "wrong-secret"}),
        # A source that refuses the login: before, every claimed export failed permanently.
        ("source", lambda s: {"source_database_url": s.database_url.replace("//", "//nobody@")}),
    ],
)
async def test_a_replica_whose_build_dependency_fails_is_not_ready_and_claims_no_build(
    make_client: Any,
    settings: Settings,
    conn: asyncpg.Connection[asyncpg.Record],
    check: str,
    settings_of: Callable[[Settings], dict[str, Any]],
) -> None:
    app = await make_client(**settings_of(settings))
    created = await create(app, {"export": "numbers", "params": {"rows": 10}})

    async def only_it_fails() -> bool:
        return await failing_checks(app) == {check}

    await eventually(only_it_fails, within=10)
    await asyncio.sleep(1)  # sweeps come and go: the build still must not be claimed
    row = await conn.fetchrow("SELECT status, attempts FROM exports WHERE id = $1", created["id"])
    assert row is not None and (row["status"], row["attempts"]) == ("queued", 0)


async def test_without_a_mail_relay_builds_run_and_mails_wait(
    make_client: Any, mail_sink: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    app = await make_client(smtp_port=free_port())  # nothing listens there
    created = await create(app, {"export": "numbers", "params": {"rows": 10}})

    done = await wait_until(app, created["id"])

    assert done["status"] == "succeeded"

    async def only_mail_fails() -> bool:
        return await failing_checks(app) == {"mail"}

    await eventually(only_mail_fails, within=10)
    notify = "SELECT attempts FROM jobs WHERE export_id = $1 AND kind = 'notify'"
    assert await conn.fetchval(notify, created["id"]) == 0  # waiting for the relay


# $1 exports over ten tenants, nothing else: what the claim tests put jobs on.
SEED_EXPORTS = """
INSERT INTO exports (id, tenant, owner_sub, export_name, format, file_name)
SELECT gen_random_uuid(), 't' || (g % 10), 'u', 'orders', 'csv', 'x.csv'
FROM generate_series(1, $1::int) AS g"""


async def test_claim_query_uses_its_index_under_a_large_ineligible_backlog(
    conn: asyncpg.Connection[asyncpg.Record],
) -> None:
    await conn.execute(SEED_EXPORTS, 100_000)
    await conn.execute(
        """
        INSERT INTO jobs (kind, export_id, tenant, max_attempts, ready_at)
        SELECT 'build', id, tenant, 5, now() + interval '1 hour' FROM exports;
        ANALYZE jobs;
        """
    )

    # The plan a connection keeps for the statement: PostgreSQL's generic one.
    await conn.execute(
        f"PREPARE claim (text, interval, integer, text[]) AS {jobs.claim_statement(4)};"
        "SET plan_cache_mode = force_generic_plan"
    )
    kinds = "{" + ",".join(KINDS) + "}"
    plan = await conn.fetchval(
        f"EXPLAIN (FORMAT JSON) EXECUTE claim ('owner', '30 seconds', 2, '{kinds}')"
    )

    nodes = list(plan_nodes(json.loads(plan)[0]["Plan"]))
    jobs_scans = [n for n in nodes if n.get("Relation Name") == "jobs"]
    assert jobs_scans, "the plan reads jobs"
    assert all(n["Node Type"] != "Seq Scan" for n in jobs_scans), jobs_scans
    assert any(n.get("Index Name") == "jobs_claim_idx" for n in jobs_scans)


async def test_a_connection_keeps_one_plan_for_the_claim(
    dsn: str, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    # Planning the claim cost PostgreSQL as much as running it, every time, while its LIMIT
    # was a parameter: over a ready backlog the generic plan was a scan, so each claim got
    # a custom one (custom_plans 10, generic_plans 0 here).
    await conn.execute(SEED_EXPORTS, 20_000)
    await conn.execute(
        """
        INSERT INTO jobs (kind, export_id, tenant, max_attempts)
        SELECT 'build', id, tenant, 5 FROM exports;
        ANALYZE jobs;
        """
    )
    claimer = await connect(dsn)
    try:
        for _ in range(10):
            claimed = await jobs.claim_jobs(claimer, "me", 4, LEASE, tenant_cap=100, kinds=KINDS)
            assert len(claimed) == 4
        plans = await claimer.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            jobs.claim_statement(4),
        )
    finally:
        await claimer.close()

    assert plans is not None
    assert plans["generic_plans"] >= 5, dict(plans)


async def test_claim_does_not_walk_the_expiries_waiting_out_their_retention(
    conn: asyncpg.Connection[asyncpg.Record],
) -> None:
    # A week of succeeded exports: each has an expire job due at its file's expiry, at the far
    # end of the claim index. A few builds run, a few wait.
    await conn.execute(SEED_EXPORTS, 20_000)
    await conn.execute(
        """
        INSERT INTO jobs (kind, export_id, tenant, max_attempts, ready_at)
        SELECT 'expire', id, tenant, 5, now() + (random() * interval '7 days') FROM exports;
        INSERT INTO jobs (kind, export_id, tenant, max_attempts, ready_at, lease_owner,
                          lease_token)
        SELECT 'build', id, tenant, 5, now() + interval '30 seconds', 'r', gen_random_uuid()
        FROM exports LIMIT 4;
        INSERT INTO jobs (kind, export_id, tenant, max_attempts)
        SELECT 'build', id, tenant, 5 FROM exports OFFSET 4 LIMIT 20;
        ANALYZE jobs;
        """
    )

    plan = await conn.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + jobs.claim_statement(16),
        "owner",
        timedelta(seconds=30),
        2,
        KINDS,
    )

    nodes = list(plan_nodes(json.loads(plan)[0]["Plan"]))
    walked = {
        n.get("Index Name") or n["Node Type"]: n.get("Rows Removed by Filter", 0)
        for n in nodes
        if n.get("Relation Name") == "jobs"
    }
    assert max(walked.values()) < 100, walked


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)
