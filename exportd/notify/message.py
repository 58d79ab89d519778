"""The "your export is ready" email: plain text and HTML, with a Message-ID stable per export.

Headers are built so that no text a user chose can break out of them, on any Python: the
message uses the compat32 policy, where a header value is written as given, and every header
that carries user text is an RFC 2047 encoded word made here (base64 UTF-8, so its payload
holds no CR or LF). The modern policy would instead parse such text and decode any encoded
word already in it; before Python 3.11.10 (CVE-2024-6923) it then wrote the decoded CR/LF
out raw, a header injection.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from exportd.errors import JobFailure
from exportd.text import is_address, one_line, parse_mailbox


class MailUnbuildable(JobFailure):
    """The mail cannot be composed from what the export holds: no attempt would do better."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "mail_unbuildable",
            "The mail for this export could not be composed.",
            retryable=False,
            detail=detail,
        )


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


def compose(mail: ReadyMail, *, sender: str) -> Message:
    """Build the message, or raise MailUnbuildable."""
    if not is_address(mail.recipient):
        raise MailUnbuildable("the recipient is not a plain mail address")
    mailbox = parse_mailbox(sender)
    if mailbox is None:
        raise MailUnbuildable("the sender is not a plain mail address")
    name = one_line(mail.file_name)
    expiry = mail.link_expires_at.strftime("%Y-%m-%d %H:%M UTC")
    size = human_size(mail.size)
    msg = MIMEMultipart("alternative")
    msg["From"] = formataddr(mailbox, charset="utf-8")  # a non-ASCII name as an encoded word
    msg["To"] = mail.recipient
    # compat32 keeps a Header as it is and encodes it when written (typeshed allows only str).
    msg["Subject"] = Header(f"Your export {name} is ready", "utf-8")  # type: ignore[assignment]
    msg["Message-ID"] = message_id(mail.export_id)
    msg["Date"] = format_datetime(datetime.now().astimezone())
    text = (
        f"Your export is ready.\n\n"
        f"File: {name} ({size}, {mail.rows:,} rows)\n"
        f"Download: {mail.url}\n\n"
        f"The link works until {expiry}.\n"
    )
    page = (
        "<!doctype html><html><body>"
        "<p>Your export is ready.</p>"
        f"<p><strong>{html.escape(name)}</strong> ({size}, {mail.rows:,} rows)</p>"
        f'<p><a href="{html.escape(mail.url, quote=True)}">Download {html.escape(name)}</a></p>'
        f"<p>The link works until {expiry}.</p>"
        "</body></html>"
    )
    msg.attach(MIMEText(text, "plain", "utf-8"))
    msg.attach(MIMEText(page, "html", "utf-8"))
    return msg
