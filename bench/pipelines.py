"""Shell-style pipelines (psql | gzip | uploader) with wall time and CPU seconds per stage."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import IO, Final

from bench.procstats import reap

CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Stage:
    """One process of a pipeline; `name` is the CPU group it is reported under."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PipelineRun:
    wall_s: float
    cpu: dict[str, float]
    stdout_bytes: int | None


class PipelineError(RuntimeError):
    pass


def run_pipeline(
    stages: Sequence[Stage], *, timeout_s: float, count_output: bool = False
) -> PipelineRun:
    """Run `stages` connected by pipes; the last one's output goes to /dev/null (or is counted).

    All stages share one new process group, killed whole if `timeout_s` passes.
    """
    with tempfile.TemporaryFile() as errors:
        procs: list[subprocess.Popen[bytes]] = []
        watchdog: threading.Timer | None = None
        try:
            start = time.monotonic()
            procs = _spawn(stages, errors, count_output)
            watchdog = _arm(procs[0].pid, timeout_s)
            counted = _drain(procs[-1].stdout) if count_output else None
            cpu: dict[str, float] = {}
            for stage, proc in zip(stages, procs, strict=True):
                cpu[stage.name] = cpu.get(stage.name, 0.0) + reap(proc)
            wall = time.monotonic() - start
        finally:
            if watchdog is not None:
                watchdog.cancel()
            _kill(procs)
        _check(stages, procs, errors, timed_out=wall > timeout_s)
    return PipelineRun(wall_s=wall, cpu=cpu, stdout_bytes=counted)


def _spawn(
    stages: Sequence[Stage], errors: IO[bytes], count_output: bool
) -> list[subprocess.Popen[bytes]]:
    procs: list[subprocess.Popen[bytes]] = []
    upstream: IO[bytes] | None = None
    for index, stage in enumerate(stages):
        last = index == len(stages) - 1
        proc = subprocess.Popen(
            list(stage.argv),
            stdin=upstream if upstream is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if (count_output or not last) else subprocess.DEVNULL,
            stderr=errors,
            env=dict(stage.env) if stage.env is not None else None,
            process_group=0 if index == 0 else procs[0].pid,
        )
        if upstream is not None:
            upstream.close()  # only the next stage holds the read end: SIGPIPE works
        upstream = proc.stdout
        procs.append(proc)
    return procs


def _drain(stream: IO[bytes] | None) -> int:
    assert stream is not None
    total = 0
    with stream:
        while chunk := stream.read(CHUNK):
            total += len(chunk)
    return total


def _arm(pgid: int, timeout_s: float) -> threading.Timer:
    def fire() -> None:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, fire)
    timer.daemon = True
    timer.start()
    return timer


def _kill(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Kill and reap whatever is still running (only after an error)."""
    for proc in procs:
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(procs[0].pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _check(
    stages: Sequence[Stage],
    procs: Sequence[subprocess.Popen[bytes]],
    errors: IO[bytes],
    *,
    timed_out: bool,
) -> None:
    failed = [
        f"{stage.name} exited {proc.returncode}"
        for stage, proc in zip(stages, procs, strict=True)
        if proc.returncode != 0
    ]
    if not failed and not timed_out:
        return
    errors.seek(0)
    tail = errors.read()[-2000:].decode(errors="replace").strip()
    reason = "timed out" if timed_out else ", ".join(failed)
    raise PipelineError(f"pipeline {reason}: {tail or 'no stderr'}")
