"""Real exportd processes: one-shot commands, and long-running ones (`serve`, `dev`) to start,
signal, kill and read, from a test's event loop or a benchmark's plain code."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

from exportd.config import Settings, as_env

EXPORTD: Final = str(Path(sys.executable).parent / "exportd")
# The project root: on a process's PYTHONPATH, the test hook module imports as
# tests.support.hook_exports.
ROOT: Final = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S: Final = 30.0


def base_env() -> dict[str, str]:
    """This process's environment without any EXPORTD_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}


def fleet_env(settings: Settings) -> dict[str, str]:
    """The environment of `exportd serve` processes in fault runs: short leases and sweeps,
    so a killed replica's jobs come back within seconds."""
    return (
        base_env()
        | as_env(settings)
        | {
            "EXPORTD_LOG_FORMAT": "json",
            "EXPORTD_LEASE_S": "3",
            "EXPORTD_SWEEP_INTERVAL_S": "0.5",
            "EXPORTD_READINESS_INTERVAL_S": "0.5",
            "EXPORTD_RETRY_BASE_S": "0.2",
            "EXPORTD_RETRY_MAX_S": "2",
            "PYTHONPATH": str(ROOT),
        }
    )


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


async def run_exportd(
    *args: str,
    env: Mapping[str, str],
    limit_s: float = 30,
    executable: str = EXPORTD,
    cwd: Path | None = None,
) -> Run:
    """Run the exportd command to completion (killed after `limit_s` seconds), its output
    piped and no input (no terminal)."""
    process = await asyncio.create_subprocess_exec(
        executable,
        *args,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(limit_s):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


@dataclass
class ExportdProcess:
    """One long-running exportd process in its own session, its output in a log file.

    Started with plain `subprocess`, so any event loop (or none) can drive it: the tests'
    loops and the benchmarks' synchronous code alike.
    """

    name: str
    args: Sequence[str]
    env: dict[str, str]
    log_path: Path
    port: int
    executable: str = EXPORTD
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def serve(
        cls,
        name: str,
        *,
        port: int,
        env: dict[str, str],
        log_path: Path,
        role: str = "all",
        executable: str = EXPORTD,
    ) -> ExportdProcess:
        args = ("serve", "--role", role, "--port", str(port))
        return cls(name, args, env, log_path, port, executable)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def launch(self) -> None:
        """Start the process (again, after it exited) without waiting for it."""
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [self.executable, *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> None:
        """Launch it and wait until its /readyz answers 200."""
        self.launch()
        await self.wait_ready()

    async def wait_ready(self) -> None:
        async with asyncio.timeout(READY_TIMEOUT_S), aiohttp.ClientSession() as session:
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    async def kill(self) -> None:
        """kill -9: no cleanup, no goodbye, like a lost machine."""
        if self.running:
            self.signal(signal.SIGKILL)
            await self.wait_exit()

    async def wait_exit(self, within: float = 30.0) -> int:
        """The exit code, waiting up to `within` seconds for it."""
        assert self.popen is not None
        return await asyncio.to_thread(self.popen.wait, within)

    def stop(self, within: float = 20.0) -> None:
        """SIGTERM to its process group, SIGKILL if it lingers; returns once it has exited."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(within)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
