"""The export mails: their headers, the facts in both parts, escaping of hostile text, and
operator overrides of the templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path

import pytest

from exportd.errors import ConfigError
from exportd.notify.message import (
    FailedMail,
    Mail,
    MailUnbuildable,
    ReadyMail,
    Templates,
    compose,
    human_size,
    message_id,
)

SENDER = "exports@example.com"
DOMAIN = "exports.example.com"
TEMPLATES = Templates()
READY = ReadyMail(
    export_id="0b6c3f4e-8d1a-4c2b-9e5f-7a6b5c4d3e2f",
    recipient="alice@example.com",
    export_title="Orders",
    params={"since": "2024-01-01", "status": None, "limit": 500},
    file_name="Q3 orders.csv.gz",
    size=1_234_567,
    rows=12_345,
    as_of=datetime(2025, 3, 4, 5, 6, tzinfo=UTC),
    url="https://exports.example.com/d/tok?a=1&b=2",
    expires_at=datetime(2025, 3, 11, 5, 6, tzinfo=UTC),
)
FAILED = FailedMail(
    export_id=READY.export_id,
    recipient=READY.recipient,
    export_title="Orders",
    params=READY.params,
    file_name=READY.file_name,
    reason="The export took longer than allowed.",
    error_id="5f1e2d3c4b5a6978",
    failed_at=datetime(2025, 3, 4, 5, 7, tzinfo=UTC),
)
# Line breaks to forge a header or a line, an encoded word that decodes to one, and markup.
HOSTILE = (
    "x\r\nBcc: victim@evil.example =?utf-8?q?=0D=0ABcc:_v@evil.example?= <script>alert(1)</script>"
)
SHOWN = HOSTILE.replace("\r\n", "__")  # as one_line writes it
HEADERS = {
    "From",
    "To",
    "Subject",
    "Message-ID",
    "Date",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "MIME-Version",
    "Content-Type",
}


def build(mail: Mail, templates: Templates = TEMPLATES, sender: str = SENDER) -> Message:
    return compose(mail, sender=sender, message_id_domain=DOMAIN, templates=templates)


def delivered(message: Message) -> EmailMessage:
    """The message as a receiver parses the bytes it was sent."""
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts, in that order, both UTF-8."""
    text, page = message.iter_parts()
    assert (text.get_content_type(), page.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == page.get_content_charset() == "utf-8"
    return text.get_content(), page.get_content()


@pytest.mark.parametrize("mail", [READY, FAILED], ids=["ready", "failed"])
def test_a_mail_parses_back_with_its_headers(mail: Mail) -> None:
    msg = delivered(build(mail))

    assert set(msg.keys()) == HEADERS
    assert msg["From"] == SENDER
    assert msg["To"] == "alice@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    parts(msg)


def test_the_ready_mail_carries_the_facts() -> None:
    msg = delivered(build(READY))
    text, page = parts(msg)

    assert msg["Subject"] == "Your export is ready: Q3 orders.csv.gz"
    for part in (text, page):
        assert "Your export is ready" in part
        assert "Orders" in part
        assert "since" in part and "2024-01-01" in part
        assert "limit" in part and "500" in part
        assert "status" not in part  # a None parameter is left out
        assert "2025-03-04 05:06 UTC" in part  # as_of
        assert "1.2 MB" in part and "12,345 rows" in part
        assert "2025-03-11 05:06 UTC" in part  # expiry
        assert READY.export_id in part
        assert "sent automatically" in part
    assert READY.url in text
    assert 'href="https://exports.example.com/d/tok?a=1&amp;b=2"' in page


def test_the_failed_mail_carries_the_reason_and_the_ids() -> None:
    msg = delivered(build(FAILED))
    text, page = parts(msg)

    assert msg["Subject"] == "Your export could not be finished: Q3 orders.csv.gz"
    for part in (text, page):
        assert "Your export could not be finished" in part
        assert "Orders" in part and "2024-01-01" in part
        assert "The export took longer than allowed." in part
        assert FAILED.export_id in part and "5f1e2d3c4b5a6978" in part
        assert "quote these" in part and "request the export again" in part


def test_a_failed_mail_without_an_error_id_leaves_it_out() -> None:
    text, page = parts(delivered(build(replace(FAILED, error_id=None))))

    assert "None" not in text and "None" not in page
    assert FAILED.export_id in text


@pytest.mark.parametrize(
    "mail",
    [
        replace(READY, file_name=HOSTILE),
        replace(READY, export_title=HOSTILE),
        replace(READY, params={"note": HOSTILE}),
        replace(FAILED, file_name=HOSTILE, reason=HOSTILE),
    ],
    ids=["file_name", "export_title", "param", "failed"],
)
def test_hostile_text_injects_no_header_and_no_markup(mail: Mail) -> None:
    msg = delivered(build(mail))
    text, page = parts(msg)

    assert set(msg.keys()) == HEADERS  # no Bcc, nothing decoded into a header of its own
    assert "\r" not in str(msg["Subject"]) and "\n" not in str(msg["Subject"])
    if mail.file_name == HOSTILE:
        # The subject holds the text, line breaks made visible, nothing in it decoded again.
        assert str(msg["Subject"]).endswith(f": {SHOWN}")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\nBcc:" not in text  # no forged line in the text part either


def test_the_link_is_escaped_as_an_attribute() -> None:
    page = parts(delivered(build(replace(READY, url='https://x.example/d/t"onclick="y'))))[1]

    assert 'href="https://x.example/d/t&#34;onclick=&#34;y"' in page


def test_message_id_is_stable_per_export_and_kind() -> None:
    first, again = build(READY), build(READY)

    assert (
        first["Message-ID"] == again["Message-ID"] == message_id(READY.export_id, "ready", DOMAIN)
    )
    assert first["Message-ID"] == f"<export.{READY.export_id}.ready@{DOMAIN}>"
    assert build(FAILED)["Message-ID"] == message_id(READY.export_id, "failed", DOMAIN)


def test_an_override_replaces_only_its_own_template(tmp_path: Path) -> None:
    (tmp_path / "ready.subject.txt").write_text("{{ export_title }} export\n{{ file_name }}\n")
    overridden = Templates(tmp_path)
    overridden.check()

    msg, builtin = delivered(build(READY, overridden)), delivered(build(READY))

    assert msg["Subject"] == "Orders export Q3 orders.csv.gz"  # wrapped lines become one
    assert parts(msg) == parts(builtin)


def test_an_empty_folder_setting_means_the_builtin_templates() -> None:
    Templates("").check()
    assert delivered(build(READY, Templates("")))["Subject"] == delivered(build(READY))["Subject"]


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("ready.html", "<p>{{ export_title </p>"),  # a syntax error
        ("failed.txt", "{{ no_such_variable }}"),  # undefined
        ("ready.subject.txt", "{{ export_id.__class__.__mro__ }}"),  # outside the sandbox
    ],
)
def test_a_broken_override_fails_the_check_and_the_mail(
    tmp_path: Path, name: str, source: str
) -> None:
    (tmp_path / name).write_text(source)
    broken = Templates(tmp_path)

    with pytest.raises(ConfigError) as checked:
        broken.check()
    with pytest.raises(MailUnbuildable) as composed:
        build(FAILED if name.startswith("failed") else READY, broken)

    assert "EXPORTD_MAIL_TEMPLATES" in str(checked.value) and name in str(checked.value)
    assert name in composed.value.detail


@pytest.mark.parametrize(
    ("recipient", "sender", "domain"),
    [
        ("a@b.example\r\nBcc: victim@evil.example", SENDER, DOMAIN),
        ("not an address", SENDER, DOMAIN),
        ("alice@example.com", "Exports\r\nBcc: x <exports@example.com>", DOMAIN),
        ("alice@example.com", "not a sender", DOMAIN),
        ("alice@example.com", SENDER, "example.com>\r\nBcc: x@evil.example"),
        ("alice@example.com", SENDER, ""),
    ],
)
def test_a_mail_that_cannot_be_built_safely_is_a_permanent_failure(
    recipient: str, sender: str, domain: str
) -> None:
    with pytest.raises(MailUnbuildable) as caught:
        compose(
            replace(READY, recipient=recipient),
            sender=sender,
            message_id_domain=domain,
            templates=TEMPLATES,
        )

    assert caught.value.code == "mail_unbuildable"
    assert caught.value.retryable is False


def test_a_display_name_sender_is_encoded_and_kept() -> None:
    msg = delivered(build(READY, sender="Ünïcode Exports <exports@example.com>"))

    assert msg["From"].addresses[0].display_name == "Ünïcode Exports"
    assert msg["From"].addresses[0].addr_spec == "exports@example.com"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1_000, "1.0 KB"),
        (1_234_567, "1.2 MB"),
        (5 * 10**9, "5.0 GB"),
        (2 * 10**15, "2000.0 TB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text
