"""Webhook delivery against real receivers on 127.0.0.1: signatures that verify, failures as
safe reasons, and the addresses we refuse to reach; plus the URL and address rules."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from exportd.webhooks.outbound import Attempt, Sender
from exportd.webhooks.signing import new_secret, signed_headers
from exportd.webhooks.targets import WebhookUrlInvalid, is_public, parse_target

HUGE = 50 * 1024 * 1024
CHUNK = b"x" * 65536
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook endpoint that records every request reaching it."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.release = asyncio.Event()  # lets /slow answer, so the server can stop
        self.streamed = 0
        self.stream_ended = asyncio.Event()
        app = web.Application(middlewares=[self.record])
        app.router.add_post("/status/{status}", self.answer)
        app.router.add_post("/slow", self.slow)
        app.router.add_post("/huge", self.huge)
        app.router.add_post("/stall", self.stall)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}{path}"

    @web.middleware
    async def record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        return await handler(request)

    async def answer(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["status"]), headers={"Location": "/"})

    async def slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response()

    async def stall(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b"{}")
        await self.release.wait()
        return response

    async def huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(HUGE)})
        await response.prepare(request)
        try:
            while self.streamed < HUGE:
                await response.write(CHUNK)
                self.streamed += len(CHUNK)
        finally:  # a hang-up shows here as a reset or as the handler's cancellation
            self.stream_ended.set()
        return response


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.server.start_server()
    yield receiver
    receiver.release.set()
    await receiver.server.close()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    async with Sender(timeout=timedelta(seconds=10), allow_private=True) as sender:
        yield sender


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_signed_post_arrives_and_verifies(receiver: Receiver, sender: Sender) -> None:
    secret = new_secret()
    body = json.dumps({"type": "export.succeeded", "data": {"id": "e1"}}).encode()
    # Another zone: the library's sign() would read this wall-clock time as UTC.
    now = datetime.now(timezone(timedelta(hours=-7)))
    headers = signed_headers(secret, message_id="msg_1", timestamp=now, body=body)

    attempt = await sender.post(receiver.url("/status/200"), body, headers)

    assert attempt == Attempt(200, None, retryable=False)
    assert attempt.delivered
    [seen] = receiver.seen
    assert seen.body == body
    assert Webhook(secret).verify(seen.body, seen.headers) == json.loads(body)
    assert seen.headers["webhook-id"] == "msg_1"
    assert seen.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == "exportd-webhooks/1"


def test_secrets_are_fresh_and_timestamps_aware() -> None:
    secret = new_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret
    with pytest.raises(ValueError, match="aware"):
        signed_headers(secret, message_id="m", timestamp=datetime(2025, 1, 1), body=b"{}")
    at = datetime(2025, 6, 1, 12, 0, 0, 900_000, tzinfo=UTC)
    stamp = signed_headers(secret, message_id="m", timestamp=at, body=b"{}")["webhook-timestamp"]
    assert stamp == str(int(at.timestamp()))  # whole seconds


async def test_a_server_error_is_a_retryable_failure(receiver: Receiver, sender: Sender) -> None:
    attempt = await sender.post(receiver.url("/status/500"), b"{}", {})

    assert attempt == Attempt(500, "HTTP 500", retryable=True)
    assert not attempt.delivered


async def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    async with Sender(timeout=timedelta(seconds=0.3), allow_private=True) as sender:
        attempt = await sender.post(receiver.url("/slow"), b"{}", {})

    assert attempt == Attempt(None, "timed out after 0.3 s", retryable=True)


async def test_a_body_that_stalls_after_the_status_does_not_matter(receiver: Receiver) -> None:
    async with Sender(timeout=timedelta(seconds=0.3), allow_private=True) as sender:
        attempt = await sender.post(receiver.url("/stall"), b"{}", {})

    assert attempt.delivered


async def test_a_hang_up_is_a_retryable_failure(sender: Sender) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        attempt = await sender.post(f"http://127.0.0.1:{port}/hook", b"{}", {})

    assert attempt == Attempt(None, "connection closed before an answer", retryable=True)


async def test_a_redirect_is_not_followed(receiver: Receiver, sender: Sender) -> None:
    attempt = await sender.post(receiver.url("/status/302"), b"{}", {})

    assert attempt == Attempt(302, "redirects are not followed", retryable=True)
    assert [seen.path for seen in receiver.seen] == ["/status/302"]


async def test_a_huge_answer_is_cut_off(receiver: Receiver, sender: Sender) -> None:
    attempt = await sender.post(receiver.url("/huge"), b"{}", {})

    assert attempt.delivered
    await asyncio.wait_for(receiver.stream_ended.wait(), timeout=10)
    assert receiver.streamed < HUGE


async def test_a_closed_port_is_a_retryable_failure(sender: Sender) -> None:
    attempt = await sender.post(f"http://127.0.0.1:{closed_port()}/hook", b"{}", {})

    assert attempt == Attempt(None, "connection refused", retryable=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0x7f.1"])
async def test_private_addresses_are_refused_before_any_request(
    receiver: Receiver, host: str
) -> None:
    async with Sender(timeout=timedelta(seconds=10), allow_private=False) as sender:
        attempt = await sender.post(receiver.url("/status/200", host), b"{}", {})

    assert attempt == Attempt(None, "address not allowed: loopback", retryable=False)
    assert receiver.seen == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_reached_when_allowed(
    receiver: Receiver, sender: Sender, host: str
) -> None:
    attempt = await sender.post(receiver.url("/status/200", host), b"{}", {})

    assert attempt.delivered
    assert len(receiver.seen) == 1


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://example.com/hook", "https://example.com/hook"),
        ("HTTPS://Example.COM:443/hook?a=1", "https://example.com/hook?a=1"),
        ("http://93.184.216.34/hook", "http://93.184.216.34/hook"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://[2606:4700::1]:8443/x", "https://[2606:4700::1]:8443/x"),
    ],
)
def test_acceptable_urls_come_back_normalised(url: str, normalised: str) -> None:
    assert parse_target(url, allow_private=False) == normalised


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http:///hook", "no host"),
        ("https://user:pass@example.com/", "user name or password"),
        ("https://example.com/hook#part", "fragment"),
        ("https://example.com:0/", "between 1 and 65535"),
        ("https://example.com:65536/", "not valid"),
        ("https://example.com:port/", "not valid"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/\nhook", "spaces or control characters"),
        ("https://exa<mple.com/", "not a valid name"),
        ("http://127.1/", "four decimal numbers"),
        ("http://0x7f.1/", "four decimal numbers"),
        ("http://10.0.0.1./", "four decimal numbers"),
        ("http://10.0.0.1/", "not private"),
        ("http://169.254.169.254/latest/meta-data", "not link-local"),
        ("http://[::1]/", "not loopback"),
        ("http://[::ffff:127.0.0.1]/", "not loopback"),
        ("http://100.64.0.1/", "not shared (CGNAT)"),
        ("http://localhost:8080/", "localhost"),
        ("http://a.localhost/", "localhost"),
        ("http://LOCALHOST./", "localhost"),
        ("https://example.com/" + "a" * 2029, "longer than 2048"),
    ],
)
def test_unacceptable_urls_are_refused(url: str, detail: str) -> None:
    with pytest.raises(WebhookUrlInvalid, match=re.escape(detail)):
        parse_target(url, allow_private=False)


def test_a_url_of_2048_characters_is_the_longest() -> None:
    url = "https://example.com/" + "a" * 2028

    assert parse_target(url, allow_private=False) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://localhost:8080/", "http://[::1]/"])
def test_private_hosts_pass_when_allowed(url: str) -> None:
    assert parse_target(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["ftp://10.0.0.1/", "http://u@10.0.0.1/", "http://127.1/"])
def test_allowing_private_hosts_relaxes_nothing_else(url: str) -> None:
    with pytest.raises(WebhookUrlInvalid):
        parse_target(url, allow_private=True)


PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700::1111"]
# 93.184.216.34 inside: IPv4-mapped, 6to4 and NAT64 (64:ff9b::/96)
PUBLIC += ["::ffff:93.184.216.34", "2002:5db8:d822::", "64:ff9b::5db8:d822"]
NOT_PUBLIC = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254"]
NOT_PUBLIC += ["0.0.0.0", "100.64.0.1", "100.127.255.255", "224.0.0.1", "240.0.0.1"]
NOT_PUBLIC += ["255.255.255.255", "192.0.2.1", "::", "::1", "fe80::1", "fc00::1", "ff02::1"]
NOT_PUBLIC += ["2001:db8::1"]
# 127.0.0.1, 10.0.0.1 and 169.254.169.254 inside: IPv4-mapped, 6to4 and NAT64
NOT_PUBLIC += ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe"]


@pytest.mark.parametrize("address", PUBLIC)
def test_global_unicast_is_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_everything_else_is_not(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
