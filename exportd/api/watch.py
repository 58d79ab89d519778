"""Long-poll fan-out: every waiter on an export shares one read per version of it.

A GET that must wait registers with the Watch under its export. A notification (carrying
the new version) makes the Watch read the export once, behind a small gate so waiters'
reads never crowd out the workers' writes, and wake every waiter with that one snapshot,
rendered once. A notification for a version already seen costs nothing. Nothing is read
while nothing changes: after a listener reconnect (notifications may have been missed) each
watched export is read once. A queued export's place moves with other exports: it is re-read
when the queue moves, at most once per QUEUE_REREAD_S.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import structlog

from exportd.db import exports
from exportd.db.pool import Pool
from exportd.db.rows import ExportRow
from exportd.db.standing import Standing, standing_of
from exportd.errors import TooManyWaiters
from exportd.metrics import Metrics
from exportd.model import Status
from exportd.public import etag

log = structlog.get_logger(__name__)

QUEUE_REREAD_S: Final = 1.0
WAITERS_RETRY_AFTER_S: Final = 5


Render = Callable[[ExportRow, Standing | None], dict[str, Any]]
RECENT: Final = 4096  # versions heard lately, for a waiter that registers just after a change


@dataclass(frozen=True)
class Seen:
    """One state of an export as waiters are answered with it."""

    export: ExportRow
    standing: Standing | None
    render: Render = field(repr=False)

    @cached_property
    def etag(self) -> str:
        return etag(self.export, self.standing)

    @cached_property
    def body(self) -> bytes:
        """The JSON, encoded once however many waiters it answers."""
        return json.dumps(self.render(self.export, self.standing)).encode()


@dataclass(eq=False)
class _Entry:
    latest: Seen
    waiters: int = 0
    asked: int = 0  # reads asked for (a notification, a queue move, a reconnect)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reading: asyncio.Task[None] | None = None
    queue_read_at: float = float("-inf")


class Watch:
    """The replica's long-poll waiters, by export; caps per replica and per tenant."""

    def __init__(
        self,
        pool: Pool,
        render: Render,
        metrics: Metrics,
        *,
        tenant_cap: int,
        max_waiters: int,
        tenant_max_waiters: int,
        read_gate: int,
    ) -> None:
        self._pool = pool
        self._render = render
        self._metrics = metrics
        # The newest version heard of each recently changed export (any, watched or not).
        self._heard: OrderedDict[uuid.UUID, int] = OrderedDict()
        self._tenant_cap = tenant_cap
        self._max = max_waiters
        self._tenant_max = tenant_max_waiters
        self._gate = asyncio.Semaphore(read_gate)
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._per_tenant: Counter[str] = Counter()
        self._waiting = 0
        self._queue_wake: asyncio.TimerHandle | None = None
        self.closing = False

    @property
    def waiting(self) -> int:
        return self._waiting

    def seen(self, export: ExportRow, standing: Standing | None) -> Seen:
        return Seen(export, standing, self._render)

    @asynccontextmanager
    async def waiting_on(self, tenant: str, seen: Seen) -> AsyncIterator[_Entry]:
        """Wait on the export `seen` shows; TooManyWaiters past a cap."""
        full = "replica" if self._waiting >= self._max else None
        if self._per_tenant[tenant] >= self._tenant_max:
            full = "tenant"
        if full is not None:
            self._metrics.longpolls_refused.labels(scope=full).inc()
            raise TooManyWaiters(
                "too many requests are waiting on exports; poll again later",
                retry_after=WAITERS_RETRY_AFTER_S,
            )
        export_id = seen.export.id
        entry = self._entries.get(export_id)
        if entry is None:
            entry = self._entries[export_id] = _Entry(seen)
        elif seen.export.version > entry.latest.export.version:
            self._publish(entry, seen)
        # Changed between the caller's read and now: that notification found no entry.
        if self._heard.get(export_id, 0) > entry.latest.export.version:
            self._read(entry)
        entry.waiters += 1
        self._per_tenant[tenant] += 1
        self._waiting += 1
        try:
            yield entry
        finally:
            entry.waiters -= 1
            self._per_tenant[tenant] -= 1
            if not self._per_tenant[tenant]:
                del self._per_tenant[tenant]
            self._waiting -= 1
            if not entry.waiters:
                del self._entries[export_id]
                if entry.reading is not None:
                    entry.reading.cancel()

    def export_changed(self, export_id: uuid.UUID, version: int | None) -> None:
        """A notification: read the export once unless its version is already known."""
        if version is not None:
            self._heard[export_id] = version
            self._heard.move_to_end(export_id)
            if len(self._heard) > RECENT:
                self._heard.popitem(last=False)
        entry = self._entries.get(export_id)
        if entry is None:
            return
        # Without a version (an older replica's trigger) only a read can tell.
        if version is None or version > entry.latest.export.version:
            self._read(entry)

    def queue_moved(self) -> None:
        """A build started or ended somewhere: queued exports re-read their standing, each at
        most once per QUEUE_REREAD_S."""
        if self._queue_wake is not None:
            return
        loop = asyncio.get_running_loop()
        now, due_in = loop.time(), None
        for entry in self._entries.values():
            if entry.latest.export.status != Status.QUEUED:
                continue
            wait = entry.queue_read_at + QUEUE_REREAD_S - now
            if wait <= 0:
                entry.queue_read_at = now
                self._read(entry)
            else:
                due_in = wait if due_in is None else min(due_in, wait)
        if due_in is not None:
            self._queue_wake = loop.call_later(due_in, self._queue_due)

    def _queue_due(self) -> None:
        self._queue_wake = None
        self.queue_moved()

    def reconnected(self) -> None:
        """Notifications sent while the listener was away are lost: read everything once."""
        for entry in self._entries.values():
            self._read(entry)

    def release(self) -> None:
        """Shutting down: wake every waiter, so each is answered rather than cut."""
        self.closing = True
        for entry in self._entries.values():
            entry.changed.set()

    def _read(self, entry: _Entry) -> None:
        entry.asked += 1
        if entry.reading is None:
            entry.reading = asyncio.create_task(self._refresh(entry))

    async def _refresh(self, entry: _Entry) -> None:
        """Read, publish what changed, and read again if more was asked for meanwhile."""
        try:
            while True:
                asked = entry.asked
                seen = await self._fetch(entry.latest.export.id)
                if seen is None:
                    return
                if seen.etag != entry.latest.etag:
                    self._publish(entry, seen)
                if entry.asked == asked:
                    return
        except Exception as exc:  # a waiter still answers at its deadline with what it has
            log.warning("watch.read_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            entry.reading = None

    async def _fetch(self, export_id: uuid.UUID) -> Seen | None:
        async with self._gate, self._pool.acquire() as conn:
            self._metrics.longpoll_reads.inc()
            export = await exports.get_export_by_id(conn, export_id)
            if export is None:  # purged meanwhile: the waiters keep the last state they saw
                return None
            standing = await standing_of(conn, export, tenant_cap=self._tenant_cap)
        return self.seen(export, standing)

    def _publish(self, entry: _Entry, seen: Seen) -> None:
        entry.latest = seen
        changed, entry.changed = entry.changed, asyncio.Event()
        changed.set()
