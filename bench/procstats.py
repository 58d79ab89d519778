"""CPU seconds and memory of the processes a benchmark variant involves.

CPU is always user + system seconds. For a long-lived server (the PostgreSQL postmaster, `weed`)
the count covers the process, its live descendants, and every child it has already reaped
(Linux adds a child's usage to its parent's `children_*` times on `wait`), so backends that
come and go during a variant are counted too. The difference of two such readings is the CPU
the server tree spent in between.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

import psutil

MIB: Final = 1024 * 1024
KTHREADD: Final = 2  # the parent of every kernel thread

CpuReader = Callable[[], float]


def _own_cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid`, its live descendants and its reaped children, in seconds."""
    root = psutil.Process(pid)
    total = 0.0
    # Read the descendants first and the root last: a child reaped in between is then counted
    # twice (a few ms at most) rather than not at all.
    for child in root.children(recursive=True):
        try:
            total += _own_cpu(child)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    times = root.cpu_times()
    return total + times.user + times.system + times.children_user + times.children_system


def process_cpu_seconds(pid: int) -> float:
    """CPU of one process (all its threads), in seconds."""
    return _own_cpu(psutil.Process(pid))


def tree_reader(pid: int) -> CpuReader:
    return lambda: tree_cpu_seconds(pid)


def process_reader(pid: int) -> CpuReader:
    return lambda: process_cpu_seconds(pid)


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy (all cores), and stolen by the hypervisor."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return busy, float(getattr(t, "steal", 0.0))


def outside_cpu_seconds(roots: Sequence[int]) -> dict[int, float]:
    """CPU seconds of each live user-space process outside the trees under `roots`, by pid.

    Kernel threads are left out: their work (writeback of what the S3 server wrote, say) is
    part of what the benchmark costs, not a disturbance.
    """
    ours = set(roots)
    for root in roots:
        with suppress(psutil.NoSuchProcess):
            ours.update(p.pid for p in psutil.Process(root).children(recursive=True))
    out: dict[int, float] = {}
    for proc in psutil.process_iter(["pid", "ppid", "cpu_times"]):
        pid, ppid, times = proc.info["pid"], proc.info["ppid"], proc.info["cpu_times"]
        if pid in ours or KTHREADD in (pid, ppid) or pid == 0 or times is None:
            continue
        out[pid] = times.user + times.system
    return out


@dataclass(frozen=True, slots=True)
class Reading:
    """CPU seconds per named group; the whole machine's busy and stolen seconds; and the CPU of
    user-space processes outside the benchmark (by pid in a reading, summed in a difference)."""

    groups: dict[str, float]
    machine: float
    steal: float
    outside: dict[int, float]


class CpuMeter:
    """Named CPU readers, read together; `spent` is the CPU used between two readings.

    `roots` are the process trees that belong to the benchmark (this process, whose children
    are the pipelines, `weed` and exportd; the postmaster): everything else is "outside".
    """

    def __init__(self, readers: Mapping[str, CpuReader], roots: Sequence[int]) -> None:
        self._readers = dict(readers)
        self._roots = tuple(roots)

    def read(self) -> Reading:
        groups = {name: reader() for name, reader in self._readers.items()}
        return Reading(groups, *machine_cpu_seconds(), outside_cpu_seconds(self._roots))

    @staticmethod
    def spent(before: Reading, after: Reading) -> Reading:
        groups = {g: max(0.0, after.groups[g] - before.groups[g]) for g in before.groups}
        outside = sum(
            max(0.0, s - before.outside.get(pid, 0.0)) for pid, s in after.outside.items()
        )
        machine, steal = after.machine - before.machine, after.steal - before.steal
        return Reading(groups, machine, steal, {0: outside})

    @staticmethod
    def outside_total(reading: Reading) -> float:
        return sum(reading.outside.values())


def reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for a child process and return the CPU seconds it (and its reaped children) used."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime
