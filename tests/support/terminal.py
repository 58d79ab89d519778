"""What the client CLI's tests drive it with: the command in a folder, on a pseudo-terminal,
through a TCP proxy that can lose an answer; and a small terminal emulator to turn what the
terminal received into the screen a person saw (for the README's screenshot)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import io
import os
import pty
import re
import signal
import struct
import termios
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.text import Text

from tests.support.processes import EXPORTD, Run, run_exportd

COLUMNS: Final = 110
LINES: Final = 30
CSI: Final = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
ANSI: Final = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


async def run_cli(*args: str, env: Mapping[str, str], cwd: Path, limit_s: float = 45) -> Run:
    """`exportd ARGS` in `cwd`, its output piped (no terminal), killed after `limit_s`."""
    return await run_exportd(*args, env=env, cwd=cwd, limit_s=limit_s)


class Terminal:
    """`exportd ARGS` with stdin, stdout and stderr on a pseudo-terminal `columns` wide; what
    it writes is collected as it comes."""

    def __init__(
        self, *args: str, env: Mapping[str, str], cwd: Path, columns: int = COLUMNS
    ) -> None:
        self.args, self.env, self.cwd, self.columns = args, dict(env), cwd, columns
        self.output = bytearray()
        self.grew = asyncio.Event()
        self.closed = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self.master = -1

    async def start(self) -> None:
        self.master, slave = pty.openpty()
        size = struct.pack("HHHH", LINES, self.columns, 0, 0)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
        try:
            self.process = await asyncio.create_subprocess_exec(
                EXPORTD,
                *self.args,
                env=self.env,
                cwd=self.cwd,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
            self.closed.set()
        self.output += data
        self.grew.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def wait_for(self, pattern: str, within: float = 30) -> re.Match[str]:
        """The first match of `pattern` in the output (ANSI codes removed), once it is there."""
        async with asyncio.timeout(within):
            while (found := re.search(pattern, plain(self.text))) is None:
                assert not self.closed.is_set(), f"exited before {pattern!r}:\n{self.text}"
                self.grew.clear()
                await self.grew.wait()
        return found

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal would deliver it (SIGINT to the command)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)

    async def exit_code(self, within: float = 45) -> int:
        assert self.process is not None
        try:
            async with asyncio.timeout(within):
                code = await self.process.wait()
                await self.closed.wait()
        finally:
            if self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            await self.close()
        return code

    async def close(self) -> None:
        if self.master >= 0:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = -1


def plain(text: str) -> str:
    return ANSI.sub("", text)


def screen(output: str) -> str:
    """The terminal's lines once `output` was written to it: enough of a VT100 for what rich
    writes (cursor up, erase line, carriage return), colours kept as SGR codes."""
    rows, row, at_start = [""], 0, True
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", output):
        if not token:
            continue
        if token == "\r":
            at_start = True
        elif token == "\n":
            row += 1
            rows.extend([""] * (row + 1 - len(rows)))
        elif (csi := CSI.fullmatch(token)) is not None:
            params, command = csi.groups()
            if command == "A":
                row = max(0, row - int(params or 1))
            elif command == "K":
                rows[row], at_start = "", True
            elif command == "m":  # a colour: written like text
                rows[row] = token if at_start else rows[row] + token
                at_start = False
        else:
            rows[row] = token if at_start else rows[row] + token
            at_start = False
    return "\n".join(rows).rstrip("\n")


def moments(output: str) -> list[str]:
    """The screens a person saw, one per frame rich drew (each frame starts with a carriage
    return and an erase; the screen just before one is the last frame, complete)."""
    cuts = [m.start() for m in re.finditer(re.escape("\r\x1b[2K"), output)]
    return [screen(output[:cut]) for cut in cuts[1:]] + [screen(output)]


def save_screenshot(output: str, path: Path, *, command: str) -> None:
    """`output` on a terminal, under a prompt showing `command`, as an SVG (rich's)."""
    console = Console(
        record=True,
        width=COLUMNS,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
    )
    console.print(Text("$ ", style="bold green") + Text(command, style="bold"))
    console.print(Text.from_ansi(output))
    path.parent.mkdir(parents=True, exist_ok=True)
    svg = console.export_svg(title="exportd export")
    # Fonts as the viewer has them: the picture fetches nothing from the network.
    path.write_text(re.sub(r',\s*url\("https://[^"]*"\) format\("[a-z0-9]+"\)', "", svg))


class Mode(enum.Enum):
    UP = "up"  # pass everything through
    LOSE_CREATE = "lose-create"  # forward the next POST /v1/exports, then cut the answer
    DOWN = "down"  # refuse everything (set once an answer was lost)


class FlakyProxy:
    """A loopback TCP proxy to exportd that can lose the answer to a create, as a network
    might: the server creates the export, the client never hears of it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.mode = Mode.UP
        self.lost = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> FlakyProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode is Mode.DOWN:
            client_w.close()
            return
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        losing = asyncio.Event()

        async def upward() -> None:
            while data := await client_r.read(65536):
                if self.mode is Mode.LOSE_CREATE and data.startswith(b"POST /v1/exports "):
                    losing.set()
                server_w.write(data)
                await server_w.drain()

        async def downward() -> None:
            while data := await server_r.read(65536):
                if losing.is_set() or self.mode is Mode.DOWN:
                    self.lost += 1
                    self.mode = Mode.DOWN  # the network stays away for this run
                    return
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upward()), asyncio.ensure_future(downward())]
        with contextlib.suppress(ConnectionError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (client_w, server_w):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
