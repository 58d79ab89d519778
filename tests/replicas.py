"""Real exportd processes: one-shot commands, and `serve` replicas to start, kill and read."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from exportd.config import Settings, as_env

EXPORTD = str(Path(sys.executable).parent / "exportd")
TESTS_DIR = Path(__file__).resolve().parent


def fleet_env(settings: Settings) -> dict[str, str]:
    """The environment of `exportd serve` processes in fault runs: short leases and sweeps,
    so a killed replica's jobs come back within seconds."""
    return as_env(settings) | {
        "EXPORTD_LOG_FORMAT": "json",
        "EXPORTD_LEASE_S": "3",
        "EXPORTD_SWEEP_INTERVAL_S": "0.5",
        "EXPORTD_RETRY_BASE_S": "0.2",
        "EXPORTD_RETRY_MAX_S": "2",
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(TESTS_DIR),  # the hook module lives beside the tests
    }


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


async def run_exportd(*args: str, env: Mapping[str, str], limit_s: float = 30) -> Run:
    """Run the exportd command to completion (killed after `limit_s` seconds)."""
    process = await asyncio.create_subprocess_exec(
        str(EXPORTD),
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(limit_s):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def base_env() -> dict[str, str]:
    """This process's environment without any EXPORTD_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}


@dataclass
class Replica:
    """One exportd process in its own session, logging to a file."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    role: str = "all"
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                EXPORTD,
                "serve",
                "--role",
                self.role,
                "--port",
                str(self.port),
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        await self.wait_ready()

    async def wait_ready(self) -> None:
        async with asyncio.timeout(30), aiohttp.ClientSession() as session:
            while True:
                if not self.running:
                    raise RuntimeError(f"replica {self.name} exited; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)

    async def kill(self) -> None:
        """kill -9: no cleanup, no goodbye, like a lost machine."""
        if self.running:
            self.signal(signal.SIGKILL)
            await self.wait_exit()

    async def wait_exit(self) -> int:
        """The exit code, waiting up to 30 s for it."""
        assert self.process is not None
        async with asyncio.timeout(30):
            return await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
