"""The client CLI (`exportd export`, `exportd exports ...`, `exportd types`) against a real
exportd process: files saved and checked (and not overwritten unasked), JSON for scripts,
progress on a terminal (fitting 80 columns) and in plain lines, failures and cancels as exit
codes said once, and reruns that resume instead of creating a second export."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.support.client import eventually
from tests.support.processes import EXPORTD, ExportdProcess, base_env
from tests.support.screenshots import screenshots_folder
from tests.support.terminal import (
    FlakyProxy,
    Mode,
    Terminal,
    moments,
    plain,
    run_cli,
    save_screenshot,
)
from tests.support.tokens import make_token

# The rows of each frame while it builds: "slow building  ━━━╺━━━ 22% · 2,197 of ~10,000 rows".
BUILDING = re.compile(r"(?:building|uploading) +\S+ +(?:\d+% · )?([\d,]+) (?:of ~[\d,]+ )?rows")
PAID = ("export", "orders", "-p", "since=2025-01-01", "-p", "status=paid")
# A build that runs until canceled (a pause every 1,000 rows: 200 of them).
LONG = ("export", "slow", "-p", "rows=200000", "-p", "pause_ms=200")
WAITING = "waiting for your tenant's earlier exports"


@pytest.fixture
async def server(replicas: Callable[..., Any]) -> ExportdProcess:
    (replica,) = await replicas(1)
    assert isinstance(replica, ExportdProcess)
    return replica


@pytest.fixture
async def limited(replicas: Callable[..., Any]) -> ExportdProcess:
    """A server that runs one build at a time per tenant: a second export waits in line."""
    (replica,) = await replicas(1, EXPORTD_TENANT_MAX_RUNNING="1")
    assert isinstance(replica, ExportdProcess)
    return replica


def cli_env(tmp_path: Path, url: str | None = None, **more: str) -> dict[str, str]:
    """The CLI's environment: this server and a token (when given), a private cache."""
    env = base_env() | {"XDG_CACHE_HOME": str(tmp_path / "cache"), "TERM": "xterm-256color"}
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    if url is not None:
        env |= {"EXPORTD_URL": url, "EXPORTD_TOKEN": make_token()}
    return env | more


def pending_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache").rglob("*.json"))


def partial_downloads(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


async def status_of(export_id: str, env: dict[str, str], cwd: Path) -> str:
    shown = await run_cli("exports", "show", export_id, "--json", env=env, cwd=cwd)
    assert shown.returncode == 0, shown
    status: str = json.loads(shown.stdout)["status"]
    return status


@asynccontextmanager
async def piped(
    *args: str, env: dict[str, str], cwd: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`exportd ARGS` with no terminal, output piped; killed if it outlives the block."""
    process = await asyncio.create_subprocess_exec(
        EXPORTD, *args, env=env, cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stderr_until(process: asyncio.subprocess.Process, marker: bytes) -> bytes:
    """What the process wrote to stderr, line by line, up to a line holding `marker`."""
    assert process.stderr is not None
    seen = b""
    async with asyncio.timeout(30):
        while marker not in seen:
            line = await process.stderr.readline()
            assert line, seen
            seen += line
    return seen


async def start_running(*args: str, env: dict[str, str], cwd: Path) -> str:
    """`exportd ARGS --no-wait`, once its export runs: the export's id."""
    created = await run_cli(*args, "--no-wait", env=env, cwd=cwd)
    assert created.returncode == 0, created
    export_id = created.stdout.strip()

    async def runs() -> bool:
        return await status_of(export_id, env, cwd) == "running"

    await eventually(runs, within=30)
    return export_id


async def cancel(export_id: str, env: dict[str, str], cwd: Path) -> None:
    canceled = await run_cli("exports", "cancel", export_id, env=env, cwd=cwd)
    assert canceled.returncode == 0, canceled


async def listed_ids(env: dict[str, str], cwd: Path) -> list[str]:
    listed = await run_cli("exports", "ls", "--json", env=env, cwd=cwd)
    assert listed.returncode == 0, listed
    return [e["id"] for e in json.loads(listed.stdout)["items"]]


async def test_export_saves_a_verified_file_and_prints_json(
    server: ExportdProcess, tmp_path: Path
) -> None:
    run = await run_cli(
        *PAID, "--format", "parquet", "-o", "paid.parquet", "--json",
        env=cli_env(tmp_path, server.url), cwd=tmp_path,
    )  # fmt: skip

    assert run.returncode == 0, run
    assert run.stderr == ""  # --json and no terminal: nothing but the JSON, on stdout
    shown = json.loads(run.stdout)
    assert shown["status"] == "succeeded"
    saved = tmp_path / "paid.parquet"
    assert shown["saved_to"] == str(saved)
    data = saved.read_bytes()
    assert len(data) == shown["result"]["size"]
    assert hashlib.sha256(data).hexdigest() == shown["result"]["sha256"]
    table = pq.read_table(saved, use_threads=False)
    assert table.num_rows == shown["result"]["rows"] > 0
    assert set(table.column("status").to_pylist()) == {"paid"}
    assert pending_files(tmp_path) == []  # done: the next run is a new export
    assert partial_downloads(tmp_path) == []


async def test_scripts_get_json_from_every_command(server: ExportdProcess, tmp_path: Path) -> None:
    # Next to `exportd dev`: the URL and token come from its dev.json, found from a subfolder.
    dev = tmp_path / ".exportd-dev"
    dev.mkdir()
    (dev / "dev.json").write_text(json.dumps({"api_url": server.url, "token": make_token()}))
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    env = cli_env(tmp_path)

    async def cli_json(*args: str) -> Any:
        run = await run_cli(*args, "--json", env=env, cwd=work)
        assert run.returncode == 0, run
        return json.loads(run.stdout)

    types = {t["name"]: t for t in (await cli_json("types"))["items"]}
    params = {p["name"]: p for p in types["numbers"]["params"]}
    assert params["rows"] == {"name": "rows", "type": "int", "required": True}
    created = await cli_json("export", "numbers", "-p", "rows=500", "-p", "flag=no", "--no-wait")
    assert (created["params"]["rows"], created["params"]["flag"]) == (500, False)  # typed
    done = await cli_json("exports", "wait", created["id"])
    assert done["status"] == "succeeded"
    listed = await cli_json("exports", "ls")
    assert [e["id"] for e in listed["items"]] == [created["id"]]
    assert (await cli_json("exports", "show", created["id"]))["result"] == done["result"]
    again = await cli_json("exports", "download", created["id"], "-o", "numbers.csv")
    data = (work / "numbers.csv").read_bytes()
    assert again["saved_to"] == str(work / "numbers.csv")
    assert hashlib.sha256(data).hexdigest() == done["result"]["sha256"]
    assert data.count(b"\n") == 501
    # Without dev.json's URL, its token is not sent elsewhere.
    other = await run_cli("types", env=env | {"EXPORTD_URL": "http://127.0.0.1:9"}, cwd=work)
    assert other.returncode == 2, other
    assert "no token for http://127.0.0.1:9" in other.stderr


@pytest.mark.timeout(90)
async def test_progress_on_a_terminal_advances_and_makes_the_screenshot(
    server: ExportdProcess, tmp_path: Path
) -> None:
    args = ("export", "slow", "-p", "rows=10000", "-p", "pause_ms=150", "-o", "slow.csv")
    terminal = Terminal(*args, env=cli_env(tmp_path, server.url), cwd=tmp_path)
    await terminal.start()

    code = await terminal.exit_code()

    assert code == 0, terminal.text
    text = plain(terminal.text)
    assert "━" in text  # a bar, not plain lines
    rows = [int(n.replace(",", "")) for n in BUILDING.findall(text)]
    assert len(set(rows)) >= 3, text  # it moved while building
    assert rows == sorted(rows), rows
    assert "download" in text
    assert text.rstrip().endswith("saved slow.csv (10,000 rows, 10.1 MB, sha256 verified)")
    assert (tmp_path / "slow.csv").read_bytes().count(b"\n") == 10_001
    # The README's picture (cli.svg): the screen halfway through the build.
    building = [m for m in moments(terminal.text) if " building " in plain(m)]
    building = [m for m in building if re.search(r"\d+% ·", plain(m))] or building
    assert building, text
    picture = screenshots_folder(tmp_path) / "cli.svg"
    save_screenshot(building[len(building) // 2], picture, command="exportd " + " ".join(args))
    assert picture.read_text().startswith("<svg")


async def test_a_failed_export_exits_1_with_its_reason(
    server: ExportdProcess, tmp_path: Path
) -> None:
    run = await run_cli("export", "broken", env=cli_env(tmp_path, server.url), cwd=tmp_path)

    assert run.returncode == 1, run
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("exportd: export ") and " failed: " in last
    assert "The export's query failed in the database. (query_failed, error id " in last
    assert run.stdout == ""
    assert pending_files(tmp_path) == []  # finished: a rerun tries again


async def test_ctrl_c_without_a_terminal_leaves_the_export_running(
    server: ExportdProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, server.url)
    args = ("export", "slow", "-p", "rows=200000", "-p", "pause_ms=50")
    async with piped(*args, env=env, cwd=tmp_path) as process:
        seen = await stderr_until(process, b" building: ")  # "export ID building: ..."
        export_id = seen.split(b"export ")[1].split()[0].decode()

        process.send_signal(signal.SIGINT)  # no terminal: no question
        _, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 130, stderr
    assert f"`exportd exports wait {export_id}`" in stderr.decode()
    assert await status_of(export_id, env, tmp_path) == "running"
    assert len(pending_files(tmp_path)) == 1  # a rerun would pick it up again
    await cancel(export_id, env, tmp_path)
    waited = await run_cli("exports", "wait", export_id, env=env, cwd=tmp_path)
    assert waited.returncode == 1, waited
    # Said once, as the command's error (not a progress line too).
    assert waited.stderr == f"exportd: export {export_id} canceled: the export was canceled\n"


async def test_ctrl_c_on_a_terminal_asks_and_cancels(
    server: ExportdProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, server.url)
    args = ("export", "slow", "-p", "rows=200000", "-p", "pause_ms=50")
    terminal = Terminal(*args, env=env, cwd=tmp_path)
    await terminal.start()
    await terminal.wait_for(r"slow\s+building")

    terminal.interrupt()
    await terminal.wait_for(r"Cancel the export on the server\? \[y/N\]")
    terminal.type("y\n")
    code = await terminal.exit_code()

    assert code == 1, terminal.text
    found = re.search(r"exportd: export (\S+) canceled", plain(terminal.text))
    assert found, terminal.text
    shown = await run_cli("exports", "show", found.group(1), "--json", env=env, cwd=tmp_path)
    assert json.loads(shown.stdout)["status"] == "canceled"
    assert pending_files(tmp_path) == []


async def test_a_rerun_after_a_lost_answer_resumes_the_same_export(
    server: ExportdProcess, tmp_path: Path
) -> None:
    async with FlakyProxy(server.port) as proxy:
        env = cli_env(tmp_path, proxy.url)
        args = (*PAID, "-o", "paid.csv", "--retries", "1")
        proxy.mode = Mode.LOSE_CREATE

        first = await run_cli(*args, env=env, cwd=tmp_path)

        assert proxy.lost >= 1
        assert first.returncode == 3, first
        assert "exportd: rerun the same command" in first.stderr
        assert len(pending_files(tmp_path)) == 1
        proxy.mode = Mode.UP

        second = await run_cli(*args, env=env, cwd=tmp_path)

        assert second.returncode == 0, second
        listed = await run_cli("exports", "ls", "--json", env=env, cwd=tmp_path)
        (export,) = json.loads(listed.stdout)["items"]  # the lost create, and no other
        assert f"resuming export {export['id']}, created by an earlier run" in second.stderr
        assert second.stdout.startswith("saved paid.csv (")
        assert pending_files(tmp_path) == []

        # Done: the same command again is a new export, whose file would replace this one.
        third = await run_cli(*args, env=env, cwd=tmp_path)
        assert third.returncode == 2, third
        assert len(await listed_ids(env, tmp_path)) == 1
        forced = await run_cli(*args, "--force", env=env, cwd=tmp_path)
        assert forced.returncode == 0, forced
        assert len(await listed_ids(env, tmp_path)) == 2


async def test_a_queued_export_says_where_it_stands_in_plain_lines(
    limited: ExportdProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, limited.url)
    blocker = await start_running(*LONG, env=env, cwd=tmp_path)
    try:
        async with piped("export", "slow", "-p", "rows=1000", env=env, cwd=tmp_path) as process:
            seen = await stderr_until(process, b" in line")
            export_id = seen.split()[1].decode()
            await cancel(export_id, env, tmp_path)
            _, rest = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await cancel(blocker, env, tmp_path)

    lines = (seen + rest).decode().splitlines()
    assert process.returncode == 1, lines
    # The answer to the create has no place in line yet: just "queued", no claim of why.
    assert lines[0] == f"export {export_id} queued"
    assert re.fullmatch(
        rf"export {export_id} queued: #1 in line · 0 ahead · {WAITING}( · starts in ~\S+)?",
        lines[1],
    ), lines
    assert lines[-1] == f"exportd: export {export_id} canceled: the export was canceled"
    assert sum("the export was canceled" in line for line in lines) == 1


async def test_a_queued_export_keeps_its_status_and_bar_in_80_columns(
    limited: ExportdProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, limited.url)
    blocker = await start_running(*LONG, env=env, cwd=tmp_path)
    terminal = Terminal("export", "orders", "-p", "since=2025-01-01", env=env, cwd=tmp_path,
                        columns=80)  # fmt: skip
    try:
        await terminal.start()
        await terminal.wait_for(r"orders queued +━+ #1 in line")
        terminal.interrupt()
        await terminal.wait_for(r"Cancel the export on the server\? \[y/N\]")
        terminal.type("y\n")
        code = await terminal.exit_code()
    finally:
        await terminal.close()
        await cancel(blocker, env, tmp_path)

    assert code == 1, terminal.text
    screens = [plain(moment) for moment in moments(terminal.text)]
    assert all(len(line) <= 80 for screen in screens for line in screen.splitlines()), screens
    queued = [line for s in screens for line in s.splitlines() if line.startswith("orders queued")]
    # First "queued" alone (nothing counted yet), then where it stands, in what fits: the
    # name, the status and the bar stay; "0 ahead" goes, the reason shortens.
    assert re.fullmatch(r"orders queued +━{16}", queued[0].rstrip()), queued
    assert re.fullmatch(
        r"orders queued +━{16} #1 in line · tenant limit( · ~\S+)?", queued[-1].rstrip()
    ), queued


async def test_no_wait_reruns_give_the_same_export_until_it_finished(
    server: ExportdProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, server.url)
    first = await start_running(*LONG, env=env, cwd=tmp_path)

    again = await run_cli(*LONG, "--no-wait", env=env, cwd=tmp_path)
    forced = await run_cli(*LONG, "--no-wait", "--new", env=env, cwd=tmp_path)
    wrong = await run_cli("exports", "ls", "--status", "building", env=env, cwd=tmp_path)
    running = await run_cli("exports", "ls", "--status", "running", env=env, cwd=tmp_path)
    await cancel(forced.stdout.strip(), env, tmp_path)
    await cancel(first, env, tmp_path)
    after = await run_cli(*LONG, "--no-wait", env=env, cwd=tmp_path)
    await cancel(after.stdout.strip(), env, tmp_path)

    assert again.returncode == 0, again
    assert again.stdout.strip() == first
    assert again.stderr == f"export {first} already exists (created by an earlier run)\n"
    assert forced.returncode == 0, forced
    assert forced.stdout.strip() != first
    # ls filters on what it shows: the status; the phase is a detail beside it.
    assert wrong.returncode == 2, wrong
    assert "invalid choice: 'building'" in wrong.stderr and "'running'" in wrong.stderr
    assert running.returncode == 0, running
    assert re.search(rf"{first} +slow +running \((building|uploading)\) ", running.stdout)
    # The first export finished (canceled): the same command makes a new one.
    assert after.returncode == 0, after
    assert after.stdout.strip() not in (first, forced.stdout.strip())
    assert after.stderr == ""
    assert len(await listed_ids(env, tmp_path)) == 3


async def test_an_existing_file_is_replaced_only_when_it_is_the_exports_or_forced(
    server: ExportdProcess, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, server.url)
    args = ("export", "numbers", "-p", "rows=50", "-o", "numbers.csv")
    made = await run_cli(*args, env=env, cwd=tmp_path)
    assert made.returncode == 0, made
    (export_id,) = await listed_ids(env, tmp_path)
    saved = tmp_path / "numbers.csv"

    rerun = await run_cli(*args, env=env, cwd=tmp_path)  # a new export: refused, none made
    fetched = await run_cli("exports", "download", export_id, "-o", "numbers.csv", env=env,
                            cwd=tmp_path)  # fmt: skip
    saved.write_text("mine\n")
    refused = await run_cli("exports", "download", export_id, "-o", "numbers.csv", env=env,
                            cwd=tmp_path)  # fmt: skip
    kept = saved.read_text()
    forced = await run_cli("exports", "download", export_id, "-o", "numbers.csv", "--force",
                           env=env, cwd=tmp_path)  # fmt: skip

    assert rerun.returncode == 2, rerun
    assert rerun.stderr == "exportd: numbers.csv exists; use --force to overwrite\n"
    assert await listed_ids(env, tmp_path) == [export_id]
    assert pending_files(tmp_path) == []
    assert fetched.returncode == 0, fetched  # this export's file: nothing to refuse
    assert fetched.stdout.startswith("saved numbers.csv (50 rows, ")
    assert refused.returncode == 2, refused
    assert refused.stderr == "exportd: numbers.csv exists; use --force to overwrite\n"
    assert kept == "mine\n"
    assert forced.returncode == 0, forced
    assert saved.read_bytes().count(b"\n") == 51
    assert partial_downloads(tmp_path) == []
