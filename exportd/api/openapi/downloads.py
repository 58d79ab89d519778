"""The paths of downloads: the owner's route, the mailed link, revocation and the record."""

from __future__ import annotations

from typing import Final

from exportd.api.openapi.parts import NEXT_PAGE, page_params, path_id, problems, ref, response
from exportd.api.openapi.requests import Schema
from exportd.config import Settings

_NOT_FINISHED: Final = (
    "The export has no file: still queued or running (`export_not_finished`), or it failed "
    "or was canceled (`export_has_no_file`)"
)


def _redirect(description: str, ttl_s: float) -> Schema:
    return {
        **response(
            description,
            Location={
                "required": True,
                "description": f"A presigned URL to the file, valid for {ttl_s:g} s; minted "
                "for this request, never stored",
                "schema": {"type": "string", "format": "uri"},
            },
        ),
    }


def paths(settings: Settings) -> Schema:
    ttl_s = settings.link_ttl.total_seconds()
    return {
        "/v1/exports/{export_id}/download": {
            "get": {
                "summary": "Download the file: a 302 to a short-lived presigned URL (or, with "
                "`Accept: application/json`, that URL as JSON); recorded",
                "operationId": "downloadExport",
                "parameters": [path_id("export_id")],
                "responses": {
                    "200": response(
                        "With `Accept: application/json`: the presigned URL, for a page or "
                        "a script to open",
                        ref("DownloadLink"),
                    ),
                    "302": _redirect("To the file", ttl_s),
                    **problems(401, 404, 409, 410, why={409: _NOT_FINISHED}),
                },
            },
        },
        "/d/{token}": {
            "get": {
                "summary": "The mailed link: valid until the file expires unless revoked; "
                "each use is a 302 to a fresh presigned URL, recorded",
                "operationId": "followLink",
                "security": [],
                "parameters": [
                    {
                        "name": "token",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
                    }
                ],
                "responses": {
                    "302": _redirect("To the file", ttl_s),
                    **problems(
                        404,
                        410,
                        why={
                            404: "No such link",
                            410: "The link was revoked (`link_revoked`) or the file has "
                            "expired (`export_expired`)",
                        },
                    ),
                },
            },
        },
        "/v1/exports/{export_id}/revoke-links": {
            "post": {
                "summary": "Revoke every mailed link to the export (the API route still works)",
                "operationId": "revokeLinks",
                "parameters": [path_id("export_id")],
                "responses": {
                    "200": response("Revoked", ref("Revoked")),
                    **problems(401, 404),
                },
            },
        },
        "/v1/exports/{export_id}/downloads": {
            "get": {
                "summary": "Who downloaded the file, newest first: time, route, address, agent",
                "operationId": "listDownloads",
                "parameters": [path_id("export_id"), *page_params(settings.page_size_max)],
                "responses": {
                    "200": response("A page", ref("DownloadPage"), **NEXT_PAGE),
                    **problems(400, 401, 404),
                },
            },
        },
    }
