"""The schemas of where an export stands: its place in the queue, then its build's progress."""

from __future__ import annotations

from typing import Final

from exportd.api.openapi.parts import COUNT, MAYBE_TIMESTAMP
from exportd.api.openapi.requests import Schema

NON_NEGATIVE: Final[Schema] = {"type": ["number", "null"], "minimum": 0}

QUEUE: Final[Schema] = {
    "type": ["object", "null"],
    "description": "While the export is queued: where it stands, fleet-wide. Null otherwise "
    "(and in the answer to its creation, before anything was counted).",
    "required": ["position", "ahead", "waiting_for", "estimated_start_at"],
    "properties": {
        "position": {**COUNT, "minimum": 1, "description": "It is the Nth build to start."},
        "ahead": {**COUNT, "description": "Builds queued before it (position - 1)."},
        "waiting_for": {
            "type": "string",
            "enum": ["worker", "tenant_limit"],
            "description": "worker: a free worker. tenant_limit: the tenant runs as many "
            "builds as it may at once; this one waits for those to end, and other tenants' "
            "builds queued later may start first.",
        },
        "estimated_start_at": {
            **MAYBE_TIMESTAMP,
            "description": "A rough estimate from recent build times; null until there is "
            "a history of them.",
        },
    },
}

PROGRESS: Final[Schema] = {
    "type": "object",
    "required": ["phase", "rows", "rows_estimate", "bytes", "percent", "rate_rows_s", "eta_s"],
    "properties": {
        "phase": {
            "type": "string",
            "enum": ["queued", "building", "uploading", "mailing", "done"],
            "description": "building: rows stream into the file; uploading: the last part "
            "is stored; mailing: the file is ready and the mail is on its way; done: "
            "finished (the status says how).",
        },
        "rows": {**COUNT, "description": "Rows streamed so far (exact once finished)."},
        "rows_estimate": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "The database planner's estimate of the rows, taken when the "
            "build started: an estimate, which the result may exceed.",
        },
        "bytes": {**COUNT, "description": "Bytes of the file stored so far."},
        "percent": {
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 100,
            "description": "rows against rows_estimate, below 100 until the build succeeded; "
            "null without an estimate.",
        },
        "rate_rows_s": {
            **NON_NEGATIVE,
            "description": "Rows per second, smoothed (EWMA); null when not running.",
        },
        "eta_s": {
            **NON_NEGATIVE,
            "description": "Seconds until the last row, from the estimate and the rate; "
            "null when unknown (no estimate, or the estimate already passed).",
        },
    },
}
