"""Showing an export as it moves: a live rich bar on a terminal (queue position while queued,
then rows, percent, rate, ETA and bytes, then the download), plain lines anywhere else, and
nothing at all when stdout is for a script and stderr is not a terminal."""

from __future__ import annotations

import time
from typing import Any, Final, Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from exportd.client.views import View, size

STYLES: Final = {"succeeded": "green", "failed": "red", "canceled": "yellow", "expired": "yellow"}
# Plain lines: a new one on every change of stage, otherwise at most one per this many seconds.
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
        key = (view.stage, view.summary())
        now = time.monotonic()
        changed_stage = view.stage != self.stage
        if key != self.shown and (changed_stage or now - self.at >= PLAIN_EVERY_S):
            self.line(f"export {view.id} {view.stage}: {view.summary()}")
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


class Bar:
    """A live rich display: one line for the export, one for the download."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=32),
            TextColumn("{task.fields[detail]}", markup=False),
            console=console,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task: TaskID | None = None
        self.download: TaskID | None = None
        self.download_started = 0.0
        self.progress.start()

    def export(self, export: dict[str, Any]) -> None:
        view = View.of(export)
        style = STYLES.get(view.status, "cyan")
        label = f"[bold]{escape(view.name or 'export')}[/] [{style}]{view.stage:<9}[/]"
        if view.status == "queued" or (view.percent is None and not view.terminal):
            total, completed = None, 0.0  # a pulsing bar: it moves, no end known
        elif view.status == "succeeded":
            total, completed = 100.0, 100.0
        else:
            total, completed = 100.0, view.percent or 0.0
        if self.task is None:
            self.task = self.progress.add_task(label, total=total, detail="")
        self.progress.update(
            self.task, description=label, total=total, completed=completed, detail=view.summary()
        )
        self.progress.refresh()

    def downloading(self, received: int, total: int | None) -> None:
        now = time.monotonic()
        if self.download is None:
            self.download_started = now
            self.download = self.progress.add_task("[bold]download[/]", total=total, detail="")
        elapsed = now - self.download_started
        rate = f" · {size(received / elapsed)}/s" if elapsed > 0.2 and received else ""
        self.progress.update(
            self.download,
            total=total,
            completed=received,
            detail=f"{size(received)} of {size(total)}{rate}",
        )

    def note(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.refresh()
        self.progress.stop()


def display(stream: TextIO, *, machine_output: bool) -> Display:
    """The display for `stream` (stderr): a bar on a terminal; plain lines otherwise, unless
    stdout carries machine output (then progress shows only on a terminal)."""
    if stream.isatty():
        return Bar(Console(file=stream, stderr=True))
    return Silent() if machine_output else Plain(stream)
