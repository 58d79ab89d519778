"""The API's OpenAPI 3.1 description, with the catalog's exports and their parameters."""

from __future__ import annotations

from typing import Any, Final

from exportd.api.intake import MAX_FILE_NAME
from exportd.api.requests import MAX_IDEMPOTENCY_KEY
from exportd.config import Settings
from exportd.export.catalog import Catalog
from exportd.export.formats import COMPRESSIONS, FORMATS
from exportd.model import Status

_PARAM_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "string": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "date": {"type": "string", "format": "date"},
    "timestamp": {"type": "string", "format": "date-time"},
    "bool": {"type": "boolean"},
    "enum": {"type": "string"},
}
_PROBLEM: Final = {"$ref": "#/components/responses/Problem"}
_ID: Final = {
    "name": "export_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _export_request(catalog: Catalog) -> dict[str, Any]:
    variants = []
    for export in catalog.exports.values():
        properties: dict[str, Any] = {}
        for p in export.params:
            schema = dict(_PARAM_SCHEMAS[p.type])
            if p.values:
                schema["enum"] = list(p.values)
            if p.description:
                schema["description"] = p.description
            properties[p.name] = schema
        variants.append(
            {
                "title": export.name,
                "type": "object",
                "required": ["export"],
                "properties": {
                    "export": {"const": export.name, "description": export.title},
                    "params": {
                        "type": "object",
                        "properties": properties,
                        "required": [p.name for p in export.params if p.required],
                        "additionalProperties": False,
                    },
                    "format": {"enum": list(export.formats), "default": "csv"},
                    "compression": {"enum": list(COMPRESSIONS), "default": "none"},
                    "file_name": {"type": "string", "maxLength": MAX_FILE_NAME},
                    "recipient": {"type": "string", "format": "email"},
                    "csv": {
                        "type": "object",
                        "properties": {
                            "header": {"type": "boolean", "default": True},
                            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                            "bom": {"type": "boolean", "default": False},
                        },
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            }
        )
    return {"oneOf": variants}


def spec(catalog: Catalog, settings: Settings) -> dict[str, Any]:
    export_response = {
        "description": "The export",
        "headers": {"ETag": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Export"}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "exportd", "version": "1"},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/exports": {
                "post": {
                    "summary": "Ask for an export; built in the background",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ExportRequest"}
                            }
                        },
                    },
                    "responses": {"202": export_response, "4XX": _PROBLEM},
                },
                "get": {
                    "summary": "The caller's exports, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": settings.page_size_max,
                            },
                        },
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "status", "in": "query", "schema": {"enum": list(Status)}},
                    ],
                    "responses": {
                        "200": {
                            "description": "A page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "items": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Export"},
                                            },
                                            "next_cursor": {"type": ["string", "null"]},
                                        },
                                    }
                                }
                            },
                        },
                        "4XX": _PROBLEM,
                    },
                },
            },
            "/v1/exports/{export_id}": {
                "get": {
                    "summary": "One export; long-polls with ?wait=N or Prefer: wait=N",
                    "parameters": [
                        _ID,
                        {
                            "name": "wait",
                            "in": "query",
                            "description": "seconds; capped at the server's maximum",
                            "schema": {"type": "number", "minimum": 0},
                        },
                        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": export_response,
                        "304": {"description": "Unchanged"},
                        "4XX": _PROBLEM,
                    },
                },
            },
            "/v1/exports/{export_id}/cancel": {
                "post": {
                    "summary": "Cancel a queued or running export",
                    "parameters": [_ID],
                    "responses": {"200": export_response, "4XX": _PROBLEM},
                },
            },
            "/v1/export-types": {
                "get": {
                    "summary": "The catalog",
                    "responses": {"200": {"description": "Export types"}},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "ExportRequest": _export_request(catalog),
                "Export": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "status": {"enum": list(Status)},
                        "format": {"enum": list(FORMATS)},
                        "progress": {"type": "object"},
                        "error": {"type": ["object", "null"]},
                        "result": {"type": ["object", "null"]},
                    },
                },
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["code"],
                                "properties": {
                                    "code": {"type": "string"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "detail": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
