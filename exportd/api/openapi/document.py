"""The document: every route, parameter, header and answer, with the catalog's exports as
typed request variants."""

from __future__ import annotations

from typing import Any

from exportd.api.openapi import downloads, exports, ops, webhooks
from exportd.api.openapi.schemas import components
from exportd.config import Settings
from exportd.export.catalog import Catalog


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
        "paths": exports.paths(settings)
        | downloads.paths(settings)
        | webhooks.paths(settings)
        | ops.paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": components(catalog),
        },
    }
