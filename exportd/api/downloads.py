"""Downloads: the owner's route (bearer token) and the mailed link (/d/{token}), each a 302 to
a presigned URL minted for that click and short-lived; link revocation; the download record.

A presigned URL is never stored or mailed: a forwarded mail carries exportd's link, which
works until the file expires unless its owner revokes it."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from aiohttp import web

from exportd.api.keys import METRICS, PROXIES, SERVICES, SETTINGS
from exportd.api.render import page_query, page_response
from exportd.api.requests import (
    client_address,
    identity,
    parse_export_id,
)
from exportd.db import downloads, exports
from exportd.db.downloads import Client, Granted
from exportd.db.pool import Conn
from exportd.db.rows import DownloadRow, ExportRow
from exportd.errors import (
    ExportdError,
    ExportExpired,
    ExportHasNoFile,
    ExportNotFinished,
    ExportNotFound,
    LinkNotFound,
    LinkRevoked,
)
from exportd.model import Status
from exportd.public import timestamp

log = structlog.get_logger(__name__)

MAX_USER_AGENT: Final = 512
# What token_urlsafe(32) makes: anything else is not a link of ours, and costs no query.
TOKEN: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")

routes = web.RouteTableDef()


def _client(request: web.Request) -> Client:
    agent = request.headers.get("User-Agent")
    if agent is not None:
        # Kept as text to show the owner: one line of printable characters, bounded.
        agent = "".join(ch if ch.isprintable() else "?" for ch in agent[:MAX_USER_AGENT])
    return Client(address=client_address(request, request.app[PROXIES]), user_agent=agent)


def _wants_json(request: web.Request) -> bool:
    """A script or a page (fetch cannot follow a redirect to another origin's S3 without
    CORS) asks for the URL itself: `Accept: application/json`."""
    return "application/json" in request.headers.get("Accept", "")


async def _grant(
    request: web.Request, record: Callable[[Conn], Awaitable[Granted | None]], route: str
) -> web.Response | None:
    """Record the download and presign its URL, both or neither (a presign that fails, say
    role credentials that cannot refresh, leaves no download on record); None when `record`
    finds nothing to download. The answer is a 302 to the URL, or the URL as JSON."""
    services, ttl = request.app[SERVICES], request.app[SETTINGS].link_ttl
    async with services.pool.acquire() as conn, conn.transaction():
        granted = await record(conn)
        if granted is None:
            return None
        url = await services.storage.presign_get(granted.object_key, ttl)
    request.app[METRICS].downloads.labels(route=route).inc()
    log.info("export.downloaded", route=route)
    # The URL is minted for this click: no cache or referrer keeps it.
    private = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    if _wants_json(request):
        expires_at = datetime.now(UTC) + ttl
        body = {"url": url, "expires_at": timestamp(expires_at)}
        return web.json_response(body, headers=private)
    return web.Response(status=302, headers={"Location": url, **private})


def _why_not(export: ExportRow) -> Exception:
    """The problem for an export whose file cannot be downloaded now."""
    if export.status in (Status.QUEUED, Status.RUNNING):
        return ExportNotFinished(f"export is {export.status}; try again once it has succeeded")
    if export.status in (Status.FAILED, Status.CANCELED):
        return ExportHasNoFile(f"export {export.status}; it has no file")
    return ExportExpired("the export's file was deleted at the end of its retention")


@routes.get("/v1/exports/{export_id}/download", allow_head=False)
async def download(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    client = _client(request)
    redirect = await _grant(
        request,
        lambda conn: downloads.record_api_download(
            conn, export_id, ident.tenant, ident.sub, client
        ),
        "api",
    )
    if redirect is None:
        pool = request.app[SERVICES].pool
        export = await exports.get_export(pool, export_id, ident.tenant, ident.sub)
        if export is None:
            raise ExportNotFound()
        raise _why_not(export)
    return redirect


@routes.get("/d/{token}", allow_head=False)
async def link(request: web.Request) -> web.Response:
    """The mailed link. People open it in a browser: a problem is a small page for them (and
    problem+json for anything that does not ask for HTML)."""
    try:
        return await _follow_link(request)
    except ExportdError as exc:
        if "text/html" not in request.headers.get("Accept", ""):
            raise
        return _page(exc)


def _page(error: ExportdError) -> web.Response:
    title, detail = html.escape(error.title), html.escape(error.detail)
    body = (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>"
        '<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto;'
        ' padding: 0 1rem; color: #1f2328">'
        f'<h1 style="font-size: 1.4rem">{title}</h1><p>{detail}.</p>'
        "<p>Ask for the export again in the application you requested it from.</p>"
        "</body></html>"
    )
    return web.Response(
        status=error.status,
        text=body,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


async def _follow_link(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    if not TOKEN.fullmatch(token):
        raise LinkNotFound("this download link is not valid")
    client = _client(request)
    redirect = await _grant(
        request, lambda conn: downloads.record_link_download(conn, token, client), "link"
    )
    if redirect is None:
        state = await downloads.find_link(request.app[SERVICES].pool, token)
        if state is None:
            raise LinkNotFound("this download link is not valid")
        if state.revoked:
            raise LinkRevoked("the export's owner revoked this link")
        raise ExportExpired("the export's file was deleted at the end of its retention")
    return redirect


@routes.post("/v1/exports/{export_id}/revoke-links")
async def revoke_links(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    revoked = await downloads.revoke_links(
        request.app[SERVICES].pool, export_id, ident.tenant, ident.sub
    )
    if revoked is None:
        raise ExportNotFound()
    log.info("export.links_revoked", export_id=str(export_id), links=revoked)
    return web.json_response({"revoked": revoked})


@routes.get("/v1/exports/{export_id}/downloads", allow_head=False)
async def list_downloads(request: web.Request) -> web.Response:
    ident = identity(request)
    export_id = parse_export_id(request)
    limit, after = page_query(request, int)
    pool = request.app[SERVICES].pool
    if await exports.get_export(pool, export_id, ident.tenant, ident.sub) is None:
        raise ExportNotFound()
    rows = await downloads.list_downloads(pool, export_id, after=after, limit=limit + 1)
    return page_response(request, rows, limit, position=lambda r: (r.at, r.id), item=download_json)


def download_json(row: DownloadRow) -> dict[str, Any]:
    return {
        "at": timestamp(row.at),
        "route": row.route,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
    }
