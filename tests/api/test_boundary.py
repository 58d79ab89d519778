"""The HTTP boundary as a hostile client meets it: bytes aiohttp cannot parse, bodies that
stall or stop, headers that are not ASCII, identifiers that are not ours to echo. exportd is
served here by its own runner (exportd/api/serving.py), as `exportd serve` does."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from exportd.api.requests import MAX_CURSOR
from exportd.api.serving import listen, start
from exportd.config import Settings
from exportd.export.catalog import Catalog
from exportd.server import build_app
from tests.support.tokens import auth

ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}
BODY_TIMEOUT = timedelta(milliseconds=500)


@pytest.fixture
async def served(settings: Settings, catalog: Catalog) -> AsyncIterator[tuple[str, int]]:
    """exportd (API role) behind its own runner on a free loopback port: (host, port)."""
    app = build_app(replace(settings, body_timeout=BODY_TIMEOUT), catalog, role="api")
    sock = listen("127.0.0.1", 0)
    runner = await start(app, sock)
    try:
        yield sock.getsockname()[:2]
    finally:
        await runner.cleanup()


async def exchange(address: tuple[str, int], request: bytes, *, then_close: bool = False) -> bytes:
    """Send raw bytes, read the whole answer (the server closes after an error)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        if then_close:
            writer.close()
            return b""
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


def problem_of(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body)


async def test_oversized_headers_get_a_431_problem_not_plain_text(
    served: tuple[str, int],
) -> None:
    answer = await exchange(
        served, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    )

    status, headers, body = problem_of(answer)
    assert status == 431
    assert headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "headers_too_large"
    assert headers["server"] == "exportd"


async def test_a_request_that_is_not_http_gets_a_400_problem(served: tuple[str, int]) -> None:
    status, _, body = problem_of(await exchange(served, b"\x16\x03\x01\x02\x00junk\r\n\r\n"))

    assert status == 400
    assert body["code"] == "malformed_request"


async def test_a_body_that_stalls_is_answered_408(served: tuple[str, int]) -> None:
    head = (
        "POST /v1/exports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth()['Authorization']}\r\nContent-Length: 100\r\n\r\n"
    )

    status, _, body = problem_of(await exchange(served, head.encode() + b'{"export":'))

    assert status == 408
    assert body["code"] == "request_timeout"


async def test_a_client_hanging_up_mid_body_is_not_an_outage(
    served: tuple[str, int], settings: Settings
) -> None:
    head = (
        "POST /v1/exports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth()['Authorization']}\r\nContent-Length: 100\r\n\r\n"
    )
    await exchange(served, head.encode() + b'{"export":', then_close=True)

    async with aiohttp.ClientSession(f"http://{served[0]}:{served[1]}") as http:

        async def counted() -> str:
            async with http.get("/metrics") as response:
                return await response.text()

        async with asyncio.timeout(10):
            # The server notices the hang-up on its own time: poll its metrics.
            while 'route="/v1/exports"' not in (metrics := await counted()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    hang_up = 'exportd_http_requests_total{method="POST",route="/v1/exports",status="400"} 1.0'
    assert hang_up in metrics
    assert 'status="503"' not in metrics


async def test_a_non_utf8_byte_in_authorization_is_a_401(served: tuple[str, int]) -> None:
    request = (
        b"GET /v1/exports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\r\n\r\n"
    )

    status, headers, body = problem_of(await exchange(served, request))

    assert status == 401
    assert body["code"] == "unauthorized"
    assert headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("given", "echoed"),
    [("req-42.a:b", True), ("x" * 129, False), ("two words", False), ("a\u00e9", False)],
)
async def test_a_request_id_is_echoed_only_when_short_and_plain(
    make_client: Callable[..., Any], given: str, echoed: bool
) -> None:
    client = await make_client(role="api")

    response = await client.get("/healthz", headers={"X-Request-ID": given})

    assert (response.headers["X-Request-ID"] == given) is echoed
    assert len(response.headers["X-Request-ID"]) <= 128


async def test_a_huge_integer_anywhere_in_the_body_is_a_422(
    make_client: Callable[..., Any],
) -> None:
    client = await make_client(role="api")
    body = b'{"export": "numbers", "params": {"rows": ' + b"9" * 5000 + b"}}"

    response = await client.post(
        "/v1/exports", data=body, headers=auth() | {"Content-Type": "application/json"}
    )

    assert response.status == 422
    assert (await response.json())["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("cursor", "code"),
    [
        # As deep as a cursor of the longest accepted length (512) can nest.
        (base64.urlsafe_b64encode(b"[" * 192 + b"]" * 192).decode(), "invalid_cursor"),
        (base64.urlsafe_b64encode(b'[7, {"a": 1}]').decode(), "invalid_cursor"),
        ("A" * (MAX_CURSOR + 1), "bad_request"),
    ],
)
async def test_a_cursor_we_did_not_issue_is_a_400(
    make_client: Callable[..., Any], cursor: str, code: str
) -> None:
    client = await make_client(role="api")

    response = await client.get("/v1/exports", params={"cursor": cursor}, headers=auth())

    assert response.status == 400
    assert (await response.json())["code"] == code


async def test_a_wait_preference_that_is_not_a_number_is_ignored(
    make_client: Callable[..., Any],
) -> None:
    client = await make_client(role="api")
    created = await (await client.post("/v1/exports", json=ORDERS, headers=auth())).json()

    response = await client.get(
        f"/v1/exports/{created['id']}", headers=auth() | {"Prefer": "wait=soon"}
    )

    assert response.status == 200
    assert "Preference-Applied" not in response.headers


async def test_made_up_methods_share_one_metrics_series(served: tuple[str, int]) -> None:
    # HTTP parsers know dozens of methods (WebDAV's among them); each label value would be a
    # series kept for good.
    for method in (b"PROPFIND", b"PURGE", b"MKCOL"):
        status, _, _ = problem_of(
            await exchange(
                served, method + b" /v1/exports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
        )
        assert status == 405
    status, _, _ = problem_of(
        await exchange(served, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    )
    assert status == 404

    async with (
        aiohttp.ClientSession(f"http://{served[0]}:{served[1]}") as http,
        http.get("/metrics") as response,
    ):
        metrics = await response.text()
    # The route is the resource whose path matched (aiohttp's 405 names none).
    other = 'exportd_http_requests_total{method="other",route="/v1/exports",status="405"} 3.0'
    assert other in metrics
    assert "PROPFIND" not in metrics
    assert 'exportd_http_requests_total{method="GET",route="unmatched",status="404"}' in metrics
