"""The "your export is ready" email: plain text and HTML, sent through aiosmtplib."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib

from exportd.config import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadyMail:
    export_id: str
    recipient: str
    file_name: str
    size: int
    rows: int
    url: str
    link_expires_at: datetime


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def compose(mail: ReadyMail, *, sender: str) -> EmailMessage:
    """Build the message; its Message-ID is stable per export, so a resend is recognisable."""
    expiry = mail.link_expires_at.strftime("%Y-%m-%d %H:%M UTC")
    size = human_size(mail.size)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.recipient
    msg["Subject"] = f"Your export {mail.file_name} is ready"
    msg["Message-ID"] = f"<export.{mail.export_id}@exportd>"
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg.set_content(
        f"Your export is ready.\n\n"
        f"File: {mail.file_name} ({size}, {mail.rows:,} rows)\n"
        f"Download: {mail.url}\n\n"
        f"The link works until {expiry}.\n"
    )
    msg.add_alternative(
        "<!doctype html><html><body>"
        "<p>Your export is ready.</p>"
        f"<p><strong>{html.escape(mail.file_name)}</strong> ({size}, {mail.rows:,} rows)</p>"
        f'<p><a href="{html.escape(mail.url, quote=True)}">Download {html.escape(mail.file_name)}'
        "</a></p>"
        f"<p>The link works until {expiry}.</p>"
        "</body></html>",
        subtype="html",
    )
    return msg


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, mail: ReadyMail) -> None:
        s = self._settings
        await aiosmtplib.send(
            compose(mail, sender=s.mail_from),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=30,
        )
