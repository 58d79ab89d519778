"""The web page: GET / and its static assets, read once, sent with strict security headers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from exportd.api.render import if_none_match
from exportd.api.requests import header
from exportd.errors import NotFound
from exportd.web import STATIC

# Nothing but this origin's own files and API: no inline code, no frames, no form posts. A
# download navigates the page to the store's presigned URL: a top-level navigation, which no
# directive here governs (connect-src covers what scripts fetch, and that stays 'self').
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Revalidate every time (the names carry no content hash); the ETag makes that cheap.
    "Cache-Control": "no-cache",
}
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
INDEX: Final = "index.html"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(folder: Path = STATIC) -> dict[str, Asset]:
    """Every servable file of the folder by name: read once, so a request touches no disk."""
    assets = {}
    for path in sorted(folder.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        assets[path.name] = Asset(body, content_type, f'"{digest}"')
    return assets


def answer(request: web.Request, asset: Asset) -> web.Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if if_none_match(header(request, "If-None-Match"), asset.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers=headers | {"Content-Type": asset.content_type})


def routes(folder: Path = STATIC) -> list[web.RouteDef]:
    """GET / (the page) and GET /static/{name} (its scripts and styles)."""
    assets = load_assets(folder)
    index = assets.pop(INDEX)

    async def page(request: web.Request) -> web.Response:
        return answer(request, index)

    async def static(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            raise NotFound("no such file")
        return answer(request, asset)

    return [web.get("/", page), web.get("/static/{name}", static)]
