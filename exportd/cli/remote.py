"""The client's commands: `exportd export` (in create.py), `exportd exports ls|show|wait|
download|cancel` and `exportd types`, run against a server over HTTP. Each returns the
command's exit code (see exportd.client.errors)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TextIO

from exportd.cli import create, render
from exportd.cli.context import Context
from exportd.client.config import resolve
from exportd.client.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    ClientError,
    Problem,
)
from exportd.client.flow import follow, save, succeeded

Command = Callable[[Context], Coroutine[Any, Any, int]]


async def show(ctx: Context) -> int:
    async with ctx.client() as api:
        export = (await api.get(ctx.args.id)).export
    if ctx.json:
        render.print_json(ctx.out, export)
    else:
        render.show_export(ctx.out, export)
    return EXIT_OK


async def wait(ctx: Context) -> int:
    shown = ctx.display()
    try:
        async with ctx.client() as api:
            export = await follow(api, ctx.args.id, shown)
    finally:
        shown.close()
    if ctx.json:
        render.print_json(ctx.out, export)
    succeeded(export)
    return EXIT_OK


async def download(ctx: Context) -> int:
    output = ctx.cwd / ctx.args.output if ctx.args.output else None
    shown = ctx.display()
    try:
        async with ctx.client() as api:
            export = (await api.get(ctx.args.id)).export
            path = await save(api, succeeded(export), output, ctx.cwd, shown, force=ctx.args.force)
    finally:
        shown.close()
    render.report_saved(ctx.out, export, path, cwd=ctx.cwd, as_json=ctx.json)
    return EXIT_OK


async def cancel(ctx: Context) -> int:
    async with ctx.client() as api:
        export = await api.cancel(ctx.args.id)
    if ctx.json:
        render.print_json(ctx.out, export)
    else:
        print(f"export {export.get('id')} {export.get('status')}", file=ctx.out, flush=True)
    return EXIT_OK


async def list_exports(ctx: Context) -> int:
    async with ctx.client() as api:
        page = await api.list_exports(
            limit=ctx.args.limit, status=ctx.args.status, cursor=ctx.args.cursor
        )
    if ctx.json:
        render.print_json(ctx.out, page)
    else:
        render.show_page(ctx.out, page)
    return EXIT_OK


async def types(ctx: Context) -> int:
    async with ctx.client() as api:
        items = await api.types()
    if ctx.json:
        render.print_json(ctx.out, {"items": items})
    else:
        render.show_types(ctx.out, items)
    return EXIT_OK


async def export(ctx: Context) -> int:
    return await create.run(ctx)


COMMANDS: dict[str, Command] = {
    "export": export,
    "types": types,
    "ls": list_exports,
    "show": show,
    "wait": wait,
    "download": download,
    "cancel": cancel,
}


def run(
    args: argparse.Namespace,
    env: Mapping[str, str],
    *,
    cwd: Path,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the client command `args` names; its exit code."""
    command = COMMANDS[args.action if args.command == "exports" else args.command]
    target = None
    try:
        target = resolve(url=args.url, token=args.token, env=env, cwd=cwd)
        return asyncio.run(command(Context(args, target, env, cwd, out, err)))
    except ClientError as exc:
        if isinstance(exc, Problem) and exc.status == 401 and target is not None:
            exc.hint = exc.hint or target.source
        for line in [*str(exc).splitlines(), *([exc.hint] if exc.hint else [])]:
            print(f"exportd: {line}", file=err)
        return exc.exit_code
    except KeyboardInterrupt:  # outside the ask-to-cancel of `exportd export`
        export_id = getattr(args, "id", None)
        unchanged = f"; export {export_id} is unchanged" if export_id else ""
        print(f"exportd: interrupted{unchanged}", file=err, flush=True)
        return EXIT_INTERRUPTED
