"""PgQueuer's own benchmark, as published in its sdist (tools/benchmark.py, the `drain`
strategy), run against the same embedded PostgreSQL as a baseline for claim → complete.

The sdist is fetched with `pip download --no-deps --no-binary :all: pgqueuer` into the run's
temp dir each time. The script needs pgqueuer itself (with asyncpg), tqdm, typer and uvloop:
when the project's interpreter has them (a bench-only extra), the sdist of its pgqueuer version
is fetched and run there; else the newest sdist, in a venv kept in ~/.cache/exportd-bench/
(made once, ~30 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from bench.procstats import CpuMeter, reap
from bench.queue_measures import Metrics
from bench.queue_stack import Bed
from bench.queue_watch import disturbance

DATABASE: Final = "pgqueuer_bench"
CACHE: Final = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "exportd-bench"
BATCH: Final = 16  # the same batch as exportd's claim and the bare loop
PIP_TIMEOUT_S: Final = 300
RUN_TIMEOUT_S: Final = 600
PROBE: Final = (
    "import importlib.metadata as m, asyncpg, tqdm, typer, uvloop; print(m.version('pgqueuer'))"
)


@dataclass(frozen=True, slots=True)
class PgQueuerBench:
    python: str
    script: Path
    version: str
    env: dict[str, str]


def libpq_env(dsn: str) -> dict[str, str]:
    """The PG* variables for a DSN: the published script connects with `dsn=""`."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    env = {"PGUSER": unquote(parts.username or "postgres"), "PGDATABASE": parts.path.lstrip("/")}
    env["PGHOST"] = query["host"][0] if "host" in query else parts.hostname or "127.0.0.1"
    if parts.port:
        env["PGPORT"] = str(parts.port)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    return env


def _run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env, cwd=cwd, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[:4])} … failed: {' | '.join(tail)}")
    return done.stdout


def installed() -> str | None:
    """The pgqueuer version this interpreter has (with what the script imports), if any."""
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=False
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def fetch(workdir: Path, version: str | None) -> tuple[Path, Path, str]:
    """Download and unpack the sdist (of `version`, else the newest); (sdist,
    tools/benchmark.py, version)."""
    target = workdir / "pgqueuer-sdist"
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    wanted = "pgqueuer" if version is None else f"pgqueuer=={version}"
    _run([*pip, "--no-binary", ":all:", wanted, "-d", str(target)])
    [sdist] = sorted(target.glob("pgqueuer-*.tar.gz"))
    version = sdist.name.removeprefix("pgqueuer-").removesuffix(".tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(target, filter="data")
    script = target / f"pgqueuer-{version}" / "tools" / "benchmark.py"
    if not script.exists():
        raise RuntimeError(f"the sdist of pgqueuer {version} has no tools/benchmark.py")
    return sdist, script, version


def interpreter(sdist: Path, version: str, have: str | None) -> str:
    """A Python with pgqueuer `version`, asyncpg, tqdm, typer and uvloop: this one when it has
    them (`have` is its pgqueuer version), else the cached venv (made now if missing)."""
    if have == version:
        return sys.executable
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = CACHE / f"pgqueuer-{version}-{tag}"
    python = venv / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", f"{sdist}[asyncpg]", "tqdm"])
    return str(python)


async def prepare(bed: Bed, workdir: Path) -> PgQueuerBench:
    """The script, its interpreter, and a database of its own with PgQueuer's schema."""
    have = await asyncio.to_thread(installed)
    sdist, script, version = await asyncio.to_thread(fetch, workdir, have)
    python = await asyncio.to_thread(interpreter, sdist, version, have)
    dsn = await bed.stack.pg.recreate_database(DATABASE)
    env = os.environ | libpq_env(dsn) | {"PGQUEUER_TABLEFMT": "plain"}
    await asyncio.to_thread(_run, [python, "-m", "pgqueuer", "install"], env=env)
    return PgQueuerBench(python, script, version, env)


async def drain(bench: PgQueuerBench, bed: Bed, workdir: Path, workers: int, jobs: int) -> Metrics:
    """`benchmark.py --strategy drain`: enqueue `jobs`, then `workers` dequeue tasks drain them.

    Its rate is its own (jobs ÷ drain time). PostgreSQL's CPU is read around the whole process,
    so it includes the enqueue (one batched INSERT) and the set-up; the client's CPU includes
    its interpreter's start."""
    out = workdir / f"pgqueuer-{workers}.json"
    argv = [bench.python, str(bench.script), "--strategy", "drain", "--driver", "apg"]
    argv += ["--dequeue", str(workers), "--dequeue-batch-size", str(BATCH)]
    argv += ["--jobs", str(jobs), "--output-json", str(out)]
    meter = bed.meter()
    before, started = meter.read(), time.monotonic()
    log = workdir / f"pgqueuer-{workers}.log"
    returncode, client_cpu = await asyncio.to_thread(_run_timed, argv, bench, log)
    spent, wall = CpuMeter.spent(before, meter.read()), time.monotonic() - started
    if returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"benchmark.py exited {returncode}: {' | '.join(tail)}")
    result = json.loads(out.read_text())
    return {
        "jobs": float(jobs),
        "jobs_s": float(result["rate"]),
        "postgres_cpu_ms_per_job": 1000 * spent.groups["postgres"] / jobs,
        "load_cpu_ms_per_job": 1000 * client_cpu / jobs,
    } | disturbance(spent, wall)


def _run_timed(argv: list[str], bench: PgQueuerBench, log: Path) -> tuple[int, float]:
    """Run to the end (killed after RUN_TIMEOUT_S); its exit code and CPU seconds."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv,
            env=bench.env,
            cwd=bench.script.parent.parent,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    timer = threading.Timer(RUN_TIMEOUT_S, process.kill)
    timer.start()
    try:
        cpu = reap(process)
    finally:
        timer.cancel()
    return process.returncode, cpu
