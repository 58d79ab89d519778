"""The export mails ("ready", "failed"): plain text and HTML from Jinja2 templates an operator
may override, with a Message-ID stable per export and kind.

Headers are built so that no text a user chose can break out of them, on any Python: the
message uses the compat32 policy, where a header value is written as given, and every header
that carries user text is an RFC 2047 encoded word made here (base64 UTF-8, so its payload
holds no CR or LF). The modern policy would instead parse such text and decode any encoded
word already in it; before Python 3.11.10 (CVE-2024-6923) it then wrote the decoded CR/LF
out raw, a header injection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any, Final, Literal

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from exportd.errors import ConfigError, JobFailure
from exportd.text import is_address, is_domain, one_line, parse_mailbox

Kind = Literal["ready", "failed"]


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
    export_title: str
    params: Mapping[str, Any]
    file_name: str
    size: int
    rows: int
    as_of: datetime
    url: str
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedMail:
    export_id: str
    recipient: str
    export_title: str
    params: Mapping[str, Any]
    file_name: str
    reason: str
    error_id: str | None
    failed_at: datetime


Mail = ReadyMail | FailedMail

# What Templates.check renders every template with: every field set, a None param to leave out.
_SAMPLE_TIME: Final = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)
_SAMPLE_PARAMS: Final = {"since": "2025-01-01", "status": None, "limit": 100, "paid": True}
_SAMPLES: Final[tuple[Mail, ...]] = (
    ReadyMail(
        export_id="00000000-0000-4000-8000-000000000000",
        recipient="someone@example.com",
        export_title="Orders",
        params=_SAMPLE_PARAMS,
        file_name="orders.csv.gz",
        size=1_234_567,
        rows=12_345,
        as_of=_SAMPLE_TIME,
        url="https://exports.example.com/d/sample-token",
        expires_at=_SAMPLE_TIME,
    ),
    FailedMail(
        export_id="00000000-0000-4000-8000-000000000000",
        recipient="someone@example.com",
        export_title="Orders",
        params=_SAMPLE_PARAMS,
        file_name="orders.csv.gz",
        reason="The export took longer than allowed.",
        error_id="0123456789abcdef",
        failed_at=_SAMPLE_TIME,
    ),
)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _kind(mail: Mail) -> Kind:
    return "ready" if isinstance(mail, ReadyMail) else "failed"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def variables(mail: Mail) -> dict[str, Any]:
    """What a template sees: the mail's fields, with the text a user chose as one line (so
    it cannot forge lines in the text part), sizes and times formatted."""
    found = {f.name: getattr(mail, f.name) for f in fields(mail)}
    found["export_title"] = one_line(mail.export_title)
    found["file_name"] = one_line(mail.file_name)
    found["params"] = [
        (one_line(name), one_line(_param_text(value)))
        for name, value in mail.params.items()
        if value is not None
    ]
    if isinstance(mail, ReadyMail):
        found["size_human"] = human_size(mail.size)
        found["as_of"] = _when(mail.as_of)
        found["expires_at"] = _when(mail.expires_at)
    else:
        found["reason"] = one_line(mail.reason)
        found["failed_at"] = _when(mail.failed_at)
    return found


def _names(kind: Kind) -> tuple[str, str, str]:
    """The subject, text part and HTML part of one kind of mail."""
    return f"{kind}.subject.txt", f"{kind}.txt", f"{kind}.html"


class Templates:
    """The mail templates: the built-in ones, each overridable by a file of the same name in
    an operator's folder."""

    def __init__(self, folder: str | Path | None = None) -> None:
        builtin = PackageLoader("exportd.notify", "templates")
        # "" is the EXPORTD_MAIL_TEMPLATES default: no folder.
        loader: BaseLoader = (
            ChoiceLoader([FileSystemLoader(folder), builtin]) if folder else builtin
        )
        # Sandboxed: an override is the operator's text, but it should not reach Python's
        # internals through the values it is given.
        self._env = SandboxedEnvironment(
            loader=loader,
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["number"] = "{:,}".format

    def render(self, name: str, values: Mapping[str, Any]) -> str:
        """One template rendered, or MailUnbuildable naming it."""
        try:
            return self._env.get_template(name).render(values)
        # A template is code: whatever it raises, this mail cannot be built from it.
        except Exception as exc:
            raise MailUnbuildable(
                f"the mail template {name} does not render: {type(exc).__name__}: {exc}"
            ) from exc

    def check(self) -> None:
        """Render every template with sample data; raise ConfigError (from exportd.errors) naming
        EXPORTD_MAIL_TEMPLATES and the template on any error: used at startup so a broken
        override stops the replica instead of failing every mail."""
        for sample in _SAMPLES:
            values = variables(sample)
            for name in _names(_kind(sample)):
                try:
                    self.render(name, values)
                except MailUnbuildable as exc:
                    raise ConfigError(f"EXPORTD_MAIL_TEMPLATES: {exc.detail}") from exc


def message_id(export_id: str, kind: Kind, domain: str) -> str:
    """`<export.{export_id}.{kind}@{domain}>`: the same for every send of that mail, so a
    resend is recognisable (receivers drop a repeated Message-ID)."""
    return f"<export.{export_id}.{kind}@{domain}>"


def compose(mail: Mail, *, sender: str, message_id_domain: str, templates: Templates) -> Message:
    """Build the message, or raise MailUnbuildable."""
    if not is_address(mail.recipient):
        raise MailUnbuildable("the recipient is not a plain mail address")
    mailbox = parse_mailbox(sender)
    if mailbox is None:
        raise MailUnbuildable("the sender is not a plain mail address")
    if not is_domain(message_id_domain):
        raise MailUnbuildable("the Message-ID domain is not a domain name")
    kind = _kind(mail)
    values = variables(mail)
    subject_name, text_name, html_name = _names(kind)
    # A template may wrap its subject over lines; a header holds one.
    lines = templates.render(subject_name, values).strip().splitlines()
    subject = one_line(" ".join(line.strip() for line in lines))
    text = templates.render(text_name, values)
    page = templates.render(html_name, values)
    msg = MIMEMultipart("alternative")
    msg["From"] = formataddr(mailbox, charset="utf-8")  # a non-ASCII name as an encoded word
    msg["To"] = mail.recipient
    # compat32 keeps a Header as it is and encodes it when written (typeshed allows only str).
    msg["Subject"] = Header(subject, "utf-8")  # type: ignore[assignment]
    msg["Message-ID"] = message_id(mail.export_id, kind, message_id_domain)
    msg["Date"] = format_datetime(datetime.now().astimezone())
    # RFC 3834: no vacation replies or other auto-answers to a machine's mail.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # Exchange's equivalent
    msg.attach(MIMEText(text, "plain", "utf-8"))
    msg.attach(MIMEText(page, "html", "utf-8"))
    return msg
