"""The client commands' output for people: an export's facts, a page of exports, the catalog.
Scripts use --json instead. rich is imported only when a table is printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from exportd.client.flow import shown
from exportd.client.views import View, size

if TYPE_CHECKING:
    from rich.console import Console

# Wide enough that ids and timestamps do not wrap when the output goes to a file or a pipe.
PIPE_WIDTH = 200


def console(stream: TextIO) -> Console:
    from rich.console import Console

    return Console(
        file=stream, highlight=False, width=None if stream.isatty() else PIPE_WIDTH, soft_wrap=True
    )


def print_json(stream: TextIO, value: Any) -> None:
    print(json.dumps(value, indent=2), file=stream, flush=True)


def short_time(value: Any) -> str:
    """An ISO timestamp to the second, without the offset clutter: 2025-01-02 03:04:05."""
    return str(value)[:19].replace("T", " ") if value else "-"


def export_facts(export: dict[str, Any]) -> list[tuple[str, str]]:
    view = View.of(export)
    facts = [
        ("id", view.id),
        ("export", view.name),
        ("status", view.status_text),
        ("params", json.dumps(export.get("params") or {}, sort_keys=True)),
        ("format", str(export.get("format") or "-")),
        ("compression", str(export.get("compression") or "none")),
        ("file name", str(export.get("file_name") or "-")),
        ("created", short_time(export.get("created_at"))),
    ]
    if view.status == "queued" and view.counted:
        facts.append(("queue", view.queue_text()))
    elif view.status == "running":
        facts.append(("progress", view.progress_text()))
    if view.terminal:
        facts.append(("finished", short_time(export.get("finished_at"))))
    if view.status in ("failed", "canceled"):
        facts.append(("why", view.error_text()))
    result = view.result
    if result:
        facts += [
            ("rows", f"{result.get('rows') or 0:,}"),
            ("size", size(result.get("size"))),
            ("sha256", str(result.get("sha256") or "-")),
            ("expires", short_time(result.get("expires_at"))),
        ]
    downloads = export.get("downloads") or {}
    if downloads.get("count"):
        facts.append(
            ("downloads", f"{downloads['count']} (last {short_time(downloads.get('last_at'))})")
        )
    return facts


def show_export(stream: TextIO, export: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in export_facts(export):
        table.add_row(name, value)
    console(stream).print(table)


def show_page(stream: TextIO, page: dict[str, Any]) -> None:
    from rich.table import Table

    items = page.get("items") or []
    out = console(stream)
    if not items:
        out.print("no exports")
    else:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("id", "export", "status", "created", "rows", "size", "file"):
            table.add_column(column, no_wrap=True)
        for export in items:
            view = View.of(export)
            result = view.result
            table.add_row(
                view.id,
                view.name,
                view.status_text,
                short_time(export.get("created_at")),
                f"{result['rows']:,}" if result.get("rows") is not None else "-",
                size(result.get("size")) if result.get("size") is not None else "-",
                str(export.get("file_name") or "-"),
            )
        out.print(table)
    if page.get("next_cursor"):
        out.print(f"more: --cursor {page['next_cursor']}")


def param_text(param: dict[str, Any]) -> str:
    kind = str(param.get("type"))
    if param.get("values"):
        kind = "|".join(str(v) for v in param["values"])
    text = f"{param.get('name')}={kind}"
    if param.get("required"):
        return text + " (required)"
    if param.get("default") is not None:
        return text + f" (default {json.dumps(param['default'])})"
    return text


def show_types(stream: TextIO, items: list[dict[str, Any]]) -> None:
    from rich.markup import escape

    out = console(stream)
    for item in items:
        out.print(
            f"[bold]{escape(str(item.get('name')))}[/]  {escape(str(item.get('title') or ''))}"
        )
        if item.get("description"):
            out.print(f"  {item['description']}", markup=False)
        out.print(f"  formats: {', '.join(item.get('formats') or [])}", markup=False)
        params = item.get("params") or []
        for param in params:
            line = f"  -p {param_text(param)}"
            if param.get("description"):
                line += f"  {param['description']}"
            out.print(line, markup=False)
        out.print()


def report_saved(
    stream: TextIO, export: dict[str, Any], path: Path, *, cwd: Path, as_json: bool
) -> None:
    """A command's result once the file is saved: the export and where (JSON, `saved_to` an
    absolute path), or one line (the path relative to `cwd` when it is inside)."""
    if as_json:
        print_json(stream, {**export, "saved_to": str(path)})
        return
    result = export.get("result") or {}
    rows, got = result.get("rows") or 0, size(result.get("size"))
    print(
        f"saved {shown(path, cwd)} ({rows:,} rows, {got}, sha256 verified)", file=stream, flush=True
    )
