"""An async client for exportd's HTTP API: typed calls over one aiohttp session, problems as
`Problem`, and retries with full-jitter backoff on connection errors and 502/503/504.

Every call it retries is safe to repeat: reads, cancel (canceling twice is fine), and create,
which always carries an Idempotency-Key, so a repeated POST answers with the same export.

aiohttp (a third of a second to import, most of it the TLS contexts it makes at import) is
imported when the client opens, not before: a usage or configuration error, --help, or a
file the command will not overwrite, is told without waiting for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar
from urllib.parse import quote, urljoin

from exportd.client.config import Target
from exportd.client.errors import Problem, Unreachable
from exportd.client.network import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    Backoff,
    reason,
    transient,
)

if TYPE_CHECKING:
    import aiohttp

RETRY_STATUSES: Final = frozenset({502, 503, 504})
LONG_POLL_S: Final = 25.0

T = TypeVar("T")


def user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"exportd-cli/{version('exportd')}"
    except PackageNotFoundError:
        return "exportd-cli"


@dataclass(frozen=True, slots=True)
class Answer:
    """An API answer: status, headers and the parsed JSON body (None for a 304 or no body)."""

    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True, slots=True)
class Versioned:
    """An export as last read, with its ETag (for If-None-Match) and whether a create replayed."""

    export: dict[str, Any]
    etag: str | None
    replayed: bool = False


class Retryable(Exception):
    """An answer worth another try (502/503/504), with its Retry-After if it gave one."""

    def __init__(self, problem: Problem, retry_after: float | None) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.retry_after = retry_after


def problem_of(status: int, reason: str, raw: bytes) -> Problem:
    """The answer as a Problem: its problem+json, or what little a proxy's error page says."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = raw.decode(errors="replace").strip().splitlines()
        body = {"title": reason or f"HTTP {status}", "detail": text[0][:200] if text else None}
    return Problem(status, body)


def parsed_json(raw: bytes) -> Any:
    """A successful answer's JSON body (None when empty)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise Unreachable("the server answered with something that is not JSON") from None


def retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


class Client:
    """exportd's API for one server and token. Use as `async with Client(target) as api:`."""

    def __init__(self, target: Target, *, backoff: Backoff | None = None) -> None:
        self.target = target
        self.backoff = backoff or Backoff()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        # No default Authorization header: the token goes only to exportd, never to the
        # storage a download redirects to.
        import aiohttp

        self._session = aiohttp.ClientSession(headers={"User-Agent": user_agent()})
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the client as `async with`"
        return self._session

    def url(self, path: str) -> str:
        return f"{self.target.url}{path}"

    async def retrying(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        where: Callable[[], str] | None = None,
    ) -> T:
        """`attempt()` until it succeeds, retrying transient failures with backoff. A
        connection that keeps failing is reported as one to `where()` (exportd's URL by
        default)."""
        retry_on = transient()
        for n in range(self.backoff.retries + 1):
            last = n == self.backoff.retries
            try:
                return await attempt()
            except Retryable as exc:
                if last:
                    raise Unreachable(f"{what}: {exc.problem}") from None
                await asyncio.sleep(self.backoff.delay(n, exc.retry_after))
            except retry_on as exc:
                if last:
                    server = where() if where else self.target.url
                    raise Unreachable(f"cannot reach {server}: {reason(exc)}") from None
                await asyncio.sleep(self.backoff.delay(n))
        raise AssertionError("unreachable")  # the loop returns or raises

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        read_timeout_s: float = READ_TIMEOUT_S,
        ok: tuple[int, ...] = (200,),
    ) -> Answer:
        """One API call (retried); a Problem for any status outside `ok`."""
        import aiohttp

        sent = {"Authorization": f"Bearer {self.target.token}", **(headers or {})}
        timeout = aiohttp.ClientTimeout(connect=CONNECT_TIMEOUT_S, sock_read=read_timeout_s)

        async def attempt() -> Answer:
            async with self.session.request(
                method,
                self.url(path),
                json=body,
                headers=sent,
                params=params,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                if response.status in ok:
                    return Answer(response.status, response.headers, parsed_json(raw))
                problem = problem_of(response.status, response.reason or "", raw)
                if response.status in RETRY_STATUSES:
                    raise Retryable(problem, retry_after(response.headers))
                raise problem

        return await self.retrying(f"{method} {path}", attempt)

    async def create(self, request: Mapping[str, Any], *, idempotency_key: str) -> Versioned:
        answer = await self.call(
            "POST",
            "/v1/exports",
            body=dict(request),
            headers={"Idempotency-Key": idempotency_key},
            ok=(202,),
        )
        replayed = answer.headers.get("Idempotent-Replayed", "").lower() == "true"
        return Versioned(answer.body, answer.headers.get("ETag"), replayed)

    async def get(self, export_id: str) -> Versioned:
        answer = await self.call("GET", f"/v1/exports/{quote(export_id, safe='')}")
        return Versioned(answer.body, answer.headers.get("ETag"))

    async def poll(
        self, export_id: str, *, etag: str | None, wait_s: float = LONG_POLL_S
    ) -> Versioned | None:
        """Long-poll: the export once it differs from `etag`, or None when the wait ran out."""
        answer = await self.call(
            "GET",
            f"/v1/exports/{quote(export_id, safe='')}",
            params={"wait": f"{wait_s:g}"},
            headers={"If-None-Match": etag} if etag else None,
            read_timeout_s=wait_s + READ_TIMEOUT_S,
            ok=(200, 304),
        )
        if answer.status == 304:
            return None
        return Versioned(answer.body, answer.headers.get("ETag"))

    async def list_exports(
        self, *, limit: int | None = None, status: str | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page: {"items": [...], "next_cursor": ...}, newest first."""
        query = {"limit": str(limit) if limit else None, "status": status, "cursor": cursor}
        params = {k: v for k, v in query.items() if v is not None}
        page: dict[str, Any] = (await self.call("GET", "/v1/exports", params=params)).body
        return page

    async def cancel(self, export_id: str) -> dict[str, Any]:
        answer = await self.call("POST", f"/v1/exports/{quote(export_id, safe='')}/cancel")
        export: dict[str, Any] = answer.body
        return export

    async def types(self) -> list[dict[str, Any]]:
        """The catalog: each export type with its formats and typed parameters."""
        items: list[dict[str, Any]] = (await self.call("GET", "/v1/export-types")).body["items"]
        return items

    async def file_location(self, export_id: str) -> str:
        """Where the export's file is: the Location of the download route's 302 (a presigned
        URL minted for this request)."""
        answer = await self.call(
            "GET", f"/v1/exports/{quote(export_id, safe='')}/download", ok=(302, 303, 307)
        )
        location = answer.headers.get("Location")
        if not location:
            raise Unreachable("the download route answered a redirect without a Location")
        return urljoin(self.url("/"), location)
