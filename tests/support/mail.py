"""The mail that reached the SMTP sink, seen from one test."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage

from exportd.dev.servers import MailSink


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
