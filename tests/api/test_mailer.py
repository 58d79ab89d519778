"""The mailer reuses an idle SMTP session (a NOOP proves it alive first) and never one in an
unknown state. Against a real SMTP server (aiosmtpd) that records which connection each
message came on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from exportd.config import Settings
from exportd.dev.servers import free_port
from exportd.notify.mailer import Mailer, MailRefused


class PeerSink:
    """Accepts mail (refusing recipients at refused.example) and records each message's
    client address and port: one per SMTP connection."""

    def __init__(self) -> None:
        self.port = free_port()
        self.peers: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.peers.append(session.peer)
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        assert self._controller is not None
        self._controller.stop()  # drops every open connection


@pytest.fixture
def sink() -> Iterator[PeerSink]:
    server = PeerSink()
    server.start()
    yield server
    server.stop()


def mailer_for(settings: Settings, sink: PeerSink) -> Mailer:
    return Mailer(replace(settings, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_tls="none"))


def message(to: str = "someone@example.com") -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "exportd@example.com", to, "hello"
    mail.set_content("hello")
    return mail


async def test_mails_in_a_row_share_one_session(settings: Settings, sink: PeerSink) -> None:
    mailer = mailer_for(settings, sink)
    for _ in range(3):
        await mailer.send(message())
    await mailer.aclose()

    assert len(sink.peers) == 3
    assert len(set(sink.peers)) == 1


async def test_a_session_the_relay_dropped_is_replaced_before_sending(
    settings: Settings, sink: PeerSink
) -> None:
    mailer = mailer_for(settings, sink)
    await mailer.send(message())
    sink.stop()  # the idle session dies with the server
    sink.start()

    await mailer.send(message())
    await mailer.aclose()

    assert len(sink.peers) == 2
    assert sink.peers[0] != sink.peers[1]


async def test_a_session_that_failed_a_mail_is_not_reused(
    settings: Settings, sink: PeerSink
) -> None:
    mailer = mailer_for(settings, sink)
    await mailer.send(message())
    with pytest.raises(MailRefused):
        await mailer.send(message("nobody@refused.example"))
    await mailer.send(message())
    await mailer.aclose()

    assert len(sink.peers) == 2
    assert sink.peers[0] != sink.peers[1]
