"""The pieces every path of the document is made of: answers with their headers, the problem
answers a route gives, parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from exportd.api.openapi.requests import Schema
from exportd.api.render import DEFAULT_PAGE
from exportd.api.requests import MAX_CURSOR

JSON: Final = "application/json"
PROBLEM_JSON: Final = "application/problem+json"
PRINTABLE: Final = "^[\\x20-\\x7e]+$"
TIMESTAMP: Final[Schema] = {"type": "string", "format": "date-time"}
MAYBE_TIMESTAMP: Final[Schema] = {"type": ["string", "null"], "format": "date-time"}
COUNT: Final[Schema] = {"type": "integer", "minimum": 0}

REQUEST_ID: Final[Schema] = {
    "description": "The request's id in exportd's logs: the caller's own X-Request-ID when "
    "it is 1-128 characters of [A-Za-z0-9._:-], else a new one.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
}
ETAG: Final[Schema] = {
    "description": "The export's version (a queued export's also carries its place in the "
    "queue); send it as If-None-Match to long-poll for a change.",
    "required": True,
    "schema": {"type": "string", "pattern": '^"[0-9]+(\\.q[0-9]+t?)?"$'},
}
_RETRY_AFTER: Final[Schema] = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
# Why a route answers each problem, unless it says otherwise.
_PROBLEMS: Final[dict[int, str]] = {
    400: "Malformed: invalid JSON, a bad header or query value, an unknown cursor",
    401: "Missing or invalid bearer token",
    403: "The token lacks the scope this needs",
    404: "No such export for this caller (a foreign id reads the same)",
    408: "The request body did not arrive in time",
    409: "The export has finished and cannot be canceled",
    410: "The export's file has expired",
    413: "The body is larger than the server accepts",
    415: "The body is not JSON",
    422: "Valid JSON that is not a valid request (the detail names the field)",
    429: "The tenant has too many queued exports",
    503: "A backing service is unavailable; retry",
}


def response(description: str, schema: Schema | None = None, **headers: Schema) -> Schema:
    answer: Schema = {"description": description, "headers": {"X-Request-ID": REQUEST_ID}}
    answer["headers"] |= headers
    if schema is not None:
        answer["content"] = {JSON: {"schema": schema}}
    return answer


def problems(*statuses: int, why: Mapping[int, str] | None = None) -> dict[str, Schema]:
    """The problem answers a route gives (`why` where its reason differs from the usual), plus
    the unavailable (503) and unexpected (5XX) ones every route may."""
    out = {}
    for status in (*statuses, 503):
        headers: dict[str, Schema] = {"X-Request-ID": REQUEST_ID}
        if status in (429, 503):
            headers["Retry-After"] = _RETRY_AFTER
        if status == 401:
            headers["WWW-Authenticate"] = {"required": True, "schema": {"type": "string"}}
        out[str(status)] = {
            "description": (why or {}).get(status, _PROBLEMS[status]),
            "headers": headers,
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
    out["5XX"] = {
        "description": "Unexpected; logged under the X-Request-ID, never with details here",
        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
    }
    return out


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def header(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "header", "description": description, "schema": schema}


def path_id(name: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def page_params(page_size_max: int) -> list[Schema]:
    """?limit and ?cursor of a keyset-paged list."""
    return [
        {
            "name": "limit",
            "in": "query",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": page_size_max,
                "default": DEFAULT_PAGE,
            },
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "`next_cursor` of the previous page (opaque)",
            "schema": {"type": "string", "maxLength": MAX_CURSOR, "pattern": "^[A-Za-z0-9_-]+$"},
        },
    ]


NEXT_PAGE: Final[Schema] = {
    "Link": {"description": 'The next page, rel="next"', "schema": {"type": "string"}}
}
