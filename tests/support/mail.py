"""The mail that reached the SMTP sink, seen from one test; and a sink that holds its answer,
for the fault of a replica dying inside the SMTP conversation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from exportd.dev.servers import MailSink, free_port
from exportd.notify.message import Kind, message_id

# The domain of the test stack's sender (exportd@localhost, the default).
DOMAIN = "localhost"


def mail_id(export_id: str, kind: Kind = "ready") -> str:
    """The Message-ID exportd gives an export's mail in the tests."""
    return message_id(export_id, kind, DOMAIN)


@dataclass
class Mailbox:
    """The mail that arrived during one test."""

    sink: MailSink
    start: int

    def messages(self) -> list[EmailMessage]:
        return self.sink.messages[self.start :]

    async def wait_for(self, count: int) -> list[EmailMessage]:
        """Wait (up to 20 s) until at least `count` messages arrived."""
        async with asyncio.timeout(20):
            # The sink's server runs on its own thread and loop: poll rather than await.
            while len(self.messages()) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return self.messages()


class HoldingSink:
    """An SMTP server on loopback that records each message as its DATA arrives and, while
    `holding`, does not answer it: the sender has handed the mail over and waits for a 250
    it never gets (until released or killed). Thread-safe reads, like MailSink."""

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", free_port()
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._release = threading.Event()
        self._release.set()
        self._controller = Controller(self, hostname=self.host, port=self.port)

    def settings(self) -> dict[str, Any]:
        return {"smtp_host": self.host, "smtp_port": self.port}

    def env(self) -> dict[str, str]:
        return {"EXPORTD_SMTP_HOST": self.host, "EXPORTD_SMTP_PORT": str(self.port)}

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        with self._lock:
            self._messages.append(message_from_bytes(raw, policy=policy.default))
        # aiosmtpd's own loop, on its thread: wait without blocking it.
        while not self._release.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return "250 Message accepted for delivery"

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold every answer to DATA inside the block."""
        self._release.clear()
        try:
            yield
        finally:
            self._release.set()

    def __enter__(self) -> HoldingSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._controller.stop()
