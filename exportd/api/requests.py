"""Reading a request at the boundary: every header, query value and body is parsed by type
here, and anything malformed becomes a 4xx problem before a handler sees it."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import math
import re
import uuid
from typing import Any, Final

import msgspec
import structlog
from aiohttp import web

from exportd.api.auth import Identity
from exportd.api.keys import SETTINGS, VERIFIER
from exportd.db.exports import IdempotencyKey
from exportd.envvars import Networks
from exportd.errors import (
    BadRequest,
    ClientDisconnected,
    ExportNotFound,
    InvalidRequest,
    MalformedJson,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)

MAX_IDEMPOTENCY_KEY: Final = 255
MAX_HEADER: Final = 8190  # aiohttp's own limit for one header field
MAX_CURSOR: Final = 512
# A client's X-Request-ID is kept only if it is this short and plain; else we make our own.
REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# What a header or query value may hold: visible ASCII, spaces and tabs (RFC 9110 field text).
_PRINTABLE_ASCII: Final = re.compile(r"^[\t\x20-\x7e]*$")
_DIGITS: Final = re.compile(r"^[0-9]{1,9}$")


def header(request: web.Request, name: str, *, max_length: int = MAX_HEADER) -> str | None:
    """A header's value, or None when absent; printable ASCII only (a byte that is not UTF-8
    reaches us as a lone surrogate, and must never reach a token parser or the logs)."""
    value = request.headers.get(name)
    if value is None:
        return None
    if len(value) > max_length or not _PRINTABLE_ASCII.fullmatch(value):
        raise BadRequest(f"header {name} must be at most {max_length} printable ASCII characters")
    return value


def query(request: web.Request, name: str, *, max_length: int = 64) -> str | None:
    """A query parameter's value (the last one if repeated), printable ASCII only."""
    values = request.query.getall(name, [])
    if not values:
        return None
    value = values[-1]
    if len(value) > max_length or not _PRINTABLE_ASCII.fullmatch(value):
        raise BadRequest(f"query parameter {name} must be at most {max_length} ASCII characters")
    return value


def request_id(request: web.Request) -> str:
    """The client's X-Request-ID when it is short and plain, else a fresh one."""
    given = request.headers.get("X-Request-ID")
    return given if given is not None and REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def identity(request: web.Request) -> Identity:
    try:
        authorization = header(request, "Authorization")
    except BadRequest:
        raise Unauthorized("Authorization must be 'Bearer <token>' in ASCII") from None
    ident = request.app[VERIFIER].verify(authorization)
    structlog.contextvars.bind_contextvars(tenant=ident.tenant)
    return ident


async def read_json(request: web.Request) -> Any:
    """The body as JSON values: numbers within 64 bits, strings PostgreSQL can store, nesting
    that a parser survives; read within the body timeout."""
    ctype = header(request, "Content-Type") or "application/json"
    media = ctype.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {media!r}")
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout.total_seconds()):
            raw = await request.read()
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    except ConnectionResetError:
        raise ClientDisconnected("the client went away while sending the body") from None
    try:
        body = msgspec.json.decode(raw)
    except msgspec.ValidationError as exc:  # a number too large for 64 bits, for one
        raise InvalidRequest(f"body holds a value out of range: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"body is not valid JSON (UTF-8): {exc}") from None
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


def idempotency_key(request: web.Request, body: Any) -> IdempotencyKey | None:
    key = header(request, "Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY)
    if key is None:
        return None
    if not key or "\t" in key:
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII chars")
    # Keys belong to the caller (tenant and sub); the same key with another body is an error.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return IdempotencyKey(
        key=key,
        request_hash=hashlib.sha256(canonical.encode()).hexdigest(),
        ttl=request.app[SETTINGS].idempotency_ttl,
    )


def parse_wait(request: web.Request) -> tuple[float, bool]:
    """Seconds to long-poll (capped) and whether Prefer asked for it: ?wait=N (a bad value is
    a 400), else Prefer: wait=N (a bad one is ignored, as RFC 7240 asks of preferences)."""
    cap = request.app[SETTINGS].max_wait.total_seconds()
    raw = query(request, "wait")
    if raw is not None:
        seconds = _seconds(raw)
        if seconds is None:
            raise BadRequest("wait must be a number of seconds")
        return min(seconds, cap), False
    for part in (header(request, "Prefer") or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "wait" and (seconds := _seconds(value.strip())) is not None:
            return min(seconds, cap), True
    return 0.0, False


def _seconds(raw: str) -> float | None:
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_limit(request: web.Request, *, default: int, maximum: int) -> int:
    raw = query(request, "limit")
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"limit must be an integer between 1 and {maximum}")
    return int(raw)


def parse_export_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["export_id"])
    except ValueError:
        raise ExportNotFound() from None


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # a dual-stack socket's IPv4 peer
    return mapped or address


def client_address(request: web.Request, trusted: Networks) -> Address | None:
    """Who sent the request: the peer, unless the peer is a trusted proxy; then the right-most
    X-Forwarded-For address that is not one (what the outermost trusted proxy saw). Addresses
    left of an untrusted one are the client's own claims, and never believed."""
    address = _address(request.remote)
    if address is None or not any(address in net for net in trusted):
        return address
    hops = [
        hop for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")
    ]
    for hop in reversed(hops):
        forwarded = _address(hop)
        if forwarded is None:  # garbage: the proxy that passed it on is all we know
            return address
        address = forwarded
        if not any(address in net for net in trusted):
            return address
    return address
