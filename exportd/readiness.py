"""Which of the process's dependencies answer right now: the queue database, the listener and,
where jobs run, the source database, S3 and SMTP. Checked in the background, each on its own
schedule, so /readyz stays cheap and the dispatcher can ask without waiting on I/O.

A failing check is looked at again soon, backing off, so a dependency coming back is noticed
within seconds; one that refuses our credentials is looked at rarely (an operator has to fix
it, and a login attempt every second gets an account locked on a real relay)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import structlog

from exportd.errors import DependencyRefused

log = structlog.get_logger(__name__)

PROBE_TIMEOUT_S: Final = 3.0
# A failing check is rechecked after this, doubling up to its healthy interval.
RECHECK_FAILING_S: Final = 0.5
# A check refused (credentials, a missing bucket) is rechecked this rarely.
RECHECK_REFUSED_S: Final = 60.0

# A check: returns when the dependency answers, raises when it does not.
Probe = Callable[[], Awaitable[None]]


class NotReady(Exception):
    """A failing check whose reason is safe to show on /readyz (no host names or errors)."""


@dataclass(slots=True)
class _Check:
    probe: Probe
    every: float
    reason: str | None = None
    due: float = float("-inf")
    failures: int = 0

    def schedule(self, now: float, refused: bool) -> None:
        if self.reason is None:
            self.failures, delay = 0, self.every
        elif refused:
            self.failures, delay = self.failures + 1, max(self.every, RECHECK_REFUSED_S)
        else:
            self.failures += 1
            delay = min(self.every, RECHECK_FAILING_S * 2 ** (self.failures - 1))
        self.due = now + delay


class Readiness:
    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        every: timedelta,
        slower: Mapping[str, timedelta] | None = None,
    ) -> None:
        """`every`: how often a healthy check runs; `slower`: checks that run less often
        (each login to the mail relay is one in its log)."""
        intervals = {name: every for name in probes} | dict(slower or {})
        # "starting" until the first run: nothing is claimed before the checks have spoken.
        self._checks = {
            name: _Check(probe, intervals[name].total_seconds(), reason="starting")
            for name, probe in probes.items()
        }
        self._running: asyncio.Task[None] | None = None
        self._on_change: list[Callable[[], None]] = []
        self._suspected = asyncio.Event()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever a check passes or fails where it did not before."""
        self._on_change.append(callback)

    def suspect(self, name: str) -> None:
        """Check `name` now rather than on its schedule: a job just found it away."""
        if name in self._checks and self._checks[name].reason is None:
            self._checks[name].due = float("-inf")
            self._suspected.set()

    def ok(self, names: Iterable[str]) -> bool:
        """Whether these checks passed last time (no I/O)."""
        return all(self._checks[name].reason is None for name in names if name in self._checks)

    async def check(self) -> dict[str, str | None]:
        """Run the checks that are due: each check's reason for failing, None when it
        passed. Concurrent callers share one run."""
        now = asyncio.get_running_loop().time()
        if any(check.due <= now for check in self._checks.values()):
            if self._running is None or self._running.done():
                self._running = asyncio.create_task(self._run_due(), name="readiness")
            await asyncio.shield(self._running)
        return {name: check.reason for name, check in self._checks.items()}

    async def run(self) -> None:
        """Keep the state fresh until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self._suspected.clear()
            await self.check()
            next_due = min(check.due for check in self._checks.values())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._suspected.wait(), max(0.05, next_due - loop.time()))

    async def _run_due(self) -> None:
        loop = asyncio.get_running_loop()
        names = [name for name, check in self._checks.items() if check.due <= loop.time()]
        results = await asyncio.gather(*(self._probe(name) for name in names))
        changed = False
        for name, (reason, error, refused) in zip(names, results, strict=True):
            check = self._checks[name]
            if reason != check.reason:
                if reason is None:
                    log.info("readiness.changed", check=name, state="ok")
                else:  # the detail is for the operator's log, never for /readyz
                    log.warning("readiness.changed", check=name, state=reason, error=error)
                changed = True
            check.reason = reason
            check.schedule(loop.time(), refused)
        if changed:
            for callback in self._on_change:
                callback()

    async def _probe(self, name: str) -> tuple[str | None, str, bool]:
        """(None, "", False) when the check passes, else (a reason that names no
        infrastructure, the error for the log, whether we were refused)."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await self._checks[name].probe()
        except NotReady as exc:
            return str(exc), str(exc), False
        except DependencyRefused as exc:
            return exc.reason, exc.detail, True
        except Exception as exc:  # whatever it is, the dependency is not usable now
            return "not answering", f"{type(exc).__name__}: {exc}", False
        return None, "", False
