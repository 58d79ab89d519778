"""A real webhook endpoint for tests: an aiohttp server on 127.0.0.1 that records every request,
checks its Standard Webhooks signature, answers what it is told, can be down for a while (on
the same port), and can hold requests unanswered (a sender killed mid-delivery)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived: headers (names lower-cased) and the raw body."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """`async with Receiver() as receiver:` listens on `receiver.url()` until the block ends."""

    def __init__(self, *, status: int = 204) -> None:
        self.received: list[Received] = []
        # Why a request did not verify ("<webhook-id>: <reason>"): tests assert this stays empty.
        self.unverified: list[str] = []
        self.port = 0  # chosen at the first start, kept for every restart
        self._secret: str | None = None
        self._status = status
        self._scripted: deque[int] = deque()
        self._gate = asyncio.Event()
        self._gate.set()
        self._held = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()
        await self.stop()

    def url(self, path: str = "/hook") -> str:
        return f"http://{HOST}:{self.port}{path}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    @property
    def held(self) -> int:
        """Requests waiting for `release()` now."""
        return self._held

    def ids(self) -> set[str]:
        return {r.webhook_id for r in self.received}

    def events(self) -> list[tuple[str, str]]:
        """(type, export id) of each request, as they came (an exportd event's body)."""
        return [(r.json()["type"], r.json()["data"]["id"]) for r in self.received]

    async def start(self) -> None:
        """Listen (again): on a free port the first time, on the same one after a stop."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        # asyncio sets SO_REUSEADDR, so a restart binds the port again at once.
        site = web.TCPSite(runner, HOST, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and close open connections: the sender sees connection refused."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def verify_with(self, secret: str) -> None:
        """Check every request so far, and each one from now on, against `secret`."""
        self._secret = secret
        for request in self.received:
            self._verify(request)

    def answer(self, status: int, *, times: int | None = None) -> None:
        """Answer `status` to the next `times` requests, or to every request when None."""
        if times is None:
            self._status = status
            self._scripted.clear()
        else:
            self._scripted.extend([status] * times)

    def hold(self) -> None:
        """Keep answers back (requests are still recorded) until `release()`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def _handle(self, request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        received = Received(request.path, headers, await request.read())
        self.received.append(received)
        if self._secret is not None:
            self._verify(received)
        status = self._scripted.popleft() if self._scripted else self._status
        self._held += 1
        try:
            await self._gate.wait()
        finally:
            self._held -= 1
        return web.Response(status=status)

    def _verify(self, received: Received) -> None:
        assert self._secret is not None
        try:
            Webhook(self._secret).verify(received.body, received.headers)
        except (WebhookVerificationError, ValueError) as exc:
            self.unverified.append(f"{received.webhook_id or '(no id)'}: {exc}")
