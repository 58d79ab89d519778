"""Helpers the tests share: tokens, and waiting on an export through the API."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from exportd.auth import issue_token

JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"
AUDIENCE = "exportd-test"


def make_token(
    *,
    tenant: str = "acme",
    sub: str = "user-1",
    email: str = "user-1@acme.example",
    ttl_s: int = 600,
    secret: str = JWT_SECRET,
    audience: str = AUDIENCE,
) -> str:
    return issue_token(secret, sub=sub, tenant=tenant, email=email, audience=audience, ttl_s=ttl_s)


def auth(**claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(**claims)}"}


async def create(
    client: TestClient[Any, Any], body: dict[str, Any], **claims: Any
) -> dict[str, Any]:
    """POST an export and return its JSON (asserting the 202)."""
    response = await client.post("/v1/exports", json=body, headers=auth(**claims))
    assert response.status == 202, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def wait_until(
    client: TestClient[Any, Any],
    export_id: str,
    statuses: tuple[str, ...] = ("succeeded", "failed", "canceled"),
    **claims: Any,
) -> dict[str, Any]:
    """Long-poll the export (up to 60 s) until its status is one of `statuses`."""
    etag = None
    async with asyncio.timeout(60):
        while True:
            headers = auth(**claims) | ({"If-None-Match": etag} if etag else {})
            response = await client.get(f"/v1/exports/{export_id}?wait=10", headers=headers)
            if response.status == 304:
                continue
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            if body["status"] in statuses:
                return body
            etag = response.headers["ETag"]


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
