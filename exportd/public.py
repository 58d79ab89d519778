"""What a tenant may see of an export: the one JSON shape the API answers with and webhooks
carry. It names exportd's own URLs only, never a presigned one: a forwarded payload or a
logged response holds no storage credentials."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from exportd.db.rows import ExportRow
from exportd.db.standing import Standing
from exportd.model import Status

# A running build never shows 100 %: the planner's estimate can be low, and the upload and
# the commit are still ahead.
RUNNING_PERCENT_CAP: Final = 99.9


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def etag(export: ExportRow, standing: Standing | None = None) -> str:
    """Changes with the export, and with a queued export's place in the queue."""
    if standing is None:
        return f'"{export.version}"'
    limit = "t" if standing.waiting_for == "tenant_limit" else ""
    return f'"{export.version}.q{standing.ahead}{limit}"'


def export_url(base_url: str, export: ExportRow) -> str:
    return f"{base_url}/v1/exports/{export.id}"


def phase(export: ExportRow, shown: Status) -> str:
    if shown == Status.QUEUED:
        return "queued"
    if shown == Status.RUNNING:
        return export.progress_phase or "building"
    if shown == Status.SUCCEEDED and export.recipient and export.notified_at is None:
        return "mailing" if export.error_code is None else "done"  # an error: mail gave up
    return "done"


def progress_json(export: ExportRow, shown: Status) -> dict[str, Any]:
    """Rows and bytes so far, against the planner's estimate; rate and ETA while running."""
    rows, estimate = export.progress_rows, export.rows_estimate
    running = shown == Status.RUNNING
    percent: float | None = None
    if shown in (Status.SUCCEEDED, Status.EXPIRED):
        percent = 100.0
    elif running and estimate:
        percent = round(min(100.0 * rows / estimate, RUNNING_PERCENT_CAP), 1)
    elif running and estimate == 0:  # the planner expects nothing: nothing is left but to end
        percent = RUNNING_PERCENT_CAP
    rate = export.progress_rate if running else None
    eta: float | None = None
    if rate and estimate is not None and estimate > rows:
        eta = round((estimate - rows) / rate, 1)
    return {
        "phase": phase(export, shown),
        "rows": rows,
        "rows_estimate": estimate,
        "bytes": export.progress_bytes,
        "percent": percent,
        "rate_rows_s": round(rate, 1) if rate is not None else None,
        "eta_s": eta,
    }


def queue_json(standing: Standing | None) -> dict[str, Any] | None:
    if standing is None:
        return None
    return {
        "position": standing.position,
        "ahead": standing.ahead,
        "waiting_for": standing.waiting_for,
        "estimated_start_at": timestamp(standing.estimated_start_at),
    }


def export_json(
    export: ExportRow,
    *,
    base_url: str,
    status: Status | None = None,
    standing: Standing | None = None,
) -> dict[str, Any]:
    """The export as JSON. `base_url` is exportd's public address; `status` is the one an
    event reports (a webhook for `succeeded` delivered after the file expired); `standing`
    a queued export's place in the queue."""
    shown = status or Status(export.status)
    url = export_url(base_url, export)
    body: dict[str, Any] = {
        "id": str(export.id),
        "url": url,
        "status": shown,
        "export": export.export_name,
        "params": export.params,
        "format": export.format,
        "compression": export.compression,
        "options": export.options,
        "file_name": export.file_name,
        "recipient": export.recipient,
        "queue": queue_json(standing) if shown == Status.QUEUED else None,
        "progress": progress_json(export, shown),
        "attempts": export.attempts,
        "error": (
            {"code": export.error_code, "message": export.error_message, "id": export.error_id}
            if export.error_code
            else None
        ),
        "result": None,
        "downloads": {
            "count": export.download_count,
            "last_at": timestamp(export.last_download_at),
        },
        "created_at": timestamp(export.created_at),
        "started_at": timestamp(export.started_at),
        "finished_at": timestamp(export.finished_at),
        "notified_at": timestamp(export.notified_at),
        "expires_at": timestamp(export.expires_at),
        "version": export.version,
    }
    if shown in (Status.SUCCEEDED, Status.EXPIRED):
        offered = (
            shown == Status.SUCCEEDED
            and export.expires_at is not None
            and export.expires_at > datetime.now(UTC)
        )
        body["result"] = {
            # exportd's download route: 302 to a fresh presigned URL, with the caller's token.
            "download_url": f"{url}/download" if offered else None,
            "file_name": export.file_name,
            "size": export.result_size,
            "rows": export.result_rows,
            "sha256": export.result_sha256,
            "content_type": export.content_type,
            "as_of": timestamp(export.as_of),
            "expires_at": timestamp(export.expires_at),
        }
    return body
