"""The paths of the catalog, this document, and what operators call."""

from __future__ import annotations

from exportd.api.openapi.parts import REQUEST_ID, problems, ref, response
from exportd.api.openapi.requests import Schema


def paths() -> Schema:
    return {
        "/v1/export-types": {
            "get": {
                "summary": "The catalog: each export, its formats and typed parameters",
                "operationId": "listExportTypes",
                "responses": {
                    "200": response("The catalog", ref("ExportTypes")),
                    **problems(401),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "summary": "This document (it lists the catalog, so it needs a token too)",
                "operationId": "openapi",
                "responses": {
                    "200": response("OpenAPI 3.1", {"type": "object"}),
                    **problems(401),
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers",
                "operationId": "healthz",
                "security": [],
                "responses": {"200": response("Alive", ref("Health"))},
            },
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the dependencies it needs answer",
                "operationId": "readyz",
                "security": [],
                "responses": {"200": response("Ready", ref("Ready")), **problems()},
            },
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "operationId": "metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Metrics",
                        "headers": {"X-Request-ID": REQUEST_ID},
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **problems(),
                },
            },
        },
    }
