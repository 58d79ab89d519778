"""The "your export is ready" email: plain text and HTML, with a Message-ID stable per export."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime


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


def message_id(export_id: str) -> str:
    """One per export: a resend is recognisable as the same mail."""
    return f"<export.{export_id}@exportd>"


def compose(mail: ReadyMail, *, sender: str) -> EmailMessage:
    """Build the message; its Message-ID is stable per export, so a resend is recognisable."""
    expiry = mail.link_expires_at.strftime("%Y-%m-%d %H:%M UTC")
    size = human_size(mail.size)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.recipient
    msg["Subject"] = f"Your export {mail.file_name} is ready"
    msg["Message-ID"] = message_id(mail.export_id)
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
