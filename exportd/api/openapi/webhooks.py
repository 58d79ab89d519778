"""The paths of /v1/webhooks: register, list, read, delete, and each endpoint's deliveries."""

from __future__ import annotations

from typing import Final

from exportd.api.auth import WEBHOOKS_SCOPE
from exportd.api.openapi.parts import (
    JSON,
    NEXT_PAGE,
    page_params,
    path_id,
    problems,
    ref,
    response,
)
from exportd.api.openapi.requests import Schema
from exportd.config import Settings

_WHY: Final = {
    403: f"The token lacks the `{WEBHOOKS_SCOPE}` scope",
    404: "No such webhook for this tenant",
    409: "The tenant has as many webhooks as it may",
}


def paths(settings: Settings) -> Schema:
    webhook_id = path_id("webhook_id")
    return {
        "/v1/webhooks": {
            "post": {
                "summary": "Register an endpoint for the tenant's export events; the answer "
                "holds its signing secret, shown this once",
                "operationId": "createWebhook",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": ref("WebhookRequest")}},
                },
                "responses": {
                    "201": response(
                        "Registered",
                        ref("WebhookCreated"),
                        Location={
                            "required": True,
                            "description": "The webhook's URL",
                            "schema": {"type": "string"},
                        },
                    ),
                    **problems(400, 401, 403, 408, 409, 413, 415, 422, why=_WHY),
                },
            },
            "get": {
                "summary": "The tenant's endpoints",
                "operationId": "listWebhooks",
                "responses": {
                    "200": response("The endpoints", ref("WebhookList")),
                    **problems(401, 403, why=_WHY),
                },
            },
        },
        "/v1/webhooks/{webhook_id}": {
            "get": {
                "summary": "One endpoint",
                "operationId": "getWebhook",
                "parameters": [webhook_id],
                "responses": {
                    "200": response("The endpoint", ref("Webhook")),
                    **problems(401, 403, 404, why=_WHY),
                },
            },
            "delete": {
                "summary": "Delete an endpoint; its pending deliveries go with it",
                "operationId": "deleteWebhook",
                "parameters": [webhook_id],
                "responses": {
                    "204": response("Deleted"),
                    **problems(401, 403, 404, why=_WHY),
                },
            },
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "get": {
                "summary": "The endpoint's deliveries, newest first, with their last attempt",
                "operationId": "listDeliveries",
                "parameters": [webhook_id, *page_params(settings.page_size_max)],
                "responses": {
                    "200": response("A page", ref("DeliveryPage"), **NEXT_PAGE),
                    **problems(400, 401, 403, 404, why=_WHY),
                },
            },
        },
    }
