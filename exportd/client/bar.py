"""The live progress bar on a terminal (rich): one line for the export, one for the download.

Each line fits the terminal: the label (name and stage) and the bar keep their room, the bar
narrows on a narrow terminal, and the detail beside it is the fullest version of it that
fits (exportd.client.views.fit), cut short with an ellipsis if even that does not."""

from __future__ import annotations

import time
from typing import Any, Final, TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from exportd.client.views import View, fit, size

STYLES: Final = {"succeeded": "green", "failed": "red", "canceled": "yellow", "expired": "yellow"}
BAR_MAX: Final = 32
BAR_MIN: Final = 10
# What a terminal narrower than BAR_MAX + this takes from the bar, for the detail.
BAR_SHARES_BELOW: Final = 64
GAPS: Final = 2  # one space after the label, one after the bar


def bar_width(columns: int) -> int:
    """32 cells from 96 columns; narrower below that (16 at 80), down to 10."""
    return max(BAR_MIN, min(BAR_MAX, columns - BAR_SHARES_BELOW))


class Detail(ProgressColumn):
    """The text beside the bar, on one line: the column gives way first when the line is too
    long (the label and the bar do not), and the text then ends in an ellipsis."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=False, overflow="ellipsis"))

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("detail", "")), no_wrap=True, overflow="ellipsis")


class Bar:
    """A live rich display: one line for the export, one for the download."""

    def __init__(self, stream: TextIO) -> None:
        console = Console(file=stream, stderr=True)
        self.bar = BarColumn(bar_width=bar_width(console.width), table_column=Column(no_wrap=True))
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True)),
            self.bar,
            Detail(),
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
        words = f"{view.name or 'export'} {view.stage:<9}"
        label = f"[bold]{escape(view.name or 'export')}[/] [{style}]{view.stage:<9}[/]"
        columns = self.progress.console.width
        self.bar.bar_width = bar_width(columns)
        room = columns - cell_len(words) - self.bar.bar_width - GAPS
        if view.status == "queued" or (view.percent is None and not view.terminal):
            total, completed = None, 0.0  # a pulsing bar: it moves, no end known
        elif view.status == "succeeded":
            total, completed = 100.0, 100.0
        else:
            total, completed = 100.0, view.percent or 0.0
        if self.task is None:
            self.task = self.progress.add_task(label, total=total, detail="")
        detail = fit(view.summary_variants(), room)
        self.progress.update(
            self.task, description=label, total=total, completed=completed, detail=detail
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
