"""A process's memory while something runs: its resident set size sampled in a thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

import psutil


class RssSampler:
    """Samples one process's resident set size every `interval_s` in a thread; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self._proc = psutil.Process(pid)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.first = self.current()
        self.peak = self.first
        self.samples = 0

    def current(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                rss = self.current()
            except psutil.NoSuchProcess:
                return
            self.samples += 1
            self.peak = max(self.peak, rss)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
