"""What a tenant may see of an export: the one JSON shape the API answers with and webhooks
carry. It names exportd's own URLs only, never a presigned one: a forwarded payload or a
logged response holds no storage credentials."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exportd.db.rows import ExportRow
from exportd.model import Status


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def export_url(base_url: str, export: ExportRow) -> str:
    return f"{base_url}/v1/exports/{export.id}"


def export_json(
    export: ExportRow, *, base_url: str, status: Status | None = None
) -> dict[str, Any]:
    """The export as JSON. `base_url` is exportd's public address; `status` is the one an
    event reports (a webhook for `succeeded` delivered after the file expired)."""
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
        "progress": {"rows": export.progress_rows, "bytes": export.progress_bytes},
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
