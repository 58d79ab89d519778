"""Showing an export as it moves: a live rich bar on a terminal (exportd.client.bar: queue
position while queued, then rows, percent, rate, ETA and bytes, then the download), plain
lines anywhere else, and nothing at all when stdout is for a script and stderr is not a
terminal. rich is imported only for the bar."""

from __future__ import annotations

import time
from typing import Any, Final, Protocol, TextIO

from exportd.client.views import View, size

# Plain lines: a new one on every change of stage (or once a stage has something to say, as a
# queued export once it is counted), otherwise at most one per this many seconds.
PLAIN_EVERY_S: Final = 2.0


class Display(Protocol):
    def export(self, export: dict[str, Any]) -> None: ...
    def downloading(self, received: int, total: int | None) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class Silent:
    """Shows nothing (--json without a terminal)."""

    def export(self, export: dict[str, Any]) -> None:
        pass

    def downloading(self, received: int, total: int | None) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class Plain:
    """Timestamp-free progress lines for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown: tuple[str, str] | None = None
        self.stage: str | None = None
        self.at = 0.0
        self.download_started: float | None = None

    def line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def export(self, export: dict[str, Any]) -> None:
        view = View.of(export)
        if view.terminal and view.status != "succeeded":
            return  # failed, canceled, expired: the command says so (and why) as its error
        summary = view.summary()
        key = (view.stage, summary)
        now = time.monotonic()
        news = view.stage != self.stage or (self.shown is not None and not self.shown[1])
        if key != self.shown and (news or now - self.at >= PLAIN_EVERY_S):
            self.line(f"export {view.id} {view.stage}" + (f": {summary}" if summary else ""))
            self.shown, self.stage, self.at = key, view.stage, now

    def downloading(self, received: int, total: int | None) -> None:
        now = time.monotonic()
        if self.download_started is None:
            self.download_started = now
            self.line(f"downloading {size(total)}")
        elif received == total or now - self.at >= PLAIN_EVERY_S:
            self.line(f"downloaded {size(received)} of {size(total)}")
            self.at = now

    def note(self, text: str) -> None:
        self.line(text)

    def close(self) -> None:
        pass


def display(stream: TextIO, *, machine_output: bool) -> Display:
    """The display for `stream` (stderr): a bar on a terminal; plain lines otherwise, unless
    stdout carries machine output (then progress shows only on a terminal)."""
    if stream.isatty():
        from exportd.client.bar import Bar

        return Bar(stream)
    return Silent() if machine_output else Plain(stream)
