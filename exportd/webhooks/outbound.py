"""One delivery attempt: a POST to a tenant's endpoint whose every failure becomes a short reason
the tenant may read. Addresses are checked where the connector gets them, after DNS, so a name
that later resolves somewhere else (DNS rebinding) is checked again."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from exportd.webhooks.targets import literal_address, refusal

_CONNECT_ERRORS: Final = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
}


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None  # the receiver's HTTP status, None when there was no answer
    error: str | None  # None when delivered; else a short reason safe to show the tenant
    retryable: bool  # False only when the address is refused: another try goes the same way

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class AddressNotAllowed(OSError):
    """The host has no address we will connect to; `reason` says what kind it has."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PublicResolver(AbstractResolver):
    """aiohttp's threaded resolver with non-public addresses dropped: the connector connects
    only to what this returns."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        allowed: list[ResolveResult] = []
        refused: list[str] = []
        for result in await self._inner.resolve(host, port, family):
            reason = refusal(ipaddress.ip_address(result["host"]))
            if reason is None:
                allowed.append(result)
            else:
                refused.append(reason)
        if refused and not allowed:
            raise AddressNotAllowed(refused[0])
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class Sender:
    """POSTs to webhook endpoints: one aiohttp ClientSession for the process (open/close via
    `async with Sender(...) as sender`)."""

    def __init__(
        self,
        *,
        timeout: timedelta,
        allow_private: bool,
        max_response_bytes: int = 64 * 1024,
        user_agent: str = "exportd-webhooks/1",
    ) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        self._max_response_bytes = max_response_bytes
        self._user_agent = user_agent
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._resolver = aiohttp.ThreadedResolver() if self._allow_private else PublicResolver()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=self._resolver),
            timeout=aiohttp.ClientTimeout(total=self._timeout.total_seconds()),
            headers={"User-Agent": self._user_agent},
            trust_env=False,  # a proxy from the environment would connect where we cannot check
            cookie_jar=aiohttp.DummyCookieJar(),  # one tenant's cookies are not another's
            auto_decompress=False,  # we read a little of the body only to drop it
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()  # the connector closes only resolvers it made
        self._session = self._resolver = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Attempt:
        """POST `body` to `url`; every failure, the network's included, comes back as an Attempt."""
        try:
            target = URL(url)
        except ValueError:
            return Attempt(None, "invalid URL", retryable=True)
        try:
            status = await self._send(target, body, headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return self._failure(exc)
        if 200 <= status < 300:
            return Attempt(status, None, retryable=False)
        if 300 <= status < 400:
            return Attempt(status, "redirects are not followed", retryable=True)
        return Attempt(status, f"HTTP {status}", retryable=True)

    async def _send(self, target: URL, body: bytes, headers: Mapping[str, str]) -> int:
        if self._session is None:
            raise RuntimeError("use the Sender in `async with`")
        # aiohttp connects to an IP literal without asking the resolver, so check it here.
        address = literal_address(target.host or "")
        if not self._allow_private and address is not None and (reason := refusal(address)):
            raise AddressNotAllowed(reason)
        async with self._session.post(
            target,
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            allow_redirects=False,
        ) as response:
            # The status is the answer; a body that breaks off or is slow does not change it.
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                await _read_some(response.content, self._max_response_bytes)
            return response.status

    def _failure(self, exc: Exception) -> Attempt:
        cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
        if isinstance(cause, AddressNotAllowed):
            return Attempt(None, f"address not allowed: {cause.reason}", retryable=False)
        return Attempt(None, self._reason(exc), retryable=True)

    def _reason(self, exc: Exception) -> str:
        # Most specific first: aiohttp's errors subclass one another and OSError.
        if isinstance(exc, TimeoutError):
            return f"timed out after {self._timeout.total_seconds():g} s"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return "TLS certificate not accepted"
        if isinstance(exc, aiohttp.ClientSSLError):
            return "TLS handshake failed"
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return f"could not resolve {exc.host}"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return "connection closed before an answer"
        if isinstance(exc, aiohttp.ClientResponseError):
            return "invalid HTTP response"
        if isinstance(exc, aiohttp.InvalidURL):
            return "invalid URL"
        if isinstance(exc, OSError) and exc.errno in _CONNECT_ERRORS:
            return _CONNECT_ERRORS[exc.errno]
        if isinstance(exc, aiohttp.ClientConnectorError):
            return "could not connect"
        return "request failed"


async def _read_some(content: aiohttp.StreamReader, limit: int) -> None:
    """Read up to `limit` bytes: a short answer leaves the connection reusable, and an endpoint
    that streams on is cut off (leaving the rest unread closes the connection)."""
    remaining = limit
    while remaining > 0 and (chunk := await content.read(remaining)):
        remaining -= len(chunk)
