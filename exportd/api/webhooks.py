"""/v1/webhooks: a tenant's endpoints (register, list, delete) and each one's deliveries.

An endpoint hears about every export of its tenant, so managing them takes the
`exportd:webhooks` scope, not just a user's token. The signing secret is shown once, in the
answer to the registration."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

import msgspec
import structlog
from aiohttp import web

from exportd.api.auth import WEBHOOKS_SCOPE, Identity
from exportd.api.keys import SERVICES, SETTINGS
from exportd.api.render import page_query, page_response
from exportd.api.requests import identity, read_json
from exportd.db import webhooks
from exportd.db.rows import DeliveryRow, WebhookRow
from exportd.errors import Forbidden, InvalidRequest, TooManyWebhooks, WebhookNotFound
from exportd.model import Event
from exportd.public import timestamp
from exportd.webhooks.signing import new_secret
from exportd.webhooks.targets import parse_target

log = structlog.get_logger(__name__)

MAX_URL: Final = 2048

routes = web.RouteTableDef()


class WebhookRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The body of POST /v1/webhooks."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_URL)]
    # Every event when left out.
    events: Annotated[list[Event], msgspec.Meta(min_length=1)] | None = None


def _manager(request: web.Request) -> Identity:
    ident = identity(request)
    if WEBHOOKS_SCOPE not in ident.scopes:
        raise Forbidden(f"managing webhooks needs a token with the {WEBHOOKS_SCOPE} scope")
    return ident


def _webhook_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["webhook_id"])
    except ValueError:
        raise WebhookNotFound() from None


def webhook_json(row: WebhookRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "url": row.url,
        "events": list(row.events),
        "created_at": timestamp(row.created_at),
    }


def delivery_json(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "event": row.event,
        "export_id": str(row.export_id),
        "state": row.state,
        "attempts": row.attempts,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "last_at": timestamp(row.last_at),
        "created_at": timestamp(row.created_at),
        "delivered_at": timestamp(row.delivered_at),
    }


@routes.post("/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    ident = _manager(request)
    body = await read_json(request)
    try:
        wanted = msgspec.convert(body, WebhookRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc)) from None
    settings = request.app[SETTINGS]
    url = parse_target(wanted.url, allow_private=settings.webhook_allow_private)
    if wanted.events is not None and len(set(wanted.events)) != len(wanted.events):
        raise InvalidRequest("events must not repeat")
    events = sorted(str(event) for event in wanted.events or Event)
    secret = new_secret()
    try:
        row = await webhooks.create_webhook(
            request.app[SERVICES].pool,
            tenant=ident.tenant,
            created_by=ident.sub,
            url=url,
            events=events,
            secret=secret,
            cap=webhooks.MAX_PER_TENANT,
        )
    except webhooks.TooManyWebhooks:
        raise TooManyWebhooks(
            f"a tenant may register {webhooks.MAX_PER_TENANT} webhooks; delete one first"
        ) from None
    log.info("webhook.created", webhook_id=str(row.id), events=events)
    return web.json_response(
        {**webhook_json(row), "secret": secret},
        status=201,
        headers={"Location": f"/v1/webhooks/{row.id}", "Cache-Control": "no-store"},
    )


@routes.get("/v1/webhooks", allow_head=False)
async def list_webhooks(request: web.Request) -> web.Response:
    ident = _manager(request)
    rows = await webhooks.list_webhooks(request.app[SERVICES].pool, ident.tenant)
    return web.json_response({"items": [webhook_json(row) for row in rows]})


@routes.get("/v1/webhooks/{webhook_id}", allow_head=False)
async def get_webhook(request: web.Request) -> web.Response:
    ident = _manager(request)
    row = await webhooks.get_webhook(request.app[SERVICES].pool, _webhook_id(request), ident.tenant)
    if row is None:
        raise WebhookNotFound()
    return web.json_response(webhook_json(row))


@routes.delete("/v1/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    ident = _manager(request)
    webhook_id = _webhook_id(request)
    if not await webhooks.delete_webhook(request.app[SERVICES].pool, webhook_id, ident.tenant):
        raise WebhookNotFound()
    log.info("webhook.deleted", webhook_id=str(webhook_id))
    return web.Response(status=204)


@routes.get("/v1/webhooks/{webhook_id}/deliveries", allow_head=False)
async def list_deliveries(request: web.Request) -> web.Response:
    ident = _manager(request)
    webhook_id = _webhook_id(request)
    limit, after = page_query(request, uuid.UUID)
    pool = request.app[SERVICES].pool
    if await webhooks.get_webhook(pool, webhook_id, ident.tenant) is None:
        raise WebhookNotFound()
    rows = await webhooks.list_deliveries(pool, webhook_id, after=after, limit=limit + 1)
    return page_response(
        request, rows, limit, position=lambda r: (r.created_at, r.id), item=delivery_json
    )
