"""The public JSON of an export, and what the routes add: ETags, page cursors, If-None-Match."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from exportd.api.render import decode_cursor, encode_cursor, if_none_match
from exportd.db.rows import ExportRow
from exportd.db.standing import Standing, estimate_start
from exportd.errors import InvalidCursor
from exportd.model import Status
from exportd.public import etag, export_json

BASE = "https://exports.example.com"
URL = f"{BASE}/v1/exports/0b6c3f4e-8d1a-4c2b-9e5f-7a6b5c4d3e2f"

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
    rows_estimate=None,
    progress_rate=None,
    progress_phase=None,
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
    download_count=0,
    last_download_at=None,
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
# Still offered: its expiry is ahead.
OFFERED = replace(SUCCEEDED, expires_at=datetime.now(UTC) + timedelta(days=7))


def cursor_of(value: object) -> str:
    """A cursor built the way the API builds one, around any JSON value."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# --- export_json ------------------------------------------------------------------


def test_queued_export_has_request_fields_and_no_result() -> None:
    assert export_json(QUEUED, base_url=BASE) == {
        "id": str(EXPORT_ID),
        "url": URL,
        "status": "queued",
        "export": "orders",
        "params": {"since": "2025-01-01", "status": None},
        "format": "csv",
        "compression": "gzip",
        "options": {"delimiter": ";"},
        "file_name": "orders.csv.gz",
        "recipient": "alice@example.com",
        "queue": None,
        "progress": {
            "phase": "queued",
            "rows": 0,
            "rows_estimate": None,
            "bytes": 0,
            "percent": None,
            "rate_rows_s": None,
            "eta_s": None,
        },
        "attempts": 0,
        "error": None,
        "result": None,
        "downloads": {"count": 0, "last_at": None},
        "created_at": "2025-03-04T05:06:07.891011+00:00",
        "started_at": None,
        "finished_at": None,
        "notified_at": None,
        "expires_at": None,
        "version": 1,
    }


def test_succeeded_export_has_its_result_and_the_download_route() -> None:
    downloaded = replace(OFFERED, download_count=2, last_download_at=CREATED + timedelta(hours=1))
    body = export_json(downloaded, base_url=BASE)
    assert body["result"] == {
        "download_url": f"{URL}/download",
        "file_name": "orders.csv.gz",
        "size": 4096,
        "rows": 120,
        "sha256": "ab" * 32,
        "content_type": "application/gzip",
        "as_of": "2025-03-04T05:06:08.891011+00:00",
        "expires_at": OFFERED.expires_at.isoformat() if OFFERED.expires_at else None,
    }
    assert body["downloads"] == {"count": 2, "last_at": "2025-03-04T06:06:07.891011+00:00"}
    assert body["progress"] == {
        "phase": "done",
        "rows": 120,
        "rows_estimate": None,
        "bytes": 4096,
        "percent": 100.0,
        "rate_rows_s": None,
        "eta_s": None,
    }
    assert body["finished_at"] == "2025-03-04T05:06:09.891011+00:00"
    assert body["notified_at"] == "2025-03-04T05:06:10.891011+00:00"
    assert (body["status"], body["attempts"], body["version"]) == ("succeeded", 1, 4)


def test_succeeded_export_past_its_expiry_has_no_download_url() -> None:
    assert export_json(SUCCEEDED, base_url=BASE)["result"]["download_url"] is None


def test_expired_export_keeps_its_result_without_a_download_url() -> None:
    body = export_json(replace(OFFERED, status="expired"), base_url=BASE)
    assert body["status"] == "expired"
    assert body["result"]["download_url"] is None
    assert (body["result"]["rows"], body["result"]["sha256"]) == (120, "ab" * 32)


def test_an_event_shows_the_export_as_it_was_then() -> None:
    # A webhook for `succeeded` delivered after the file expired.
    body = export_json(replace(OFFERED, status="expired"), base_url=BASE, status=Status.SUCCEEDED)
    assert body["status"] == "succeeded"
    assert body["result"]["download_url"] == f"{URL}/download"


def test_no_presigned_or_storage_detail_is_public() -> None:
    text = json.dumps(export_json(OFFERED, base_url=BASE))
    assert OFFERED.object_key is not None and OFFERED.object_key not in text
    assert "X-Amz" not in text


def test_failed_export_has_its_error_and_no_result() -> None:
    failed = replace(
        QUEUED,
        status="failed",
        error_code="query_failed",
        error_message="The query failed.",
        error_id="5f1c0ffee0c0ffee",
    )
    body = export_json(failed, base_url=BASE)
    assert body["error"] == {
        "code": "query_failed",
        "message": "The query failed.",
        "id": "5f1c0ffee0c0ffee",
    }
    assert body["result"] is None


def test_export_json_is_json_serialisable() -> None:
    body = export_json(OFFERED, base_url=BASE)
    assert json.loads(json.dumps(body)) == body


# --- progress and queue standing -------------------------------------------------

RUNNING = replace(
    QUEUED,
    status="running",
    progress_rows=2_500,
    progress_bytes=80_000,
    rows_estimate=10_000,
    progress_rate=500.0,
    progress_phase="building",
    started_at=CREATED + timedelta(seconds=1),
    version=3,
)


def test_a_running_build_shows_percent_rate_and_eta_against_the_estimate() -> None:
    assert export_json(RUNNING, base_url=BASE)["progress"] == {
        "phase": "building",
        "rows": 2_500,
        "rows_estimate": 10_000,
        "bytes": 80_000,
        "percent": 25.0,
        "rate_rows_s": 500.0,
        "eta_s": 15.0,
    }


def test_percent_stays_below_100_and_eta_unknown_when_the_estimate_was_low() -> None:
    progress = export_json(replace(RUNNING, progress_rows=50_000), base_url=BASE)["progress"]
    assert progress["percent"] is not None and 99 < progress["percent"] < 100
    assert progress["eta_s"] is None


def test_without_an_estimate_or_a_rate_percent_and_eta_are_null() -> None:
    progress = export_json(replace(RUNNING, rows_estimate=None, progress_rate=None), base_url=BASE)[
        "progress"
    ]
    assert (progress["percent"], progress["rate_rows_s"], progress["eta_s"]) == (None,) * 3


def test_the_upload_phase_shows_through() -> None:
    uploading = replace(RUNNING, progress_phase="uploading")
    assert export_json(uploading, base_url=BASE)["progress"]["phase"] == "uploading"


def test_a_succeeded_export_whose_mail_is_pending_is_mailing() -> None:
    mailing = replace(OFFERED, notified_at=None)
    assert export_json(mailing, base_url=BASE)["progress"]["phase"] == "mailing"
    assert export_json(OFFERED, base_url=BASE)["progress"]["phase"] == "done"
    no_mail = replace(OFFERED, notified_at=None, recipient=None)
    assert export_json(no_mail, base_url=BASE)["progress"]["phase"] == "done"


STANDING = Standing(ahead=4, waiting_for="worker", estimated_start_at=CREATED)


def test_a_queued_export_shows_its_place_in_the_queue() -> None:
    assert export_json(QUEUED, base_url=BASE, standing=STANDING)["queue"] == {
        "position": 5,
        "ahead": 4,
        "waiting_for": "worker",
        "estimated_start_at": "2025-03-04T05:06:07.891011+00:00",
    }
    # A standing read just before the build started is not shown on a running export.
    assert export_json(RUNNING, base_url=BASE, standing=STANDING)["queue"] is None


def test_estimated_start_needs_history() -> None:
    kwargs = dict(ahead=3, own_ahead=0, own_running=0, fleet_running=2, tenant_cap=2)
    assert estimate_start(at=CREATED, median_s=None, samples=0, per_s=None, **kwargs) is None
    assert estimate_start(at=CREATED, median_s=10.0, samples=2, per_s=0.5, **kwargs) is None


def test_estimated_start_goes_at_the_fleet_s_recent_rate() -> None:
    kwargs = dict(ahead=3, own_ahead=0, own_running=0, fleet_running=2, tenant_cap=2)
    # Four builds to start, this one included, at half a build a second.
    start = estimate_start(at=CREATED, median_s=10.0, samples=50, per_s=0.5, **kwargs)
    assert start == CREATED + timedelta(seconds=8)
    # No recent rate: as many at once as run now, each the median time.
    start = estimate_start(at=CREATED, median_s=10.0, samples=50, per_s=None, **kwargs)
    assert start == CREATED + timedelta(seconds=20)


def test_estimated_start_of_a_tenant_at_its_cap_waits_for_its_own_builds() -> None:
    start = estimate_start(
        at=CREATED,
        ahead=0,
        own_ahead=3,
        own_running=2,
        fleet_running=2,
        tenant_cap=2,
        median_s=10.0,
        samples=50,
        per_s=1.0,
    )
    # 4 of its own builds end first, 2 at a time.
    assert start == CREATED + timedelta(seconds=20)


# --- etag -------------------------------------------------------------------------


def test_etag_is_the_quoted_version() -> None:
    assert etag(QUEUED) == '"1"'
    assert etag(SUCCEEDED) == '"4"'


def test_a_queued_export_s_etag_changes_with_its_place() -> None:
    tags = {
        etag(QUEUED, STANDING),
        etag(QUEUED, replace(STANDING, ahead=3)),
        etag(QUEUED, replace(STANDING, waiting_for="tenant_limit")),
        etag(QUEUED),
    }
    assert len(tags) == 4
    # The estimate moves with the clock alone; it does not wake a long-poll.
    assert etag(QUEUED, STANDING) == etag(QUEUED, replace(STANDING, estimated_start_at=None))


# --- cursors ----------------------------------------------------------------------


def test_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(CREATED, EXPORT_ID), uuid.UUID) == (CREATED, EXPORT_ID)


def test_cursor_round_trips_a_row_number() -> None:
    assert decode_cursor(encode_cursor(CREATED, 42), int) == (CREATED, 42)


@pytest.mark.parametrize("row_id", ["0", "-1", str(2**63), "1.5", "0x10"])
def test_cursor_with_a_row_number_out_of_range_is_invalid(row_id: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of(["2025-03-04T05:06:07+00:00", row_id]), int)


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(CREATED, EXPORT_ID)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cursor_from_another_offset_decodes_to_the_same_instant_in_utc() -> None:
    plus_two = CREATED.astimezone(timezone(timedelta(hours=2)))
    created, export_id = decode_cursor(encode_cursor(plus_two, EXPORT_ID), uuid.UUID)
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
        decode_cursor(cursor, uuid.UUID)


@pytest.mark.parametrize("export_id", [7, ["x"], {"id": 1}])
def test_cursor_with_non_string_id_is_invalid(export_id: object) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of(["2025-03-04T05:06:07+00:00", export_id]), uuid.UUID)


def test_cursor_with_naive_timestamp_is_invalid() -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of(["2025-03-04T05:06:07", str(EXPORT_ID)]), uuid.UUID)


@pytest.mark.parametrize(
    "created", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2025-13-01T00:00:00Z"]
)
def test_cursor_with_out_of_range_timestamp_is_invalid(created: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor_of([created, str(EXPORT_ID)]), uuid.UUID)


def test_cursor_at_the_edge_of_the_range_decodes() -> None:
    created, _ = decode_cursor(cursor_of(["9999-12-31T23:59:59+00:00", str(EXPORT_ID)]), uuid.UUID)
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
