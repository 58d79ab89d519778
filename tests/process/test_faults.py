"""Faults that really happen: processes killed and frozen, servers stopped, connections cut."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import aiohttp
import asyncpg

from exportd.dev.servers import EmbeddedPostgres, EmbeddedS3, MailSink
from exportd.model import TERMINAL
from tests.support.client import eventually
from tests.support.database import connect, queue_drained
from tests.support.mail import Mailbox, mail_id
from tests.support.processes import ExportdProcess
from tests.support.s3 import objects_under
from tests.support.tokens import auth

SLOW = {"export": "slow", "params": {"rows": 60_000, "pause_ms": 100}}
SMALL = {"export": "numbers", "params": {"rows": 1000}}


async def post(replica: ExportdProcess, body: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{replica.url}/v1/exports", json=body, headers=auth()) as response,
    ):
        assert response.status == 202, await response.text()
        export_id: str = (await response.json())["id"]
        return export_id


async def owner_pid(
    conn: asyncpg.Connection[asyncpg.Record], export_id: str, among: set[int] | None = None
) -> int:
    """Wait until the export's build is leased (by one of `among`, if given); the owner's pid.

    The owner is `host:pid:nonce`.
    """
    async with asyncio.timeout(30):
        while True:
            owner = await conn.fetchval(
                "SELECT lease_owner FROM jobs WHERE export_id = $1 AND kind = 'build'"
                " AND lease_owner IS NOT NULL",
                uuid.UUID(export_id),
            )
            if owner and (among is None or int(owner.split(":")[1]) in among):
                return int(owner.split(":")[1])
            await asyncio.sleep(0.05)


async def streamed(conn: asyncpg.Connection[asyncpg.Record], export_id: str, size: int) -> None:
    """Wait until the build's progress shows more than `size` bytes."""

    async def past() -> bool:
        sql = "SELECT progress_bytes FROM exports WHERE id = $1"
        return bool(await conn.fetchval(sql, uuid.UUID(export_id)) > size)

    await eventually(past)


async def count(conn: asyncpg.Connection[asyncpg.Record], where: str, at_least: int) -> bool:
    return bool(await conn.fetchval(f"SELECT count(*) FROM exports WHERE {where}") >= at_least)


async def jobs_with(conn: asyncpg.Connection[asyncpg.Record], where: str) -> bool:
    return bool(await conn.fetchval(f"SELECT count(*) FROM jobs WHERE {where}") > 0)


async def listener_pids(conn: asyncpg.Connection[asyncpg.Record]) -> list[int]:
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = 'exportd-listener' AND datname = current_database()"
    )
    return [r["pid"] for r in rows]


async def wait_status(
    conn: asyncpg.Connection[asyncpg.Record], export_ids: list[str], *statuses: str
) -> dict[str, str]:
    """Poll the exports table (bounded) until every export is in one of `statuses`."""
    ids = [uuid.UUID(i) for i in export_ids]
    async with asyncio.timeout(120):
        while True:
            rows = await conn.fetch("SELECT id, status FROM exports WHERE id = ANY($1)", ids)
            found = {str(r["id"]): r["status"] for r in rows}
            if len(found) == len(ids) and all(s in statuses for s in found.values()):
                return found
            await asyncio.sleep(0.1)


async def building_on_one_of_two(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> tuple[ExportdProcess, ExportdProcess, str]:
    """Two replicas and a slow export mid-build, a multipart upload open: (owner, other, id)."""
    first, second = await replicas(2)
    export_id = await post(first, SLOW)
    pid = await owner_pid(conn, export_id)
    await streamed(conn, export_id, 9 * 1024 * 1024)
    return (first, second, export_id) if pid == first.pid else (second, first, export_id)


async def test_kill_9_mid_build_another_replica_finishes_it(
    replicas: Any,
    conn: asyncpg.Connection[asyncpg.Record],
    mailbox: Mailbox,
    s3: EmbeddedS3,
    settings: Any,
) -> None:
    victim, survivor, export_id = await building_on_one_of_two(replicas, conn)

    await victim.kill()

    final = await wait_status(conn, [export_id], *TERMINAL)
    row = await conn.fetchrow(
        "SELECT attempts, result_rows, error_code, error_message FROM exports"
    )
    assert final[export_id] == "succeeded", (dict(row or {}), survivor.log()[-3000:])
    assert row is not None
    assert row["attempts"] == 2  # the killed claim counted
    assert row["result_rows"] == 60_000
    mails = await mailbox.wait_for(1)
    assert len(mails) == 1
    await queue_drained(conn)  # the notify job commits just after its mail is accepted
    assert survivor.running
    # The dead attempt's open upload was cleaned up by the one that succeeded.
    objects, uploads = objects_under(s3, settings.s3_prefix)
    assert len(objects) == 1
    assert uploads == []


async def test_frozen_worker_past_its_lease_writes_nothing_after_waking(
    replicas: Any,
    conn: asyncpg.Connection[asyncpg.Record],
    mailbox: Mailbox,
    s3: EmbeddedS3,
    settings: Any,
) -> None:
    frozen, _, export_id = await building_on_one_of_two(replicas, conn)
    frozen.signal(signal.SIGSTOP)
    try:
        await wait_status(conn, [export_id], "succeeded")
        await mailbox.wait_for(1)
        await queue_drained(conn)  # notified_at recorded: the export's final state
        before = await conn.fetchrow("SELECT * FROM exports")
    finally:
        frozen.signal(signal.SIGCONT)

    # The woken worker learns its lease is gone (heartbeat or fenced write) and stops.
    await eventually(lambda: "job.lease_lost" in frozen.log(), within=30)
    objects, uploads = objects_under(s3, settings.s3_prefix)
    assert uploads == []  # its upload was aborted, not completed
    after = await conn.fetchrow("SELECT * FROM exports")
    assert before is not None and after == before
    assert objects == [before["object_key"]]
    assert len(mailbox.messages()) == 1


async def test_postgres_restart_during_a_run_loses_nothing(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record], pg: EmbeddedPostgres, dsn: str
) -> None:
    (replica,) = await replicas(1)
    ids = [await post(replica, SMALL) for _ in range(5)]
    ids.append(await post(replica, SLOW))
    await conn.close()

    pg.down()
    await asyncio.sleep(2)  # the outage lasts a while: the API answers 503 meanwhile
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replica.url}/v1/exports/{ids[0]}", headers=auth()) as response,
    ):
        assert response.status == 503
        assert response.content_type == "application/problem+json"
    pg.up()

    fresh = await connect(dsn)
    try:
        final = await wait_status(fresh, ids, *TERMINAL)
        assert set(final.values()) == {"succeeded"}
        async with aiohttp.ClientSession() as session:
            for export_id in ids:
                async with session.get(
                    f"{replica.url}/v1/exports/{export_id}", headers=auth()
                ) as response:
                    assert (await response.json())["status"] == "succeeded"
    finally:
        await fresh.close()


async def not_ready_for(replica: ExportdProcess, check: str) -> bool:
    async with aiohttp.ClientSession() as session, session.get(f"{replica.url}/readyz") as r:
        if r.status != 503:
            return False
        body = await r.json(content_type="application/problem+json")
        return bool(body["checks"][check] != "ok")


async def test_an_s3_outage_mid_build_is_waited_out(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record], s3: EmbeddedS3, mailbox: Mailbox
) -> None:
    (replica,) = await replicas(1, EXPORTD_MAX_ATTEMPTS="20")
    building = await post(replica, SLOW)
    await streamed(conn, building, 9 * 1024 * 1024)  # parts are going up
    s3.down()
    try:
        # The running build's upload fails: retried later, not failed.
        await eventually(lambda: count(conn, "error_code = 'storage_unavailable'", 1), 30)
        await eventually(lambda: not_ready_for(replica, "storage"), 30)
        waiting = [await post(replica, SMALL) for _ in range(2)]
        # New builds wait for S3 unclaimed: no attempt spent against an outage.
        unclaimed = "SELECT count(*) FROM exports WHERE id = ANY($1::uuid[]) AND attempts = 0"
        assert await conn.fetchval(unclaimed, waiting) == 2
    finally:
        s3.up()

    final = await wait_status(conn, [building, *waiting], *TERMINAL)
    assert set(final.values()) == {"succeeded"}
    mails = await mailbox.wait_for(3)
    assert len(mails) == 3


async def test_smtp_outage_delays_mail_without_rebuilding(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record], mail_sink: MailSink, mailbox: Mailbox
) -> None:
    (replica,) = await replicas(1, EXPORTD_MAX_ATTEMPTS="20")
    mail_sink.down()
    try:
        export_id = await post(replica, SMALL)
        await wait_status(conn, [export_id], "succeeded")
        # The replica sees the relay gone and lets the mail wait (it does not fail it).
        await eventually(lambda: not_ready_for(replica, "mail"), 30)
        assert await jobs_with(conn, "kind = 'notify'")
        built = await conn.fetchrow("SELECT object_key, attempts, notified_at FROM exports")
        assert built is not None and built["notified_at"] is None
    finally:
        mail_sink.up()

    mails = await mailbox.wait_for(1)
    await queue_drained(conn)
    after = await conn.fetchrow("SELECT object_key, attempts, notified_at FROM exports")
    assert after is not None
    assert after["object_key"] == built["object_key"]  # the file was built once
    assert after["attempts"] == 1
    assert after["notified_at"] is not None
    assert len(mails) == 1


async def test_killed_listen_connection_comes_back_and_work_still_starts(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    # A long sweep: work must start through a fresh LISTEN connection, not the sweep.
    (replica,) = await replicas(1, EXPORTD_SWEEP_INTERVAL_S="60")
    (old_pid,) = await listener_pids(conn)

    await conn.execute("SELECT pg_terminate_backend($1)", old_pid)

    async def replaced() -> bool:
        pids = await listener_pids(conn)
        return len(pids) == 1 and pids[0] != old_pid

    await eventually(replaced, within=30)
    assert "listener.lost" in replica.log()
    export_id = await post(replica, SMALL)
    final = await wait_status(conn, [export_id], "succeeded", "failed")
    assert final[export_id] == "succeeded"


async def test_sigterm_during_load_loses_and_duplicates_nothing(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record], mailbox: Mailbox
) -> None:
    first, second = await replicas(2, EXPORTD_WORKERS="2")
    ids = [await post(first, SLOW) for _ in range(2)]
    ids += [await post(second, SMALL) for _ in range(10)]
    await owner_pid(conn, ids[0])

    first.signal(signal.SIGTERM)
    assert await first.wait_exit() == 0

    final = await wait_status(conn, ids, *TERMINAL)
    assert set(final.values()) == {"succeeded"}
    mails = await mailbox.wait_for(len(ids))
    assert sorted(m["Message-ID"] for m in mails) == sorted(mail_id(i) for i in ids)
    await queue_drained(conn)  # the last notify commits just after its mail is accepted


async def test_export_whose_replica_dies_every_attempt_ends_failed(
    replicas: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    env = {"EXPORTD_MAX_ATTEMPTS": "2"}
    (replica,) = await replicas(1, **env)
    export_id = await post(replica, SLOW)
    for _ in range(2):
        await owner_pid(conn, export_id, among={replica.pid})
        await replica.kill()
        (replica,) = await replicas(1, **env)

    final = await wait_status(conn, [export_id], *TERMINAL)

    assert final[export_id] == "failed"
    row = await conn.fetchrow("SELECT error_code, attempts FROM exports")
    assert row is not None
    assert row["error_code"] == "attempts_exhausted"
    await queue_drained(conn)  # its failure notice goes out, and nothing else is left


async def test_sigterm_answers_long_polls_instead_of_cutting_them(replicas: Any) -> None:
    (replica,) = await replicas(1, role="api", EXPORTD_LOG_LEVEL="debug")
    export_id = await post(replica, SMALL)  # stays queued: no workers in an api replica

    async with aiohttp.ClientSession() as session:
        url = f"{replica.url}/v1/exports/{export_id}"
        async with session.get(url, headers=auth()) as now:
            etag = now.headers["ETag"]  # a queued export's carries its place: first, "1.q0"
        poll = asyncio.create_task(
            session.get(f"{url}?wait=50", headers=auth() | {"If-None-Match": etag})
        )
        await eventually(lambda: "export.waiting" in replica.log(), within=10)
        replica.signal(signal.SIGTERM)
        response = await poll

        assert response.status == 304
        assert response.headers["ETag"] == etag
    assert await replica.wait_exit() == 0
