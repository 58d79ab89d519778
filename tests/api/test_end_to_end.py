"""One export all the way: POST → build → S3 → mail → download, on the real servers."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import uuid
from datetime import date
from html import unescape as html_unescape
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exportd.config import Settings
from exportd.dev.servers import EmbeddedS3
from tests.support.client import (
    create,
    download,
    download_export,
    eventually,
    follow_link,
    redirect,
    wait_until,
)
from tests.support.database import work_left
from tests.support.mail import Mailbox, mail_id
from tests.support.tokens import auth

ORDERS_SQL = """
SELECT id, customer, status, total, currency, paid, created_at, note FROM demo.orders
WHERE tenant = $1 AND created_at >= $2::date AND status = $3 ORDER BY id"""


async def test_export_end_to_end(
    client: TestClient[Any, Any], conn: asyncpg.Connection[asyncpg.Record], mailbox: Mailbox
) -> None:
    created = await create(
        client,
        {
            "export": "orders",
            "params": {"since": "2025-03-01", "status": "refunded"},
            "file_name": "refunds.csv",
        },
    )
    assert created["status"] == "queued"

    done = await wait_until(client, created["id"])

    assert done["status"] == "succeeded", done
    result = done["result"]
    body, headers = await download_export(client, done)
    assert "refunds.csv" in headers["Content-Disposition"]
    assert headers["Content-Type"].startswith("text/csv")
    expected = io.BytesIO()
    await conn.copy_from_query(
        ORDERS_SQL, "acme", date(2025, 3, 1), "refunded", output=expected, format="csv", header=True
    )
    assert body == expected.getvalue()
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == [
        "id",
        "customer",
        "status",
        "total",
        "currency",
        "paid",
        "created_at",
        "note",
    ]
    assert result["rows"] == len(rows) - 1 > 1000
    assert result["size"] == len(body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["file_name"] == "refunds.csv"

    mails = await mailbox.wait_for(1)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["To"] == "user-1@acme.example"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "refunds.csv" in text and "refunds.csv" in html
    mailed_url = re.search(r"http://exportd\.test/d/\S+", text).group(0)  # type: ignore[union-attr]
    assert f'href="{mailed_url}"' in html
    assert "X-Amz" not in text and "X-Amz" not in html  # no presigned URL in a mail
    mailed_body, _ = await follow_link(client, mailed_url)
    assert mailed_body == body

    async def drained() -> bool:  # the notify job commits just after its mail is accepted
        return await work_left(conn) == 0

    await eventually(drained, within=20)
    final = await wait_until(client, created["id"])
    assert final["notified_at"] is not None


async def test_large_file_goes_up_in_several_parts(
    client: TestClient[Any, Any], s3: EmbeddedS3, mailbox: Mailbox
) -> None:
    # 100,000 rows of ~150 bytes: ~15 MB, more than one 8 MiB part.
    created = await create(client, {"export": "numbers", "params": {"rows": 100_000}})

    done = await wait_until(client, created["id"])

    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["size"] > 8 * 1024 * 1024
    location = await redirect(client, result["download_url"], auth())
    key = location.split(f"/{s3.bucket}/", 1)[1].split("?", 1)[0]
    head = s3.client().head_object(Bucket=s3.bucket, Key=key, PartNumber=1)
    assert head["PartsCount"] >= 2
    body, _ = await download(location)
    assert hashlib.sha256(body).hexdigest() == result["sha256"]
    assert body.count(b"\n") == 100_001


async def test_broken_query_fails_at_once_with_a_code(client: TestClient[Any, Any]) -> None:
    created = await create(client, {"export": "broken"})

    done = await wait_until(client, created["id"])

    assert done["status"] == "failed"
    assert done["error"]["code"] == "query_failed"
    assert done["error"]["message"] == "The export's query failed in the database."
    assert re.fullmatch("[0-9a-f]{16}", done["error"]["id"])
    assert done["attempts"] == 1


async def test_long_poll_returns_when_the_export_changes(
    make_client: Any, conn: asyncpg.Connection[asyncpg.Record]
) -> None:
    api = await make_client(role="api")  # no workers: the export stays queued until we change it
    created = await create(api, {"export": "orders", "params": {"since": "2025-01-01"}})
    # A queued export's ETag carries its place in the queue (first, with no workers).
    etag = (await api.get(f"/v1/exports/{created['id']}", headers=auth())).headers["ETag"]
    assert etag == f'"{created["version"]}.q0"'

    async def change_later() -> None:
        await asyncio.sleep(0.3)
        await conn.execute(
            "UPDATE exports SET progress_rows = 7, version = version + 1 WHERE id = $1",
            uuid.UUID(created["id"]),
        )

    changer = asyncio.create_task(change_later())
    response = await api.get(
        f"/v1/exports/{created['id']}?wait=25", headers=auth() | {"If-None-Match": etag}
    )
    await changer

    assert response.status == 200
    body = await response.json()
    assert body["progress"]["rows"] == 7
    assert response.headers["ETag"] == f'"{created["version"] + 1}.q0"'


async def test_long_poll_answers_304_when_nothing_changes(make_client: Any) -> None:
    api = await make_client(role="api")
    created = await create(api, {"export": "orders", "params": {"since": "2025-01-01"}})
    etag = f'"{created["version"]}.q0"'

    response = await api.get(
        f"/v1/exports/{created['id']}",
        headers=auth() | {"If-None-Match": etag, "Prefer": "wait=1"},
    )

    assert response.status == 304
    assert response.headers["ETag"] == etag
    assert response.headers["Preference-Applied"] == "wait=1"


async def test_metrics_count_what_happened(client: TestClient[Any, Any], mailbox: Mailbox) -> None:
    created = await create(client, {"export": "numbers", "params": {"rows": 10}})
    await wait_until(client, created["id"])
    await mailbox.wait_for(1)

    async def scrape() -> dict[str, float]:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        return {
            sample.name + str(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(await response.text())
            for sample in family.samples
        }

    def series(name: str, **labels: str) -> str:
        return name + str(sorted(labels.items()))

    # The notify job finishes just after the mail arrives: scrape until it shows.
    async def notified() -> bool:
        finished = series("exportd_jobs_finished_total", kind="notify", outcome="finished")
        return (await scrape()).get(finished) == 1

    await eventually(notified, within=10)
    metrics = await scrape()

    assert metrics[series("exportd_exports_created_total")] == 1
    assert metrics[series("exportd_jobs_claimed_total", kind="build")] == 1
    assert metrics[series("exportd_jobs_finished_total", kind="build", outcome="finished")] == 1
    assert (
        metrics[
            series("exportd_http_requests_total", method="POST", route="/v1/exports", status="202")
        ]
        == 1
    )
    assert metrics[series("exportd_build_duration_seconds_count", format="csv")] == 1
    assert metrics[series("exportd_export_rows_sum")] == 10
    assert metrics[series("exportd_mail_send_duration_seconds_count")] == 1
    assert metrics[series("exportd_job_queue_wait_seconds_count", kind="build")] == 1
    # Gauges are present at 0: every kind and state of the (now empty) queue.
    for kind in ("build", "notify"):
        for state in ("ready", "delayed", "running"):
            assert metrics[series("exportd_jobs", kind=kind, state=state)] == 0
    assert metrics[series("exportd_dependency_up", check="storage")] == 1
    assert not [key for key in metrics if "lease_lost" in key]  # its own completion is not one


HOSTILE_NAMES = [
    "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?= report",  # CR/LF once decoded
    "=?utf-8?b?eA0KUmVwbHktVG86IGV2aWxAZXZpbC5leGFtcGxl?=",  # base64: x\r\nReply-To: ...
    "line\u2028separated\u2029report",  # what str.splitlines() breaks on
    "bidi \u202eevil\u202c \x85 done",
]
MAIL_HEADERS = {
    "From",
    "To",
    "Subject",
    "Message-ID",
    "Date",
    "MIME-Version",
    "Content-Type",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
}


async def test_hostile_file_names_never_reach_a_mail_header_unencoded(
    client: TestClient[Any, Any], mailbox: Mailbox
) -> None:
    created = [
        await create(client, {"export": "numbers", "params": {"rows": 1}, "file_name": name})
        for name in HOSTILE_NAMES
    ]

    mails = await mailbox.wait_for(len(HOSTILE_NAMES))

    by_id = {m["Message-ID"]: m for m in mails}
    for export in created:
        mail = by_id[f"<export.{export['id']}.ready@localhost>"]
        assert set(mail.keys()) == MAIL_HEADERS, mail.keys()
        assert mail["To"] == "user-1@acme.example"
        # The subject holds the stored name as plain text: nothing in it was decoded again.
        assert str(mail["Subject"]) == f"Your export is ready: {export['file_name']}"
        assert "\r" not in str(mail["Subject"]) and "\n" not in str(mail["Subject"])
        done = await wait_until(client, export["id"])
        assert done["status"] == "succeeded" and done["error"] is None, done


async def test_a_failed_export_mails_its_owner_a_reason_without_internals(
    client: TestClient[Any, Any],
    mailbox: Mailbox,
    settings: Settings,
    conn: asyncpg.Connection[asyncpg.Record],
) -> None:
    created = await create(client, {"export": "broken"})
    done = await wait_until(client, created["id"])
    assert done["status"] == "failed"

    (mail,) = await mailbox.wait_for(1)

    assert mail["Message-ID"] == mail_id(created["id"], "failed")
    assert mail["Auto-Submitted"] == "auto-generated"
    assert "could not be finished" in str(mail["Subject"])
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html_unescape(html)):
        assert done["error"]["message"] in part
        assert created["id"] in part and done["error"]["id"] in part
    # What the log has under that id (the database's message, the SQL, where it runs) is not.
    database = urlsplit(settings.database_url).path.lstrip("/")
    internals = ["division by zero", "SELECT", "postgres", database]
    assert [word for word in internals if word in text + html] == []

    async def mailed() -> bool:  # the notify job is done: no second notice is coming
        return await work_left(conn) == 0

    await eventually(mailed, within=20)
    assert len(mailbox.messages()) == 1
