"""Sending mail through the configured relay; SMTP's errors become the job's failures here."""

from __future__ import annotations

import time
from email.message import Message
from typing import Final

import aiosmtplib

from exportd.config import Settings
from exportd.errors import DependencyRefused, JobFailure


class MailNotSent(JobFailure):
    """The relay did not take the message (no 250 for it): nothing was delivered."""


class MailRefused(MailNotSent):
    """The relay refused the recipient: another attempt would be refused too."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "recipient_refused",
            "The mail server refused the recipient address.",
            retryable=False,
            detail=detail,
        )


class MailUnavailable(MailNotSent):
    """The relay is away or failed mid-conversation: retry later."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "mail_unavailable",
            "The mail server is unavailable; the mail will be retried.",
            retryable=True,
            detail=detail,
        )


# A relay drops an idle session after a few minutes; one kept well under that is likely alive,
# and a NOOP proves it before any of a message is sent on it.
IDLE_S: Final = 30.0


class Mailer:
    """Sends through the relay, reusing a few idle sessions: a new SMTP connection (TCP,
    EHLO, STARTTLS, AUTH) per mail was a sixth of exportd's time for small exports."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # A worker sends one mail at a time: never more sessions than workers are needed.
        self._keep = settings.workers
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    @property
    def sender(self) -> str:
        return self._settings.mail_from

    def _client(self, timeout: float) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=timeout,
        )

    async def check(self) -> None:
        """Raise unless the relay answers; DependencyRefused when it refuses our login."""
        s = self._settings
        async with self._client(10) as smtp:
            if s.smtp_username:
                try:
                    await smtp.login(s.smtp_username, s.smtp_password)
                except aiosmtplib.SMTPAuthenticationError as exc:
                    raise DependencyRefused("refused our credentials", str(exc)) from exc

    async def send(self, message: Message) -> None:
        """Hand the message to the relay; raise MailNotSent if it did not take it."""
        smtp = None
        try:
            smtp = await self._session()
            await smtp.send_message(message)
        except BaseException as exc:
            if smtp is not None:  # a session in an unknown state is never reused
                smtp.close()
            if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
                raise MailRefused(str(exc)) from exc
            if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
                raise MailUnavailable(f"{type(exc).__name__}: {exc}") from exc
            raise
        if len(self._idle) < self._keep:
            self._idle.append((smtp, time.monotonic()))
        else:
            smtp.close()

    async def _session(self) -> aiosmtplib.SMTP:
        """An idle session that answers a NOOP, else a new one, logged in."""
        while self._idle:
            smtp, since = self._idle.pop()
            if time.monotonic() - since < IDLE_S and smtp.is_connected:
                try:
                    await smtp.noop()
                    return smtp
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    pass
            smtp.close()
        s = self._settings
        smtp = self._client(30)
        await smtp.connect()
        try:
            if s.smtp_username:
                await smtp.login(s.smtp_username, s.smtp_password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def aclose(self) -> None:
        """Drop the idle sessions (the relay sees the connections end)."""
        while self._idle:
            self._idle.pop()[0].close()
