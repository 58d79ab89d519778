"""What the routes add to the public JSON: pages, their cursors, and ETags."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from aiohttp import web

from exportd.api.keys import SETTINGS
from exportd.api.requests import MAX_CURSOR, parse_limit, query
from exportd.errors import InvalidCursor

DEFAULT_PAGE: Final = 20

K = TypeVar("K")
R = TypeVar("R")


def encode_cursor(at: datetime, key: uuid.UUID | int) -> str:
    """A keyset page's position: the last row's time and id, opaque to the caller."""
    raw = json.dumps([at.isoformat(), str(key)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, key: Callable[[str], K]) -> tuple[datetime, K]:
    """The position `encode_cursor` made, its id parsed by `key` (uuid.UUID, int)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, last = json.loads(raw)
        if not isinstance(at, str) or not isinstance(last, str):
            raise TypeError("cursor fields are strings")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        parsed_key = key(last)
        if isinstance(parsed_key, int) and not 0 < parsed_key < 2**63:
            raise ValueError("not a row id")
        # Normalised to UTC: a far-off offset near year 1 or 9999 overflows here, not in SQL.
        return parsed.astimezone(UTC), parsed_key
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error):
        raise InvalidCursor("cursor is not one this API issued") from None


def if_none_match(header: str | None, current: str) -> bool:
    """True when an If-None-Match header names the current ETag (weak comparison, RFC 9110)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or current in tags


def page_query(
    request: web.Request, key: Callable[[str], K]
) -> tuple[int, tuple[datetime, K] | None]:
    """A keyset page's ?limit (capped) and ?cursor (decoded, its id parsed by `key`)."""
    limit = parse_limit(request, default=DEFAULT_PAGE, maximum=request.app[SETTINGS].page_size_max)
    cursor = query(request, "cursor", max_length=MAX_CURSOR)
    return limit, None if cursor is None else decode_cursor(cursor, key)


def page_response(
    request: web.Request,
    rows: Sequence[R],
    limit: int,
    *,
    position: Callable[[R], tuple[datetime, uuid.UUID | int]],
    item: Callable[[R], Any],
    keep: Mapping[str, str] | None = None,
) -> web.Response:
    """One keyset page as JSON. `rows` holds one more than `limit` when a next page exists
    (it is fetched and dropped); `position` is a row's (time, id) the cursor resumes after;
    `keep` the query the next page's link repeats (a filter)."""
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(*position(page[-1])) if more else None
    headers = {}
    if next_cursor:
        next_query = {"cursor": next_cursor, "limit": str(limit), **(keep or {})}
        headers["Link"] = f'<{request.rel_url.with_query(next_query)}>; rel="next"'
    return web.json_response(
        {"items": [item(row) for row in page], "next_cursor": next_cursor}, headers=headers
    )
