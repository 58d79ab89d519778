"""The API's JSON shapes: an export, page cursors and ETags (the routes send them)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from exportd.db.rows import ExportRow
from exportd.errors import InvalidCursor


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def etag(export: ExportRow) -> str:
    return f'"{export.version}"'


def export_json(export: ExportRow, *, download_url: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(export.id),
        "status": export.status,
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
        "created_at": _ts(export.created_at),
        "started_at": _ts(export.started_at),
        "finished_at": _ts(export.finished_at),
        "notified_at": _ts(export.notified_at),
        "expires_at": _ts(export.expires_at),
        "version": export.version,
    }
    if export.status == "succeeded":
        body["result"] = {
            "download_url": download_url,
            "file_name": export.file_name,
            "size": export.result_size,
            "rows": export.result_rows,
            "sha256": export.result_sha256,
            "content_type": export.content_type,
            "as_of": _ts(export.as_of),
            "expires_at": _ts(export.expires_at),
        }
    return body


def encode_cursor(export: ExportRow) -> str:
    raw = json.dumps([export.created_at.isoformat(), str(export.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, export_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(export_id, str):
            raise TypeError("cursor fields are strings")
        parsed = datetime.fromisoformat(created)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        # Normalised to UTC: a far-off offset near year 1 or 9999 overflows here, not in SQL.
        return parsed.astimezone(UTC), uuid.UUID(export_id)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise InvalidCursor("cursor is not one this API issued") from None


def if_none_match(header: str | None, current: str) -> bool:
    """True when an If-None-Match header names the current ETag (weak comparison, RFC 9110)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or current in tags
