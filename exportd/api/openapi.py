"""The API's OpenAPI 3.1 document: every route, parameter, header and answer, with the
catalog's exports as typed request variants. It is the contract: the schemathesis test and
the API tests check responses against it."""

from __future__ import annotations

from typing import Any, Final

from exportd.api.request_schema import Schema
from exportd.api.requests import MAX_CURSOR, MAX_IDEMPOTENCY_KEY
from exportd.api.response_schemas import components
from exportd.config import Settings
from exportd.export.catalog import Catalog
from exportd.model import Status

JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"
PRINTABLE: Final = "^[\\x20-\\x7e]+$"

_REQUEST_ID: Final[Schema] = {
    "description": "The request's id in exportd's logs: the caller's own X-Request-ID when "
    "it is 1-128 characters of [A-Za-z0-9._:-], else a new one.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}
_ETAG: Final[Schema] = {
    "description": "The export's version; send it as If-None-Match to long-poll for a change.",
    "required": True,
    "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
}
_RETRY_AFTER: Final[Schema] = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
# Each problem a route can answer, and why.
_PROBLEMS: Final[dict[int, str]] = {
    400: "Malformed: invalid JSON, a bad header or query value, an unknown cursor",
    401: "Missing or invalid bearer token",
    404: "No such export for this caller (a foreign id reads the same)",
    408: "The request body did not arrive in time",
    409: "The export has finished and cannot be canceled",
    413: "The body is larger than the server accepts",
    415: "The body is not JSON",
    422: "Valid JSON that is not a valid request (the detail names the field)",
    429: "The tenant has too many queued exports",
    503: "A backing service is unavailable; retry",
}


def _response(description: str, schema: Schema | None = None, **headers: Schema) -> Schema:
    answer: Schema = {"description": description, "headers": {"X-Request-ID": _REQUEST_ID}}
    answer["headers"] |= headers
    if schema is not None:
        answer["content"] = {JSON: {"schema": schema}}
    return answer


def _problems(*statuses: int) -> dict[str, Schema]:
    """The problem answers a route gives, plus the unexpected (5XX) one every route may."""
    out = {}
    for status in (*statuses, 503):
        headers: dict[str, Schema] = {"X-Request-ID": _REQUEST_ID}
        if status in (429, 503):
            headers["Retry-After"] = _RETRY_AFTER
        if status == 401:
            headers["WWW-Authenticate"] = {"required": True, "schema": {"type": "string"}}
        out[str(status)] = {
            "description": _PROBLEMS[status],
            "headers": headers,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    out["5XX"] = {
        "description": "Unexpected; logged under the X-Request-ID, never with details here",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    return out


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "header", "description": description, "schema": schema}


_EXPORT_ID: Final[Schema] = {
    "name": "export_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _paths(settings: Settings) -> Schema:
    export = _response("The export", _ref("Export"), ETag=_ETAG)
    return {
        "/v1/exports": {
            "post": {
                "summary": "Ask for an export; it is built in the background",
                "operationId": "createExport",
                "parameters": [
                    _header(
                        "Idempotency-Key",
                        "Makes retries safe: the same key and body give the same export "
                        "(for this caller, for a day); the same key with another body is 422.",
                        {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY, "pattern": PRINTABLE},
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("ExportRequest")}},
                },
                "responses": {
                    "202": _response(
                        "Accepted: stored before this answer; built in the background",
                        _ref("Export"),
                        ETag=_ETAG,
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
                    **_problems(400, 401, 408, 413, 415, 422, 429),
                },
            },
            "get": {
                "summary": "The caller's exports, newest first, a page at a time",
                "operationId": "listExports",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": settings.page_size_max,
                            "default": 20,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`next_cursor` of the previous page (opaque)",
                        "schema": {
                            "type": "string",
                            "maxLength": MAX_CURSOR,
                            "pattern": "^[A-Za-z0-9_-]+$",
                        },
                    },
                    {"name": "status", "in": "query", "schema": {"enum": list(Status)}},
                ],
                "responses": {
                    "200": _response(
                        "A page",
                        _ref("ExportPage"),
                        Link={
                            "description": 'The next page, rel="next"',
                            "schema": {"type": "string"},
                        },
                    ),
                    **_problems(400, 401),
                },
            },
        },
        "/v1/exports/{export_id}": {
            "get": {
                "summary": "One export; long-polls for a change with ?wait=N or Prefer: wait=N",
                "operationId": "getExport",
                "parameters": [
                    _EXPORT_ID,
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "Seconds to wait for a change (capped at "
                        f"{settings.max_wait.total_seconds():g})",
                        "schema": {"type": "number", "minimum": 0},
                    },
                    _header(
                        "Prefer",
                        "RFC 7240 `wait=N`, as ?wait=N; other preferences are ignored",
                        {"type": "string"},
                    ),
                    _header(
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
                    "304": _response("Unchanged while waiting", ETag=_ETAG),
                    **_problems(400, 401, 404),
                },
            },
        },
        "/v1/exports/{export_id}/cancel": {
            "post": {
                "summary": "Cancel a queued or running export (canceling twice is fine)",
                "operationId": "cancelExport",
                "parameters": [_EXPORT_ID],
                "responses": {"200": export, **_problems(401, 404, 409)},
            },
        },
        "/v1/export-types": {
            "get": {
                "summary": "The catalog: each export, its formats and typed parameters",
                "operationId": "listExportTypes",
                "responses": {
                    "200": _response("The catalog", _ref("ExportTypes")),
                    **_problems(401),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "summary": "This document (it lists the catalog, so it needs a token too)",
                "operationId": "openapi",
                "responses": {
                    "200": _response("OpenAPI 3.1", {"type": "object"}),
                    **_problems(401),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers",
                "operationId": "healthz",
                "security": [],
                "responses": {"200": _response("Alive", _ref("Health"))},
            },
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the dependencies it needs answer",
                "operationId": "readyz",
                "security": [],
                "responses": {"200": _response("Ready", _ref("Ready")), **_problems()},
            },
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "operationId": "metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "headers": {"X-Request-ID": _REQUEST_ID},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_problems(),
                },
            },
        },
    }


def spec(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "exportd",
            "version": "1",
            "description": "Exports of your data, built in the background from the operator's "
            "catalog and mailed as a link. Errors are RFC 9457 problems with a stable `code`.",
        },
        "security": [{"bearer": []}],
        "paths": _paths(settings),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": components(catalog),
        },
    }
