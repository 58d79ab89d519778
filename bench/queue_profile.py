"""py-spy on an exportd process while one side of a measure runs (`--profile`): a collapsed-stack
file per run, and the frames where the samples landed.

py-spy is not a project dependency: `pip install py-spy` into the venv to use it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

T = TypeVar("T")
STOP_S: Final = 30.0


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """Sample `pid` at 100 Hz (without pausing it) into `out` (collapsed stacks) meanwhile;
    nothing when `out` is None or py-spy is missing."""
    binary = py_spy()
    if out is None or binary is None:
        yield
        return
    argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--nonblocking"]
    process = subprocess.Popen(
        [*argv, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def profiling(
    pid: Callable[[], int], prefix: Path | None, run: Callable[[], Awaitable[T]]
) -> Callable[[], Awaitable[T]]:
    """`run`, each call profiled into `prefix`-N.txt (N counts the calls)."""
    calls = 0

    async def wrapped() -> T:
        nonlocal calls
        calls += 1
        out = None if prefix is None else prefix.with_name(f"{prefix.name}-{calls}.txt")
        with profiled(pid(), out):
            return await run()

    return wrapped


def hot_frames(raw: Path, limit: int = 15) -> list[tuple[str, float, float]]:
    """(frame, share of samples where it is the leaf, share where it is on the stack)."""
    leaf: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        total += n
        leaf[frames[-1]] += n
        for frame in set(frames):
            anywhere[frame] += n
    if not total:
        return []
    return [(f, n / total, anywhere[f] / total) for f, n in leaf.most_common(limit)]
