"""The catalog as clients see it: /v1/export-types and the OpenAPI document built from it."""

from __future__ import annotations

from aiohttp import web

from exportd.api.keys import CATALOG, SETTINGS
from exportd.api.openapi.document import spec
from exportd.api.requests import identity

routes = web.RouteTableDef()


@routes.get("/v1/export-types", allow_head=False)
async def export_types(request: web.Request) -> web.Response:
    identity(request)
    catalog = request.app[CATALOG]
    return web.json_response({"items": [t.describe() for t in catalog.exports.values()]})


@routes.get("/openapi.json", allow_head=False)
async def openapi(request: web.Request) -> web.Response:
    identity(request)  # it lists the catalog: the same policy as /v1/export-types
    return web.json_response(spec(request.app[CATALOG], request.app[SETTINGS]))
