"""The API as a test client uses it: create an export, long-poll it, wait on outside state.

`http` is aiohttp's in-process TestClient or a ClientSession with a `base_url`: both take
paths like "/v1/exports".
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import aiohttp
from aiohttp.test_utils import TestClient

from exportd.model import TERMINAL
from tests.support.contract import conforms
from tests.support.tokens import auth

Http: TypeAlias = "TestClient[Any, Any] | aiohttp.ClientSession"
Export: TypeAlias = dict[str, Any]


async def create(http: Http, body: dict[str, Any], **claims: Any) -> Export:
    """POST an export and return its JSON (asserting the 202)."""
    response = await http.post("/v1/exports", json=body, headers=auth(**claims))
    assert response.status == 202, await response.text()
    result: Export = await response.json()
    conforms("Export", result)
    return result


async def wait_for(
    http: Http,
    export_id: str,
    until: Callable[[Export], bool],
    *,
    within: float = 60.0,
    poll_s: float = 10.0,
    headers: dict[str, str] | None = None,
    **claims: Any,
) -> Export:
    """Long-poll the export (each poll up to `poll_s`, all of it up to `within` seconds)
    until `until(export)` holds; return that answer."""
    etag = None
    async with asyncio.timeout(within):
        while True:
            sent = (headers or auth(**claims)) | ({"If-None-Match": etag} if etag else {})
            response = await http.get(f"/v1/exports/{export_id}?wait={poll_s:g}", headers=sent)
            if response.status == 304:
                continue
            assert response.status == 200, await response.text()
            body: Export = await response.json()
            conforms("Export", body)
            if until(body):
                return body
            etag = response.headers["ETag"]


async def wait_until(
    http: Http,
    export_id: str,
    statuses: frozenset[str] | tuple[str, ...] = tuple(TERMINAL),
    *,
    within: float = 60.0,
    headers: dict[str, str] | None = None,
    **claims: Any,
) -> Export:
    """Long-poll the export (up to `within` seconds) until its status is one of `statuses`."""
    return await wait_for(
        http,
        export_id,
        lambda e: e["status"] in statuses,
        within=within,
        headers=headers,
        **claims,
    )


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 60.0) -> None:
    """Poll state that lives outside this event loop (another process, a server, a thread)
    until `check` holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def redirect(http: Http, url: str, headers: dict[str, str] | None = None) -> str:
    """GET one of exportd's download URLs (the API route or a mailed link) and return where
    its 302 points: a presigned URL."""
    response = await http.get(urlsplit(url).path, headers=headers, allow_redirects=False)
    assert response.status == 302, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    return response.headers["Location"]


async def download_export(
    http: Http, export: Export, *, headers: dict[str, str] | None = None, **claims: Any
) -> tuple[bytes, dict[str, str]]:
    """The export's file through the owner's route, as a client with a token would fetch it."""
    location = await redirect(http, export["result"]["download_url"], headers or auth(**claims))
    return await download(location)


async def follow_link(http: Http, link: str) -> tuple[bytes, dict[str, str]]:
    """The file behind a mailed link, as a browser (no token) would fetch it."""
    return await download(await redirect(http, link))


async def download(url: str) -> tuple[bytes, dict[str, str]]:
    """GET a presigned URL as a browser would (no decompression); (body, headers)."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.read(), dict(response.headers)
