"""The steps a command strings together: follow an export until it finishes (long-polling,
showing each change), and save a succeeded export's file where it belongs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exportd.client.api import Client, Versioned
from exportd.client.errors import ExportUnsuccessful
from exportd.client.progress import Display
from exportd.client.transfer import destination, download
from exportd.client.views import View


async def follow(
    api: Client, export_id: str, display: Display, first: Versioned | None = None
) -> dict[str, Any]:
    """Long-poll the export until it is finished (each change shown); its last JSON."""
    current = first or await api.get(export_id)
    display.export(current.export)
    while not View.of(current.export).terminal:
        fresh = await api.poll(export_id, etag=current.etag)
        if fresh is not None:
            current = fresh
            display.export(current.export)
    return current.export


def succeeded(export: dict[str, Any]) -> dict[str, Any]:
    """The export, if it succeeded; ExportUnsuccessful with its reason otherwise."""
    view = View.of(export)
    if view.status != "succeeded":
        raise ExportUnsuccessful(f"export {view.id} {view.status}: {view.error_text()}", export)
    return export


def shown(path: Path, cwd: Path) -> Path:
    """`path` as a person in `cwd` would name it: relative when it is inside."""
    return path.relative_to(cwd) if path.is_relative_to(cwd) else path


async def save(
    api: Client,
    export: dict[str, Any],
    output: Path | None,
    cwd: Path,
    display: Display,
    *,
    force: bool = False,
) -> Path:
    """Download the succeeded export's file to `output` (or the working folder), verified;
    a file there that is not this export's is replaced only with `force`."""
    result = export.get("result") or {}
    dest = destination(output, result, cwd)
    return await download(
        api, export, dest, display.downloading, force=force, shown_as=str(shown(dest, cwd))
    )
