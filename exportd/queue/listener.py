"""One dedicated LISTEN connection per process: wakes the dispatcher and long-poll waiters."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Final

import asyncpg
import structlog

from exportd.db.health import PING
from exportd.queue.backoff import backoff

log = structlog.get_logger(__name__)

RECONNECT_BASE: Final = timedelta(milliseconds=200)
RECONNECT_MAX: Final = timedelta(seconds=10)
APPLICATION_NAME: Final = "exportd-listener"  # how an operator spots it in pg_stat_activity
# The latest version heard of this many exports, for watches begun after a change was heard.
HEARD: Final = 4096


class Listener:
    """Keeps a LISTEN connection up (probing it, reconnecting with backoff) and fans out hints.

    NOTIFY is only a hint: every subscriber also re-checks the database on its own schedule, so a
    lost notification costs latency, never correctness.
    """

    def __init__(self, *, dsn: str, schema: str, probe_interval: timedelta) -> None:
        self._dsn = dsn
        # The triggers name their channel after the schema (migration 0005).
        self._jobs_channel = f"{schema}_jobs"
        self._exports_channel = f"{schema}_exports"
        self._queue_channel = f"{schema}_queue"
        self._probe_interval = probe_interval.total_seconds()
        self._on_jobs: list[Callable[[], None]] = []
        self._on_connect: list[Callable[[], None]] = []
        # Per export: each watch's event, and the version up to which it knows the changes.
        self._watchers: defaultdict[uuid.UUID, dict[asyncio.Event, int]] = defaultdict(dict)
        self._heard: OrderedDict[uuid.UUID, int] = OrderedDict()
        self._on_export: list[Callable[[uuid.UUID, int | None], None]] = []
        self._on_queue: list[Callable[[], None]] = []
        self.connected = asyncio.Event()

    def on_jobs(self, callback: Callable[[], None]) -> None:
        """Call `callback` when new work may be claimable."""
        self._on_jobs.append(callback)

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call `callback` after each (re)connect: notifications sent meanwhile were missed."""
        self._on_connect.append(callback)

    @contextmanager
    def watch(self, export_id: uuid.UUID, *, known: int = 0) -> Iterator[asyncio.Event]:
        """An event set whenever the export changes past version `known` (or the listener
        reconnects), for as long as the block runs; set at once when such a change was heard
        already (a build claimed from a snapshot that a cancel committed just after)."""
        event = asyncio.Event()
        if self._heard.get(export_id, known) > known:
            event.set()
        self._watchers[export_id][event] = known
        try:
            yield event
        finally:
            watchers = self._watchers[export_id]
            del watchers[event]
            if not watchers:
                del self._watchers[export_id]

    def on_export(self, callback: Callable[[uuid.UUID, int | None], None]) -> None:
        """Call `callback(export_id, version)` whenever an export changes (version None when
        the payload carries none)."""
        self._on_export.append(callback)

    def on_queue(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the queue moves: a build started or ended, one was canceled."""
        self._on_queue.append(callback)

    @property
    def waiting(self) -> int:
        """How many running jobs' cancel watches wait on a change."""
        return sum(len(events) for events in self._watchers.values())

    def _notified(self, conn: object, pid: int, channel: str, payload: object) -> None:
        if channel == self._jobs_channel:
            for callback in self._on_jobs:
                callback()
            return
        if channel == self._queue_channel:
            for queue_callback in self._on_queue:
                queue_callback()
            return
        # "<id>:<version>" (migration 0008), or "<id>" from an older trigger.
        text, _, version_text = str(payload).partition(":")
        try:
            export_id = uuid.UUID(text)
            version = int(version_text) if version_text else None
        except ValueError:
            return
        self._export_changed(export_id, version)

    def _export_changed(self, export_id: uuid.UUID, version: int | None) -> None:
        if version is not None:
            self._heard[export_id] = max(version, self._heard.pop(export_id, version))
            if len(self._heard) > HEARD:
                self._heard.popitem(last=False)
        for event, known in self._watchers.get(export_id, {}).items():
            if version is None or version > known:
                event.set()
        for callback in self._on_export:
            callback(export_id, version)

    async def run(self) -> None:
        """Connect, listen and probe until cancelled, reconnecting with jittered backoff."""
        failures = 0
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
                )
            except Exception as exc:  # whatever the reason, keep trying: waiters depend on us
                failures += 1
                delay = backoff(failures, RECONNECT_BASE, RECONNECT_MAX).total_seconds()
                log.warning("listener.connect_failed", error=str(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            try:
                await conn.add_listener(self._jobs_channel, self._notified)
                await conn.add_listener(self._exports_channel, self._notified)
                await conn.add_listener(self._queue_channel, self._notified)
                failures = 0
                self.connected.set()
                log.info("listener.connected")
                for callback in self._on_connect:
                    callback()
                for events in self._watchers.values():  # changes may have gone unheard
                    for event in events:
                        event.set()
                await self._probe(conn)
            except Exception as exc:
                log.warning("listener.lost", error=f"{type(exc).__name__}: {exc}")
            finally:
                self.connected.clear()
                conn.terminate()

    async def _probe(self, conn: asyncpg.Connection[asyncpg.Record]) -> None:
        """Raise once the connection is gone: closed by the server (noticed at once) or
        silently dead (a dead socket can look idle, so a periodic query proves it alive)."""
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        while not conn.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), self._probe_interval)
            if closed.is_set():
                break
            await conn.fetchval(PING, timeout=max(self._probe_interval, 5.0))
        raise ConnectionResetError("listen connection closed")
