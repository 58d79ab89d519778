"""Downloads after a build: the owner's route and the mailed link (each a 302 to a fresh
presigned URL), link revocation, the refusals, the download record and whose address it keeps."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.support.client import (
    Export,
    create,
    download,
    download_export,
    eventually,
    redirect,
    wait_until,
)
from tests.support.contract import conforms, problem
from tests.support.mail import Mailbox
from tests.support.tokens import auth

NUMBERS = {"export": "numbers", "params": {"rows": 10}}
ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}
AGENT = {"User-Agent": "exportd-tests/1.0 (downloads)"}
LINK = re.compile(r"http://exportd\.test/d/[A-Za-z0-9_-]+")
STRANGERS = [{"tenant": "globex", "sub": "g1"}, {"sub": "user-2", "email": "user-2@acme.example"}]


async def succeeded(http: TestClient[Any, Any]) -> Export:
    done = await wait_until(http, (await create(http, NUMBERS))["id"])
    assert done["status"] == "succeeded", done
    return done


async def mailed_link(mailbox: Mailbox, export: Export) -> str:
    """The link in the text part of the export's ready mail."""
    mails = await mailbox.wait_for(1)
    [mail] = [m for m in mails if m["Message-ID"] == f"<export.{export['id']}.ready@localhost>"]
    text = mail.get_body(("plain",))
    assert text is not None
    links = LINK.findall(text.get_content())
    assert len(links) == 1, links
    assert len(urlsplit(links[0]).path.removeprefix("/d/")) == 43
    return str(links[0])


async def recorded(http: TestClient[Any, Any], export: Export) -> list[dict[str, Any]]:
    """The owner's first page of the export's download record."""
    response = await http.get(f"/v1/exports/{export['id']}/downloads", headers=auth())
    assert response.status == 200, await response.text()
    page = await response.json()
    conforms("DownloadPage", page)
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_mailed_link_outlives_its_presigned_url_and_each_download_is_recorded(
    make_client: Any, mailbox: Mailbox
) -> None:
    app = await make_client(link_ttl=timedelta(seconds=1))
    done = await succeeded(app)
    link = await mailed_link(mailbox, done)

    old = await redirect(app, link, AGENT)
    first, _ = await download(old)
    assert parse_qs(urlsplit(old).query)["X-Amz-Expires"] == ["1"]  # the link_ttl

    async def old_url_refused() -> bool:
        async with aiohttp.ClientSession() as session, session.get(old) as response:
            assert response.status in (200, 403), response.status
            return response.status == 403

    await eventually(old_url_refused, within=10)
    fresh = await redirect(app, link, AGENT)
    again, _ = await download(fresh)
    owners, _ = await download_export(app, done, headers=auth() | AGENT)

    assert fresh != old
    assert again == first == owners
    items = await recorded(app, done)
    assert [i["route"] for i in items] == ["api", "link", "link"]  # newest first
    assert {i["client_ip"] for i in items} == {"127.0.0.1"}
    assert {i["user_agent"] for i in items} == {AGENT["User-Agent"]}
    response = await app.get(f"/v1/exports/{done['id']}", headers=auth())
    export = await response.json()
    conforms("Export", export)
    assert export["downloads"] == {"count": 3, "last_at": items[0]["at"]}


async def test_a_page_or_script_may_ask_for_the_presigned_url_as_json(
    client: TestClient[Any, Any],
) -> None:
    done = await succeeded(client)
    url = f"/v1/exports/{done['id']}/download"
    headers = auth() | {"Accept": "application/json"}

    response = await client.get(url, headers=headers, allow_redirects=False)

    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    link = await response.json()
    conforms("DownloadLink", link)
    body, _ = await download(link["url"])
    owners, _ = await download_export(client, done)
    assert body == owners
    assert [i["route"] for i in await recorded(client, done)] == ["api", "api"]


async def test_revoked_link_answers_410_while_the_owners_route_still_works(
    client: TestClient[Any, Any], mailbox: Mailbox
) -> None:
    done = await succeeded(client)
    link = urlsplit(await mailed_link(mailbox, done)).path
    revoke = f"/v1/exports/{done['id']}/revoke-links"

    response = await client.post(revoke, headers=auth())

    assert response.status == 200
    body = await response.json()
    conforms("Revoked", body)
    assert body == {"revoked": 1}
    await problem(await client.get(link, allow_redirects=False), 410, "link_revoked")
    page = await client.get(
        link, headers={"Accept": "text/html,application/xhtml+xml"}, allow_redirects=False
    )
    assert page.status == 410
    assert page.content_type == "text/html"
    assert "revoked" in (await page.text()).lower()
    await redirect(client, done["result"]["download_url"], auth())
    second = await client.post(revoke, headers=auth())
    assert second.status == 200
    assert await second.json() == {"revoked": 0}


@pytest.mark.parametrize("stranger", STRANGERS, ids=["other-tenant", "other-sub"])
async def test_another_caller_can_neither_revoke_nor_download_nor_list(
    client: TestClient[Any, Any], mailbox: Mailbox, stranger: dict[str, str]
) -> None:
    done = await succeeded(client)
    link = await mailed_link(mailbox, done)
    base = f"/v1/exports/{done['id']}"
    theirs = auth(**stranger)

    revoke = await client.post(f"{base}/revoke-links", headers=theirs)
    fetch = await client.get(f"{base}/download", headers=theirs, allow_redirects=False)
    listing = await client.get(f"{base}/downloads", headers=theirs)

    for response in (revoke, fetch, listing):
        await problem(response, 404, "export_not_found")
    await redirect(client, link)  # still valid: their revoke touched nothing
    assert [i["route"] for i in await recorded(client, done)] == ["link"]


async def test_download_before_the_file_exists_is_a_conflict(make_client: Any) -> None:
    api = await make_client(role="api")  # no workers: the export stays queued
    queued = await create(api, ORDERS)
    download_path = f"/v1/exports/{queued['id']}/download"

    waiting = await api.get(download_path, headers=auth(), allow_redirects=False)
    canceled = await api.post(f"/v1/exports/{queued['id']}/cancel", headers=auth())
    assert canceled.status == 200
    after_cancel = await api.get(download_path, headers=auth(), allow_redirects=False)

    await problem(waiting, 409, "export_not_finished")
    await problem(after_cancel, 409, "export_has_no_file")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("A" * 43, id="never-issued"),
        pytest.param("short", id="short"),
        pytest.param("A" * 44, id="too-long"),
        pytest.param("A" * 42 + "%2B", id="foreign-character"),
        pytest.param("A" * 1000, id="very-long"),
    ],
)
async def test_unknown_or_malformed_link_is_not_found(
    client: TestClient[Any, Any], token: str
) -> None:
    response = await client.get(f"/d/{token}", allow_redirects=False)
    page = await client.get(f"/d/{token}", headers={"Accept": "text/html"}, allow_redirects=False)

    await problem(response, 404, "link_not_found")
    assert page.status == 404
    assert page.content_type == "text/html"


@pytest.mark.parametrize(
    ("trusted", "seen"),
    [
        ("", "127.0.0.1"),  # the peer is no proxy of ours: its header is the client's claim
        ("127.0.0.1", "10.1.2.3"),  # what the one trusted proxy saw
        ("127.0.0.1,10.0.0.0/8", "203.0.113.9"),  # through two trusted hops
    ],
)
async def test_client_address_is_believed_only_from_trusted_proxies(
    make_client: Any, trusted: str, seen: str
) -> None:
    app = await make_client(trusted_proxies=trusted)
    done = await succeeded(app)
    forwarded = {"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}

    await redirect(app, done["result"]["download_url"], auth() | forwarded)

    [item] = await recorded(app, done)
    assert item["client_ip"] == seen


GARBAGE = [
    "bogus",
    "203.0.113.9, bogus",
    "999.1.2.3",
    "",
    " , ,",
    "203.0.113.9:443",
    "[2001:db8::1]",
    "unknown, " * 500,
]


async def test_garbage_forwarded_for_falls_back_to_the_peer(make_client: Any) -> None:
    app = await make_client(trusted_proxies="127.0.0.1")
    done = await succeeded(app)

    for value in GARBAGE:
        await redirect(app, done["result"]["download_url"], auth() | {"X-Forwarded-For": value})

    items = await recorded(app, done)
    assert [i["client_ip"] for i in items] == ["127.0.0.1"] * len(GARBAGE)


async def test_download_record_pages_newest_first_by_cursor(client: TestClient[Any, Any]) -> None:
    done = await succeeded(client)
    for n in range(1, 4):
        agent = {"User-Agent": f"agent-{n}"}
        await redirect(client, done["result"]["download_url"], auth() | agent)

    agents: list[str] = []
    url: str | None = f"/v1/exports/{done['id']}/downloads?limit=1"
    while url is not None:
        response = await client.get(url, headers=auth())
        assert response.status == 200, await response.text()
        page = await response.json()
        conforms("DownloadPage", page)
        assert len(page["items"]) == 1
        agents += [i["user_agent"] for i in page["items"]]
        cursor, link = page["next_cursor"], response.headers.get("Link")
        if cursor is None:
            assert link is None
            url = None
            continue
        match = re.fullmatch(r'<([^>]+)>; rel="next"', link or "")
        assert match, link
        url = match[1]
        assert parse_qs(urlsplit(url).query) == {"cursor": [cursor], "limit": ["1"]}

    assert agents == ["agent-3", "agent-2", "agent-1"]
