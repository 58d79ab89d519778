"""What the client says of a failed connection, and how long it waits before trying again.

aiohttp is imported inside the functions that need it: the commands that never connect
start without it."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S: Final = 10.0
READ_TIMEOUT_S: Final = 60.0


def transient() -> tuple[type[BaseException], ...]:
    """What a dropped connection, a refused one, a timeout or a cut-off answer raise."""
    import aiohttp

    return (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what a connection error names (never a signed query)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words, without aiohttp's internals (`ssl:default`,
    the connect call's tuple)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        error = exc.certificate_error
        return f"TLS certificate not trusted: {getattr(error, 'verify_message', None) or error}"
    if isinstance(exc, aiohttp.ClientSSLError):
        error = exc.os_error
        return f"TLS failed: {getattr(error, 'reason', None) or error}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"unknown host ({exc.os_error.strerror or 'not found'})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"no connection within {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts, asyncio's
        return "timed out waiting for an answer"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before the answer came"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(exc, aiohttp.ClientConnectorError):
        exc = exc.os_error
    if isinstance(exc, OSError):
        return os.strerror(exc.errno) if exc.errno else exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff: attempt n waits up to min(cap, base * 2**n) seconds."""

    retries: int = 5
    base_s: float = 0.5
    cap_s: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap_s)
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
