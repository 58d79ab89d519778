"""The client CLI (`exportd export`, `exportd exports ...`, `exportd types`) against a real
exportd process: files saved and checked, JSON for scripts, progress on a terminal, failures
and cancels as exit codes, and reruns that resume instead of creating a second export."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

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


@pytest.fixture
async def server(replicas: Callable[..., Any]) -> ExportdProcess:
    (replica,) = await replicas(1)
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
    process = await asyncio.create_subprocess_exec(
        EXPORTD, *args, env=env, cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        seen = b""
        async with asyncio.timeout(30):
            while b" building: " not in seen:  # plain lines: "export ID building: ..."
                line = await process.stderr.readline()
                assert line, seen
                seen += line
        export_id = seen.split(b"export ")[1].split()[0].decode()

        process.send_signal(signal.SIGINT)  # no terminal: no question
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 130, stderr
    assert f"`exportd exports wait {export_id}`" in stderr.decode()
    shown = await run_cli("exports", "show", export_id, "--json", env=env, cwd=tmp_path)
    assert json.loads(shown.stdout)["status"] == "running"
    assert len(pending_files(tmp_path)) == 1  # a rerun would pick it up again
    canceled = await run_cli("exports", "cancel", export_id, env=env, cwd=tmp_path)
    assert canceled.returncode == 0, canceled
    waited = await run_cli("exports", "wait", export_id, env=env, cwd=tmp_path)
    assert waited.returncode == 1, waited
    assert f"exportd: export {export_id} canceled: the export was canceled" in waited.stderr


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

        # Done: the same command again is a new export.
        third = await run_cli(*args, env=env, cwd=tmp_path)
        assert third.returncode == 0, third
        listed = await run_cli("exports", "ls", "--json", env=env, cwd=tmp_path)
        assert len(json.loads(listed.stdout)["items"]) == 2
