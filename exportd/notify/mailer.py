"""Sending mail through the configured relay; SMTP's errors become the job's failures here."""

from __future__ import annotations

from email.message import Message

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


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def sender(self) -> str:
        return self._settings.mail_from

    async def check(self) -> None:
        """Raise unless the relay answers; DependencyRefused when it refuses our login."""
        s = self._settings
        smtp = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=10,
        )
        async with smtp:
            if s.smtp_username:
                try:
                    await smtp.login(s.smtp_username, s.smtp_password)
                except aiosmtplib.SMTPAuthenticationError as exc:
                    raise DependencyRefused("refused our credentials", str(exc)) from exc

    async def send(self, message: Message) -> None:
        """Hand the message to the relay; raise MailNotSent if it did not take it."""
        s = self._settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username or None,
                password=s.smtp_password or None,
                use_tls=s.smtp_tls == "tls",
                start_tls=s.smtp_tls == "starttls",
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise MailRefused(str(exc)) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailUnavailable(f"{type(exc).__name__}: {exc}") from exc
