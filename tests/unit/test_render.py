"""The API's JSON shapes: an export as JSON, ETags, page cursors and If-None-Match."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from exportd.api.render import decode_cursor, encode_cursor, etag, export_json, if_none_match
from exportd.db.rows import ExportRow
from exportd.errors import InvalidCursor

EXPORT_ID = uuid.UUID("0b6c3f4e-8d1a-4c2b-9e5f-7a6b5c4d3e2f")
CREATED = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)

QUEUED = ExportRow(
    id=EXPORT_ID,
    tenant="t1",
    owner_sub="user-1",
    recipient="alice@example.com",
    export_name="orders",
    params={"since": "2025-01-01", "status": None},
    format="csv",
    compression="gzip",
    options={"delimiter": ";"},
    file_name="orders.csv.gz",
    status="queued",
    progress_rows=0,
    progress_bytes=0,
    attempts=0,
    error_code=None,
    error_message=None,
    error_id=None,
    object_key=None,
    result_size=None,
    result_rows=None,
    result_sha256=None,
    content_type=None,
    as_of=None,
    created_at=CREATED,
    started_at=None,
    finished_at=None,
    notified_at=None,
    mail_attempted_at=None,
    expires_at=None,
    version=1,
)
SUCCEEDED = replace(
    QUEUED,
    status="succeeded",
    progress_rows=120,
    progress_bytes=4096,
    attempts=1,
    object_key="exports/t1/0b6c/orders.csv.gz",
    result_size=4096,
    result_rows=120,
    result_sha256="ab" * 32,
    content_type="application/gzip",
    as_of=CREATED + timedelta(seconds=1),
    started_at=CREATED + timedelta(seconds=1),
    finished_at=CREATED + timedelta(seconds=2),
    notified_at=CREATED + timedelta(seconds=3),
    expires_at=CREATED + timedelta(days=7),
    version=4,
)


def cursor_of(value: object) -> str:
    """A cursor built the way the API builds one, around any JSON value."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --- export_json ------------------------------------------------------------------


def test_queued_export_has_request_fields_and_no_result() -> None:
    assert export_json(QUEUED, download_url=None) == {
        "id": str(EXPORT_ID),
        "status": "queued",
        "export": "orders",
        "params": {"since": "2025-01-01", "status": None},
        "format": "csv",
        "compression": "gzip",
        "options": {"delimiter": ";"},
        "file_name": "orders.csv.gz",
        "recipient": "alice@example.com",
        "progress": {"rows": 0, "bytes": 0},
        "attempts": 0,
        "error": None,
        "result": None,
        "created_at": "2025-03-04T05:06:07.891011+00:00",
        "started_at": None,
        "finished_at": None,
        "notified_at": None,
        "expires_at": None,
        "version": 1,
    }


def test_queued_export_ignores_a_download_url() -> None:
    assert export_json(QUEUED, download_url="https://s3.example/x")["result"] is None


def test_succeeded_export_has_its_result() -> None:
    body = export_json(SUCCEEDED, download_url="https://s3.example/x?sig=1")
    assert body["result"] == {
        "download_url": "https://s3.example/x?sig=1",
        "file_name": "orders.csv.gz",
        "size": 4096,
        "rows": 120,
        "sha256": "ab" * 32,
        "content_type": "application/gzip",
        "as_of": "2025-03-04T05:06:08.891011+00:00",
        "expires_at": "2025-03-11T05:06:07.891011+00:00",
    }
    assert body["progress"] == {"rows": 120, "bytes": 4096}
    assert body["finished_at"] == "2025-03-04T05:06:09.891011+00:00"
    assert body["notified_at"] == "2025-03-04T05:06:10.891011+00:00"
    assert (body["status"], body["attempts"], body["version"]) == ("succeeded", 1, 4)


def test_succeeded_export_past_its_link_has_a_null_download_url() -> None:
    assert export_json(SUCCEEDED, download_url=None)["result"]["download_url"] is None


def test_failed_export_has_its_error_and_no_result() -> None:
    failed = replace(
        QUEUED,
        status="failed",
        error_code="query_failed",
        error_message="The query failed.",
        error_id="5f1c0ffee0c0ffee",
    )
    body = export_json(failed, download_url=None)
    assert body["error"] == {
        "code": "query_failed",
        "message": "The query failed.",
        "id": "5f1c0ffee0c0ffee",
    }
    assert body["result"] is None


def test_export_json_is_json_serialisable() -> None:
    body = export_json(SUCCEEDED, download_url="https://s3.example/x")
    assert json.loads(json.dumps(body)) == body


# --- etag -------------------------------------------------------------------------


def test_etag_is_the_quoted_version() -> None:
    assert etag(QUEUED) == '"1"'
    assert etag(SUCCEEDED) == '"4"'


# --- cursors ----------------------------------------------------------------------


def test_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(SUCCEEDED)) == (CREATED, EXPORT_ID)


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(SUCCEEDED)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cursor_from_another_offset_decodes_to_the_same_instant_in_utc() -> None:
    plus_two = CREATED.astimezone(timezone(timedelta(hours=2)))
    created, export_id = decode_cursor(encode_cursor(replace(QUEUED, created_at=plus_two)))
    assert created == CREATED
    assert created.utcoffset() == timedelta(0)
    assert export_id == EXPORT_ID


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "not a cursor",
        "é",  # not ASCII
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),  # not UTF-8
        cursor_of(None),
        cursor_of(42),
        cursor_of({"a": 1, "b": 2}),
        cursor_of(["2025-03-04T05:06:07+00:00"]),
        cursor_of(["2025-03-04T05:06:07+00:00", str(EXPORT_ID), "extra"]),
        cursor_of(["yesterday", str(EXPORT_ID)]),
        cursor_of([20250304, str(EXPORT_ID)]),
        cursor_of(["2025-03-04T05:06:07+00:00", "not-a-uuid"]),
        cursor_of(["2025-03-04T05:06:07+00:00", None]),
    ],
)
def test_garbage_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


@pytest.mark.parametrize("export_id", [7, ["x"], {"id": 1}])
def test_cursor_with_non_string_id_is_invalid(export_id: object) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of(["2025-03-04T05:06:07+00:00", export_id]))


def test_cursor_with_naive_timestamp_is_invalid() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of(["2025-03-04T05:06:07", str(EXPORT_ID)]))


@pytest.mark.parametrize(
    "created", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2025-13-01T00:00:00Z"]
)
def test_cursor_with_out_of_range_timestamp_is_invalid(created: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of([created, str(EXPORT_ID)]))


def test_cursor_at_the_edge_of_the_range_decodes() -> None:
    created, _ = decode_cursor(cursor_of(["9999-12-31T23:59:59+00:00", str(EXPORT_ID)]))
    assert created == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


# --- If-None-Match ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (None, False),
        ("", False),
        ('"4"', True),
        ('W/"4"', True),
        ('"3"', False),
        ('W/"3"', False),
        ('"1", "4"', True),
        ('"1",W/"4"', True),
        ('"1", "2"', False),
        ("*", True),
        ('"1", *', True),
        ("4", False),  # an unquoted value is not the tag
    ],
)
def test_if_none_match(header: str | None, matches: bool) -> None:
    assert if_none_match(header, etag(SUCCEEDED)) is matches
