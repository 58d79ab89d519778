"""Reading a request at the boundary: the caller's identity, the JSON body, ids and headers."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Final

import structlog
from aiohttp import web

from exportd.api.auth import Identity
from exportd.api.keys import SETTINGS, VERIFIER
from exportd.db.exports import IdempotencyKey
from exportd.errors import BadRequest, ExportNotFound, MalformedJson, UnsupportedMediaType

MAX_IDEMPOTENCY_KEY: Final = 255


def identity(request: web.Request) -> Identity:
    ident = request.app[VERIFIER].verify(request.headers.get("Authorization"))
    structlog.contextvars.bind_contextvars(tenant=ident.tenant)
    return ident


async def read_json(request: web.Request) -> Any:
    ctype = request.headers.get("Content-Type", "application/json")
    if not (ctype.startswith("application/json") or "+json" in ctype.split(";")[0]):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {ctype!r}")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedJson("body is nested too deeply") from None
    check_text(body)
    return body


def check_text(value: Any) -> None:
    """Reject strings PostgreSQL cannot store: NUL characters and unpaired surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise MalformedJson("strings must not contain NUL (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedJson("strings must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key)
            check_text(item)
    elif isinstance(value, list):
        for item in value:
            check_text(item)


def idempotency_key(request: web.Request, ident: Identity, body: Any) -> IdempotencyKey | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII chars")
    # The same key from another user, or with another body, is a different request.
    canonical = json.dumps({"sub": ident.sub, "body": body}, sort_keys=True, separators=(",", ":"))
    return IdempotencyKey(
        key=key,
        request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        ttl=request.app[SETTINGS].idempotency_ttl,
    )


def parse_wait(request: web.Request) -> tuple[float, bool]:
    """Seconds to long-poll (capped), from ?wait=N or Prefer: wait=N; and whether Prefer set it."""
    raw, preferred = request.query.get("wait"), False
    if raw is None:
        for part in request.headers.get("Prefer", "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "wait":
                raw, preferred = value.strip(), True
    if raw is None:
        return 0.0, False
    try:
        seconds = float(raw)
    except ValueError:
        raise BadRequest("wait must be a number of seconds") from None
    if not seconds >= 0:
        raise BadRequest("wait must be a number of seconds")
    return min(seconds, request.app[SETTINGS].max_wait.total_seconds()), preferred


def parse_export_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["export_id"])
    except ValueError:
        raise ExportNotFound() from None
