"""A replica's log as an operator reads it: one JSON object a line, an access line per
request, events that say what happened, and never a secret, token or signature."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp

from exportd.config import Settings
from tests.support.client import (
    create,
    download,
    eventually,
    redirect,
    wait_for,
    wait_until,
)
from tests.support.processes import ExportdProcess
from tests.support.tokens import auth, make_token

SLOW = {"export": "slow", "params": {"rows": 60_000, "pause_ms": 100}}


def entries(replica: ExportdProcess) -> list[dict[str, Any]]:
    lines = [line for line in replica.log().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # a line that is not JSON fails here
    assert all(isinstance(e, dict) and "event" in e and "level" in e for e in parsed), lines
    return parsed


async def test_a_replicas_log_is_json_events_with_no_secret_in_it(
    replicas: Callable[..., Any], settings: Settings
) -> None:
    (replica,) = await replicas(1, EXPORTD_LOG_LEVEL="debug")
    token = make_token()
    async with aiohttp.ClientSession(base_url=replica.url) as http:
        built = await create(http, {"export": "numbers", "params": {"rows": 10}})
        done = await wait_until(http, built["id"])
        location = await redirect(http, done["result"]["download_url"], auth())
        await download(location)  # presigned: a signature in a URL
        failed = await wait_until(http, (await create(http, {"export": "broken"}))["id"])
        slow = await create(http, SLOW)
        await wait_for(http, slow["id"], lambda e: e["status"] == "running")
        async with http.post(f"/v1/exports/{slow['id']}/cancel", headers=auth()) as r:
            assert r.status == 200
        async with http.get("/v1/exports", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401

    def canceled() -> bool:
        return any(e["event"] == "job.canceled" for e in entries(replica))

    await eventually(canceled, within=30)
    log = entries(replica)
    text = replica.log()

    secrets = {
        "the JWT secret": settings.jwt_secret,
        "a bearer token": token,
        "the S3 secret key": settings.s3_secret_access_key,
        "a presigned URL's signature": "X-Amz-Signature",
        "a presigned URL": location.split("?")[0],
    }
    assert [what for what, secret in secrets.items() if secret in text] == []
    access = [e for e in log if e["event"] == "http.request"]
    assert {(e["method"], e["route"], e["status"]) for e in access} >= {
        ("POST", "/v1/exports", 202),
        ("GET", "/v1/exports/{export_id}", 200),
        ("POST", "/v1/exports/{export_id}/cancel", 200),
        ("GET", "/v1/exports", 401),
    }
    assert all(e["request_id"] and e["duration_ms"] >= 0 for e in access)
    # The failure is logged with its detail under the id the owner was shown.
    failure = next(e for e in log if e.get("error_id") == failed["error"]["id"])
    assert failure["event"] == "job.failed" and "division by zero" in failure["error"]
    # A user's cancel is news, not a fault.
    assert next(e for e in log if e["event"] == "job.canceled")["level"] == "info"
    assert not [e for e in log if e["event"] == "job.lease_lost"]
    assert any(e["event"] == "server.listening" for e in log)
