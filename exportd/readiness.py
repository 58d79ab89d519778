"""Which of the process's dependencies answer right now: the queue database, the listener and,
where jobs run, the source database, S3 and SMTP. Checked in the background every few
seconds, and at most that often on demand, so /readyz stays cheap and the dispatcher can ask
without waiting on I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import Final

import structlog

log = structlog.get_logger(__name__)

PROBE_TIMEOUT_S: Final = 3.0
# While something fails, look again this soon (a dependency coming back is noticed fast).
RECHECK_FAILING_S: Final = 0.5

# A check: returns when the dependency answers, raises when it does not.
Probe = Callable[[], Awaitable[None]]


class NotReady(Exception):
    """A failing check whose reason is safe to show on /readyz (no host names or errors)."""


class Readiness:
    def __init__(self, probes: Mapping[str, Probe], *, every: timedelta) -> None:
        self._probes = dict(probes)
        self._every = every.total_seconds()
        self._reasons: dict[str, str | None] = dict.fromkeys(self._probes)
        self._checked_at = float("-inf")
        self._running: asyncio.Task[None] | None = None
        self._on_change: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a check passes or fails where it did not before."""
        self._on_change.append(callback)

    @property
    def _fresh_for(self) -> float:
        return self._every if self.ok(self._probes) else min(self._every, RECHECK_FAILING_S)

    def ok(self, names: Iterable[str]) -> bool:
        """Whether these checks passed last time (no I/O)."""
        return all(self._reasons.get(name) is None for name in names)

    async def check(self) -> dict[str, str | None]:
        """Run the checks unless they ran within the interval: each check's reason for
        failing, None when it passed. Concurrent callers share one run."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._checked_at >= self._fresh_for:
            if self._running is None or self._running.done():
                self._running = asyncio.create_task(self._run_probes(), name="readiness")
            await asyncio.shield(self._running)
        return dict(self._reasons)

    async def run(self) -> None:
        """Keep the state fresh until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self._fresh_for)

    async def _run_probes(self) -> None:
        names = list(self._probes)
        results = await asyncio.gather(*(self._probe(name) for name in names))
        changed = False
        for name, (reason, error) in zip(names, results, strict=True):
            if reason != self._reasons[name]:
                if reason is None:
                    log.info("readiness.changed", check=name, state="ok")
                else:  # the detail is for the operator's log, never for /readyz
                    log.warning("readiness.changed", check=name, state=reason, error=error)
                changed = True
            self._reasons[name] = reason
        self._checked_at = asyncio.get_running_loop().time()
        if changed:
            for callback in self._on_change:
                callback()

    async def _probe(self, name: str) -> tuple[str | None, str]:
        """(None, "") when the check passes, else (a reason that names no infrastructure,
        the error for the log)."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._probes[name]()
        except NotReady as exc:
            return str(exc), str(exc)
        except Exception as exc:  # whatever it is, the dependency is not usable now
            return "not answering", f"{type(exc).__name__}: {exc}"
        return None, ""
