"""Load clients in processes of their own: the machine has 2 cores, and a client sharing exportd's
(or the driver's) event loop would measure itself. One protocol for every kind of load:

    python -m bench.queue_load MODE PARAMS.json RESULT.json

The child loads its parameters and prints `ready`; on `go` (a line on stdin) it runs, may print
`sent` (long-polls: every request is out), writes its result file and prints `done`; it exits
when its stdin closes. The parent reads the child's CPU between `go` and `done` with psutil
while the child lives, so imports and start-up are never counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

from bench import queue_claimers, queue_creators, queue_pollers

Say = Callable[[str], None]
Run = Callable[[Say], Awaitable[dict[str, Any]]]
# A mode prepares its load (connections, pools) before `ready`, closing them on `stack`, and
# returns what runs on `go`.
Mode = Callable[[Mapping[str, Any], AsyncExitStack], Awaitable[Run]]

MODES: Final[dict[str, Mode]] = {
    "longpoll": queue_pollers.longpoll,
    "create": queue_creators.create,
    "claim": queue_claimers.claim,
}
EXIT_S: Final = 10.0


# --- the child ------------------------------------------------------------------------------


def say(event: str) -> None:
    print(event, flush=True)


async def child(mode: str, params: Mapping[str, Any], result_path: Path) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    async with AsyncExitStack() as stack:
        run = await MODES[mode](params, stack)
        say("ready")
        if (await stdin.readline()).strip() != b"go":
            return
        result = await run(say)
        await asyncio.to_thread(result_path.write_text, json.dumps(result))
        say("done")
        await stdin.read()  # the parent reads our CPU, then closes our stdin


def main(argv: list[str]) -> int:
    mode, params_path, result_path = argv
    params = json.loads(Path(params_path).read_text())
    asyncio.run(child(mode, params, Path(result_path)))
    return 0


# --- the parent -----------------------------------------------------------------------------


class LoadClient:
    """One load process, driven from the benchmark's event loop."""

    def __init__(self, mode: str, params: Mapping[str, Any], workdir: Path, name: str) -> None:
        self.name = name
        self._mode = mode
        self._params_path = workdir / f"{name}.params.json"
        self._result_path = workdir / f"{name}.result.json"
        self._params_path.write_text(json.dumps(params))
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self, within: float = 60.0) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.queue_load",
            self._mode,
            str(self._params_path),
            str(self._result_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        await self.wait_for("ready", within)

    async def wait_for(self, event: str, within: float) -> None:
        """Wait for the child to say `event`; fail if it says anything else or exits."""
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(within):
            line = (await self._process.stdout.readline()).decode().strip()
        if line != event:
            raise RuntimeError(f"load client {self.name} said {line!r}, not {event!r}")

    def go(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(b"go\n")

    def result(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self._result_path.read_text())
        return loaded

    async def close(self) -> None:
        """Let it exit (closing its stdin); kill its group if it lingers."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            async with asyncio.timeout(EXIT_S):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@contextlib.asynccontextmanager
async def load_clients(
    mode: str, params: list[dict[str, Any]], workdir: Path, name: str
) -> AsyncIterator[list[LoadClient]]:
    """Start one load process per parameter set (all ready on entry); close them all after."""
    clients = [LoadClient(mode, p, workdir, f"{name}-{i}") for i, p in enumerate(params)]
    try:
        await asyncio.gather(*(c.start() for c in clients))
        yield clients
    finally:
        await asyncio.gather(*(c.close() for c in clients))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
