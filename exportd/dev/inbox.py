"""`exportd dev`'s webhook receiver: an endpoint registered for each demo tenant, so the
events of every export show up while you try the API. Each delivery's signature is checked
with its endpoint's secret (Standard Webhooks), a line is printed, and the delivery is kept
as a JSON file."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import standardwebhooks
from aiohttp import web

from exportd.db import webhooks
from exportd.db.pool import create_pool
from exportd.model import Event
from exportd.webhooks.signing import new_secret

# What the dev stack's endpoints are registered as: replaced at each start.
CREATED_BY: Final = "exportd-dev"
MAX_BODY: Final = 1024 * 1024


class WebhookInbox:
    """An HTTP server on loopback, on a thread of its own (like the mail sink)."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.host = host
        self.port = 0
        self.secrets: dict[str, str] = {}  # tenant → its endpoint's signing secret
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def url(self, tenant: str) -> str:
        return f"http://{self.host}:{self.port}/hooks/{tenant}"

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/hooks/{tenant}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        secret = self.secrets.get(request.match_info["tenant"])
        try:
            if secret is None:
                raise standardwebhooks.WebhookVerificationError("no endpoint for this tenant")
            event: dict[str, Any] = standardwebhooks.Webhook(secret).verify(
                body, dict(request.headers)
            )
            signature = "signature ok"
        except (standardwebhooks.WebhookVerificationError, ValueError) as exc:
            event, signature = {}, f"NOT VERIFIED: {exc}"
        delivery = request.headers.get("webhook-id", "unknown")
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{delivery}.json"
        kept = {"headers": dict(request.headers), "signature": signature, "body": body.decode()}
        (self.folder / name).write_text(json.dumps(kept, indent=2) + "\n")
        data = event.get("data", {})
        print(
            f"exportd dev: webhook {event.get('type', '?')} export {data.get('id', '?')} "
            f"({signature}) -> {self.folder / name}",
            flush=True,
        )
        return web.Response(status=204)


async def register(inbox: WebhookInbox, dsn: str, schema: str, tenants: tuple[str, ...]) -> None:
    """Point each tenant's events at the inbox, replacing the endpoints of earlier runs."""
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=1)
    try:
        for tenant in tenants:
            await webhooks.delete_webhooks_by(pool, tenant, CREATED_BY)
            secret = new_secret()
            await webhooks.create_webhook(
                pool,
                tenant=tenant,
                created_by=CREATED_BY,
                url=inbox.url(tenant),
                events=list(Event),
                secret=secret,
                cap=webhooks.MAX_PER_TENANT,
            )
            inbox.secrets[tenant] = secret
    finally:
        await pool.close()
