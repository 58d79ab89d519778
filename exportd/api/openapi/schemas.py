"""The JSON Schemas of every response body: an export, a page, the catalog, a problem."""

from __future__ import annotations

from typing import Final

from exportd.api.openapi.followups import FOLLOWUP_SCHEMAS
from exportd.api.openapi.parts import COUNT, MAYBE_TIMESTAMP, TIMESTAMP
from exportd.api.openapi.progress import PROGRESS, QUEUE
from exportd.api.openapi.requests import CSV_OPTIONS, Schema, export_request
from exportd.export.catalog import Catalog
from exportd.export.formats import COMPRESSIONS, FORMATS
from exportd.export.params import PARAM_TYPES
from exportd.model import Status

ERROR: Final[Schema] = {
    "type": ["object", "null"],
    "description": "Why the export failed, or why it is being retried.",
    "required": ["code", "message", "id"],
    "properties": {
        "code": {"type": "string", "examples": ["query_failed", "storage_unavailable"]},
        "message": {"type": ["string", "null"], "description": "For people; no internals."},
        "id": {
            "type": ["string", "null"],
            "description": "Quote it to the operator: the details are logged under it.",
        },
    },
}

RESULT: Final[Schema] = {
    "type": ["object", "null"],
    "required": [
        "download_url",
        "file_name",
        "size",
        "rows",
        "sha256",
        "content_type",
        "as_of",
        "expires_at",
    ],
    "properties": {
        "download_url": {
            "type": ["string", "null"],
            "format": "uri",
            "description": "exportd's download route (GET it with your token: a 302 to the "
            "file); null once the file has expired.",
        },
        "file_name": {"type": "string"},
        "size": COUNT,
        "rows": COUNT,
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "content_type": {"type": "string"},
        "as_of": {**MAYBE_TIMESTAMP, "description": "The snapshot the file shows."},
        "expires_at": MAYBE_TIMESTAMP,
    },
}

EXPORT: Final[Schema] = {
    "type": "object",
    "required": [
        "id",
        "url",
        "status",
        "export",
        "params",
        "format",
        "compression",
        "options",
        "file_name",
        "recipient",
        "queue",
        "progress",
        "attempts",
        "error",
        "result",
        "downloads",
        "created_at",
        "started_at",
        "finished_at",
        "notified_at",
        "expires_at",
        "version",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string", "format": "uri", "description": "This export in the API."},
        "status": {"enum": list(Status)},
        "export": {"type": "string"},
        "params": {"type": "object"},
        "format": {"enum": list(FORMATS)},
        "compression": {"enum": list(COMPRESSIONS)},
        "options": CSV_OPTIONS,
        "file_name": {"type": "string"},
        "recipient": {"type": ["string", "null"]},
        "queue": QUEUE,
        "progress": PROGRESS,
        "attempts": COUNT,
        "error": ERROR,
        "result": RESULT,
        "downloads": {
            "type": "object",
            "required": ["count", "last_at"],
            "properties": {"count": COUNT, "last_at": MAYBE_TIMESTAMP},
        },
        "created_at": TIMESTAMP,
        "started_at": MAYBE_TIMESTAMP,
        "finished_at": MAYBE_TIMESTAMP,
        "notified_at": MAYBE_TIMESTAMP,
        "expires_at": MAYBE_TIMESTAMP,
        "version": {"type": "integer", "minimum": 1, "description": "Its ETag: bumps on change."},
    },
}

EXPORT_PAGE: Final[Schema] = {
    "type": "object",
    "required": ["items", "next_cursor"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Export"}},
        "next_cursor": {"type": ["string", "null"]},
    },
}

EXPORT_TYPES: Final[Schema] = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "title", "description", "formats", "params"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "formats": {"type": "array", "items": {"enum": list(FORMATS)}},
                    "spreadsheet_safe": {"type": "boolean"},
                    "params": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "type", "required"],
                            "properties": {
                                "name": {"type": "string"},
                                "type": {"enum": list(PARAM_TYPES)},
                                "required": {"type": "boolean"},
                                "default": {},
                                "values": {"type": "array", "items": {"type": "string"}},
                                "description": {"type": "string"},
                            },
                        },
                    },
                },
            },
        }
    },
}

PROBLEM: Final[Schema] = {
    "type": "object",
    "description": "RFC 9457 problem details, with a stable `code`.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "examples": ["invalid_params", "export_not_found"]},
        "instance": {"type": "string"},
        "retry_after": {"type": "integer"},
    },
}

HEALTH: Final[Schema] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"const": "ok"}},
}

READY: Final[Schema] = {
    "type": "object",
    "required": ["status", "checks", "role"],
    "properties": {
        "status": {"const": "ready"},
        "checks": {
            "type": "object",
            "description": "Each dependency this process needs: database, listener and, where "
            "jobs run, source, storage and mail; `ok`, or why not (also in a 503's `checks`).",
            "additionalProperties": {"type": "string"},
        },
        "role": {"enum": ["all", "api", "worker"]},
    },
}


def components(catalog: Catalog) -> Schema:
    return {
        "ExportRequest": export_request(catalog),
        "Export": EXPORT,
        "ExportPage": EXPORT_PAGE,
        "ExportTypes": EXPORT_TYPES,
        "Problem": PROBLEM,
        "Health": HEALTH,
        "Ready": READY,
        **FOLLOWUP_SCHEMAS,
    }
