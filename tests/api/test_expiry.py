"""Retention on the real servers: a succeeded export's file expires (its result stays on
record), a canceled export's leftovers are tidied, and history purges old finished rows."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg

from exportd.config import Settings
from exportd.dev.servers import EmbeddedS3
from exportd.storage.keys import export_prefix
from tests.support.client import Export, create, eventually, wait_until
from tests.support.contract import problem
from tests.support.mail import Mailbox
from tests.support.s3 import nothing_under, objects_under
from tests.support.tokens import auth

NUMBERS = {"export": "numbers", "params": {"rows": 10}}
ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}
LINK = re.compile(r"http://exportd\.test/d/[A-Za-z0-9_-]{43}")
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


def prefix_of(settings: Settings, export: Export) -> str:
    return export_prefix(settings.s3_prefix, "acme", uuid.UUID(export["id"]))


async def jobs_drained(conn: Conn) -> None:
    """Wait until the jobs table is empty: every follow-up, expiries included, has run."""

    async def empty() -> bool:
        left: int = await conn.fetchval("SELECT count(*) FROM jobs")
        return left == 0

    await eventually(empty, within=30)


async def test_expired_export_loses_its_file_but_keeps_its_result(
    make_client: Any, settings: Settings, s3: EmbeddedS3, mailbox: Mailbox, conn: Conn
) -> None:
    app = await make_client(retention=timedelta(seconds=3))
    done = await wait_until(app, (await create(app, NUMBERS))["id"])
    assert done["status"] == "succeeded", done
    [mail] = await mailbox.wait_for(1)
    text = mail.get_body(("plain",))
    assert text is not None
    link = LINK.search(text.get_content())
    assert link is not None
    keys, _ = objects_under(s3, prefix_of(settings, done))
    assert len(keys) == 1

    expired = await wait_until(app, done["id"], ("expired",), within=30)

    assert nothing_under(s3, prefix_of(settings, done))
    assert expired["result"] == done["result"] | {"download_url": None}
    assert expired["finished_at"] == done["finished_at"]
    assert expired["expires_at"] == done["expires_at"]
    api_route = urlsplit(done["result"]["download_url"]).path
    await problem(
        await app.get(api_route, headers=auth(), allow_redirects=False), 410, "export_expired"
    )
    await problem(
        await app.get(urlsplit(link[0]).path, allow_redirects=False), 410, "export_expired"
    )
    await jobs_drained(conn)


async def test_canceled_exports_leftovers_are_tidied_and_it_stays_canceled(
    make_client: Any, settings: Settings, s3: EmbeddedS3, conn: Conn
) -> None:
    # A small lease: the tidy-up waits two of them, past any attempt still writing.
    lease = timedelta(seconds=2)
    api = await make_client(role="api", lease=lease)
    created = await create(api, ORDERS)
    response = await api.post(f"/v1/exports/{created['id']}/cancel", headers=auth())
    assert response.status == 200
    canceled = await response.json()
    assert canceled["status"] == "canceled"
    # What an attempt that died mid-way would leave: a whole file and an open upload.
    prefix = prefix_of(settings, created)
    bucket = s3.client()
    bucket.put_object(Bucket=s3.bucket, Key=f"{prefix}{uuid.uuid4()}/x.csv", Body=b"id\n1\n")
    bucket.create_multipart_upload(Bucket=s3.bucket, Key=f"{prefix}{uuid.uuid4()}/x.csv")
    assert objects_under(s3, prefix) != ([], [])

    await make_client(role="worker", lease=lease)

    await eventually(lambda: nothing_under(s3, prefix), within=30)
    await jobs_drained(conn)
    final = await wait_until(api, created["id"])
    assert final["status"] == "canceled"
    assert final["result"] is None
    assert final["finished_at"] == canceled["finished_at"]


async def test_history_purges_expired_exports_with_their_downloads_but_not_queued_ones(
    make_client: Any, conn: Conn
) -> None:
    timing = {
        "retention": timedelta(seconds=1),
        "history": timedelta(seconds=2),
        "sweep_interval": timedelta(milliseconds=200),
    }
    api = await make_client(role="api", **timing)
    globex = {"tenant": "globex", "sub": "g1"}
    waiting = await create(api, ORDERS, **globex)
    waiting_id = uuid.UUID(waiting["id"])
    # An old export whose build waits out a backoff: no replica may claim it during the test.
    await conn.execute(
        "UPDATE jobs SET ready_at = now() + interval '1 hour' WHERE export_id = $1", waiting_id
    )
    await conn.execute(
        "UPDATE exports SET created_at = now() - interval '1 hour' WHERE id = $1", waiting_id
    )
    app = await make_client(**timing)
    done = await wait_until(app, (await create(app, NUMBERS))["id"])
    assert done["status"] == "succeeded", done
    done_id = uuid.UUID(done["id"])
    # A download and a link on record. Written here, not through the routes: with a one-second
    # retention a real download would race the expiry.
    await conn.execute(
        "INSERT INTO downloads (export_id, route, client_ip) VALUES ($1, 'api', '127.0.0.1')",
        done_id,
    )
    await conn.execute(
        "INSERT INTO download_links (token_sha256, export_id) VALUES ($1, $2)",
        uuid.uuid4().bytes,
        done_id,
    )

    async def purged() -> bool:
        gone: bool = await conn.fetchval(
            "SELECT NOT EXISTS (SELECT FROM exports WHERE id = $1)", done_id
        )
        return gone

    await eventually(purged, within=30)

    for table in ("downloads", "download_links", "jobs"):
        left = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE export_id = $1", done_id)
        assert left == 0, table
    for path in (f"/v1/exports/{done['id']}", f"/v1/exports/{done['id']}/downloads"):
        await problem(await app.get(path, headers=auth()), 404, "export_not_found")
    still = await app.get(f"/v1/exports/{waiting['id']}", headers=auth(**globex))
    assert still.status == 200
    assert (await still.json())["status"] == "queued"
