"""The paths of /v1/exports: create, list, read (long-poll) and cancel."""

from __future__ import annotations

from exportd.api.openapi.parts import (
    ETAG,
    JSON,
    NEXT_PAGE,
    PRINTABLE,
    header,
    page_params,
    path_id,
    problems,
    ref,
    response,
)
from exportd.api.openapi.requests import Schema
from exportd.api.requests import MAX_IDEMPOTENCY_KEY
from exportd.config import Settings
from exportd.model import Status


def paths(settings: Settings) -> Schema:
    export = response("The export", ref("Export"), ETag=ETAG)
    return {
        "/v1/exports": {
            "post": {
                "summary": "Ask for an export; it is built in the background",
                "operationId": "createExport",
                "parameters": [
                    header(
                        "Idempotency-Key",
                        "Makes retries safe: the same key and body give the same export "
                        "(for this caller, for a day); the same key with another body is 422.",
                        {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": PRINTABLE},
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref("ExportRequest")}},
                },
                "responses": {
                    "202": response(
                        "Accepted: stored before this answer; built in the background",
                        ref("Export"),
                        ETag=ETAG,
                        Location={
                            "required": True,
                            "description": "The export's URL",
                            "schema": {"type": "string"},
                        },
                        **{
                            "Idempotent-Replayed": {
                                "description": "`true` when this answers an earlier request "
                                "with the same Idempotency-Key",
                                "schema": {"const": "true"},
                            }
                        },
                    ),
                    **problems(400, 401, 408, 413, 415, 422, 429),
                },
            },
            "get": {
                "summary": "The caller's exports, newest first, a page at a time",
                "operationId": "listExports",
                "parameters": [
                    *page_params(settings.page_size_max),
                    {"name": "status", "in": "query", "schema": {"enum": list(Status)}},
                ],
                "responses": {
                    "200": response("A page", ref("ExportPage"), **NEXT_PAGE),
                    **problems(400, 401),
                },
            },
        },
        "/v1/exports/{export_id}": {
            "get": {
                "summary": "One export; long-polls for a change with ?wait=N or Prefer: wait=N",
                "operationId": "getExport",
                "parameters": [
                    path_id("export_id"),
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "Seconds to wait for a change (capped at "
                        f"{settings.max_wait.total_seconds():g})",
                        "schema": {"type": "number", "minimum": 0},
                    },
                    header(
                        "Prefer",
                        "RFC 7240 `wait=N`, as ?wait=N; other preferences are ignored",
                        {"type": "string"},
                    ),
                    header(
                        "If-None-Match",
                        "An ETag you hold: wait for another version, or answer 304",
                        {"type": "string", "pattern": "^[\\x20-\\x7e]*$"},
                    ),
                ],
                "responses": {
                    "200": {
                        **export,
                        "headers": export["headers"]
                        | {
                            "Preference-Applied": {
                                "description": "`wait=N` when Prefer asked for the wait",
                                "schema": {"type": "string", "pattern": "^wait="},
                            }
                        },
                    },
                    "304": response("Unchanged while waiting", ETag=ETAG),
                    **problems(
                        400,
                        401,
                        404,
                        429,
                        why={
                            429: "Too many long-polls already wait on this replica or for this "
                            "tenant (`too_many_waiters`); poll again after Retry-After"
                        },
                    ),
                },
            },
        },
        "/v1/exports/{export_id}/cancel": {
            "post": {
                "summary": "Cancel a queued or running export (canceling twice is fine)",
                "operationId": "cancelExport",
                "parameters": [path_id("export_id")],
                "responses": {"200": export, **problems(401, 404, 409)},
            },
        },
    }
