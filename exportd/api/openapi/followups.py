"""The schemas of what follows an export: its downloads, and the tenant's webhooks with their
deliveries."""

from __future__ import annotations

from typing import Final

from exportd.api.openapi.parts import COUNT, MAYBE_TIMESTAMP, TIMESTAMP, ref
from exportd.api.openapi.requests import Schema
from exportd.model import Event


def _page(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


_EVENTS: Final[Schema] = {
    "type": "array",
    "items": {"enum": list(Event)},
    "minItems": 1,
    "uniqueItems": True,
}

WEBHOOK: Final[Schema] = {
    "type": "object",
    "required": ["id", "url", "events", "created_at"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string", "format": "uri"},
        "events": _EVENTS,
        "created_at": TIMESTAMP,
    },
}

FOLLOWUP_SCHEMAS: Final[dict[str, Schema]] = {
    "DownloadLink": {
        "type": "object",
        "required": ["url", "expires_at"],
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "description": "The file, presigned for this request: open it soon, and keep it "
                "nowhere (it needs no token).",
            },
            "expires_at": TIMESTAMP,
        },
    },
    "Revoked": {
        "type": "object",
        "required": ["revoked"],
        "properties": {"revoked": {**COUNT, "description": "Links revoked by this call."}},
    },
    "Download": {
        "type": "object",
        "required": ["at", "route", "client_ip", "user_agent"],
        "properties": {
            "at": TIMESTAMP,
            "route": {"enum": ["api", "link"]},
            "client_ip": {
                "type": ["string", "null"],
                "description": "As seen behind the operator's trusted proxies.",
            },
            "user_agent": {"type": ["string", "null"]},
        },
    },
    "DownloadPage": _page("Download"),
    "WebhookRequest": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
                "description": "http(s); public addresses only (the operator may allow "
                "private ones).",
            },
            "events": {**_EVENTS, "description": "Every event when left out."},
        },
    },
    "Webhook": WEBHOOK,
    "WebhookCreated": {
        "type": "object",
        "required": [*WEBHOOK["required"], "secret"],
        "properties": {
            **WEBHOOK["properties"],
            "secret": {
                "type": "string",
                "pattern": "^whsec_",
                "description": "Verifies the `webhook-signature` of every delivery (Standard "
                "Webhooks). Shown this once: store it.",
            },
        },
    },
    "WebhookList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": ref("Webhook")}},
    },
    "Delivery": {
        "type": "object",
        "required": [
            "id",
            "event",
            "export_id",
            "state",
            "attempts",
            "last_status",
            "last_error",
            "last_at",
            "created_at",
            "delivered_at",
        ],
        "properties": {
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "The `webhook-id` of every attempt: deduplicate on it.",
            },
            "event": {"enum": list(Event)},
            "export_id": {"type": "string", "format": "uuid"},
            "state": {"enum": ["pending", "delivered", "failed"]},
            "attempts": COUNT,
            "last_status": {"type": ["integer", "null"], "description": "HTTP status."},
            "last_error": {"type": ["string", "null"]},
            "last_at": MAYBE_TIMESTAMP,
            "created_at": TIMESTAMP,
            "delivered_at": MAYBE_TIMESTAMP,
        },
    },
    "DeliveryPage": _page("Delivery"),
}
