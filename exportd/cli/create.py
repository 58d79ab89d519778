"""`exportd export NAME`: create the export (with the automatic Idempotency-Key of
exportd.client.pending), follow it, download and verify its file.

Ctrl-C while it builds asks, on a terminal, whether to cancel it on the server; without a
terminal (or on "no", or a second Ctrl-C) the export is left running and the command says how
to pick it up again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from exportd.cli import render
from exportd.cli.context import Context
from exportd.cli.params import parse_params
from exportd.client.api import Client, Versioned
from exportd.client.errors import (
    EXIT_EXPORT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ClientConfigError,
    ClientError,
    ExportUnsuccessful,
    FileExists,
    Problem,
)
from exportd.client.flow import follow, save, succeeded
from exportd.client.pending import Pending, claim, fingerprint, state_dir
from exportd.client.progress import Display
from exportd.client.views import View

T = TypeVar("T")
QUESTION = "Cancel the export on the server? [y/N] "


class Interrupts:
    """Ctrl-C as an event the command races its work against, not a KeyboardInterrupt."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __enter__(self) -> Interrupts:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self.event.set)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)

    async def race(self, work: Awaitable[T]) -> T | None:
        """Work's result, or None when Ctrl-C came first (the work is then canceled)."""
        self.event.clear()
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.event.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None


async def read_line(fd: int) -> str:
    """What was typed on the terminal `fd`, read without blocking the loop."""
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()

    def readable() -> None:
        if not line.done():
            line.set_result(os.read(fd, 1024).decode(errors="replace"))

    loop.add_reader(fd, readable)
    try:
        return await line
    finally:
        loop.remove_reader(fd)


async def ask_cancel(ctx: Context, interrupts: Interrupts) -> bool:
    """On a terminal, ask whether to cancel; no terminal, "no" or a second Ctrl-C: False."""
    if not (sys.stdin.isatty() and ctx.err.isatty()):
        return False
    print(f"\n{QUESTION}", end="", file=ctx.err, flush=True)
    answer = await interrupts.race(read_line(sys.stdin.fileno()))
    if answer is None:
        print(file=ctx.err)
    return (answer or "").strip().lower() in ("y", "yes")


def request_body(args: Any, export_type: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"export": args.name, "params": parse_params(args.param, export_type)}
    for field in ("format", "compression", "file_name"):
        if getattr(args, field):
            body[field] = getattr(args, field)
    return body


async def catalog_entry(api: Client, args: Any) -> dict[str, Any] | None:
    """The export's catalog entry, to type its -p values (asked for only when there are any)."""
    if not args.param:
        return None
    return next((t for t in await api.types() if t.get("name") == args.name), None)


class Export:
    """One run of the command: its key, the export once created, and once built."""

    def __init__(self, ctx: Context, api: Client, pending: Pending, output: Path | None) -> None:
        self.ctx, self.api, self.pending, self.output = ctx, api, pending, output
        self.built: dict[str, Any] | None = None

    async def send(self, body: dict[str, Any], interrupts: Interrupts) -> Versioned | None:
        """POST the export with this command's key (None on Ctrl-C). With --no-wait, an
        earlier run's export that is finished is done with: a new key, a new export."""
        created = await interrupts.race(self.api.create(body, idempotency_key=self.pending.key))
        finished = created is not None and View.of(created.export).terminal
        if created is not None and created.replayed and finished and self.ctx.args.no_wait:
            self.pending.renew()
            created = await interrupts.race(self.api.create(body, idempotency_key=self.pending.key))
        return created

    async def create(self, body: dict[str, Any], interrupts: Interrupts) -> int:
        created = await self.send(body, interrupts)
        if created is None:
            self.ctx.say("exportd: interrupted while creating the export; rerun to resume it")
            return EXIT_INTERRUPTED
        export_id = created.export["id"]
        self.pending.remember(export_id)
        if self.ctx.args.no_wait:
            # The key stays (see exportd.client.pending): a rerun gives this same export.
            earlier = created.replayed and not self.pending.fresh  # not this run's own retry
            if earlier and not (self.ctx.json and not self.ctx.err.isatty()):
                self.ctx.say(f"export {export_id} already exists (created by an earlier run)")
            if self.ctx.json:
                render.print_json(self.ctx.out, created.export)
            else:
                print(export_id, file=self.ctx.out, flush=True)
            return EXIT_OK
        shown = self.ctx.display()
        if created.replayed and not self.pending.fresh:
            shown.note(f"resuming export {created.export['id']}, created by an earlier run")
        try:
            path = await interrupts.race(self.build_and_save(created, shown))
        finally:
            shown.close()
        if path is None:
            return await self.interrupted(interrupts)
        self.pending.forget()
        assert self.built is not None
        render.report_saved(self.ctx.out, self.built, path, cwd=self.ctx.cwd, as_json=self.ctx.json)
        return EXIT_OK

    async def build_and_save(self, created: Versioned, shown: Display) -> Path:
        self.built = succeeded(await follow(self.api, created.export["id"], shown, created))
        return await save(
            self.api, self.built, self.output, self.ctx.cwd, shown, force=self.ctx.args.force
        )

    async def interrupted(self, interrupts: Interrupts) -> int:
        export_id, say = self.pending.export_id, self.ctx.say
        if self.built is not None:
            say(f"exportd: download interrupted; rerun, or `exportd exports download {export_id}`")
            return EXIT_INTERRUPTED
        if export_id is not None and await ask_cancel(self.ctx, interrupts):
            export = await self.api.cancel(export_id)
            self.pending.forget()
            if self.ctx.json:
                render.print_json(self.ctx.out, export)
            say(f"exportd: export {export_id} {export.get('status', 'canceled')}")
            return EXIT_EXPORT
        say(
            f"exportd: export {export_id} left running; follow it with "
            f"`exportd exports wait {export_id}`, or rerun this command"
        )
        return EXIT_INTERRUPTED


def refuse_to_overwrite(output: Path, named: str, pending: Pending, *, force: bool) -> None:
    """Before creating anything: a FileExists for an `-o FILE` that exists, unless `force`.
    (With an earlier run's export to resume, the file may be that export's: the download
    checks it then.)"""
    if force or not output.exists() or output.is_dir():
        return
    if pending.fresh:
        pending.forget()  # nothing was sent with it
    raise FileExists(f"{named} exists; use --force to overwrite")


async def run(ctx: Context) -> int:
    args = ctx.args
    async with ctx.client() as api:
        body = request_body(args, await catalog_entry(api, args))
        output = ctx.cwd / args.output if args.output else None
        where = str(output.resolve()) if output else f"cwd:{ctx.cwd.resolve()}"
        key_of = fingerprint(url=api.target.url, token=api.target.token, request=body, output=where)
        pending = claim(state_dir(ctx.env), key_of, new=args.new)
        if output is not None and pending.export_id is None and not args.no_wait:
            refuse_to_overwrite(output, args.output, pending, force=args.force)
        with Interrupts() as interrupts:
            try:
                return await Export(ctx, api, pending, output).create(body, interrupts)
            except ExportUnsuccessful as exc:
                pending.forget()  # finished: a rerun is a new attempt
                if ctx.json:
                    render.print_json(ctx.out, exc.export)
                raise
            except FileExists as exc:
                exc.hint = (
                    f"or save it elsewhere: `exportd exports download {pending.export_id} -o FILE`"
                )
                raise
            except ClientError as exc:
                if isinstance(exc, ClientConfigError):
                    raise
                if isinstance(exc, Problem) and 400 <= exc.status < 500:
                    if exc.status not in (408, 429):
                        pending.forget()  # the request itself was refused: a rerun is new
                    raise
                exc.hint = (
                    f"rerun the same command to resume export {pending.export_id}"
                    if pending.export_id
                    else "rerun the same command: it resumes the export if one was created"
                )
                raise
