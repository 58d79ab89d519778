"""A wheel, not the editable checkout: built, installed into a fresh virtualenv, it migrates
an empty database (the migrations ship inside it) and serves an export and the web page."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import sysconfig
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from exportd.config import Settings, as_env
from exportd.db.migrate import load_migrations
from exportd.dev.demo import load_demo
from exportd.dev.servers import EmbeddedPostgres, free_port
from tests.support.catalog import TEST_SCHEMA
from tests.support.client import create, wait_until
from tests.support.database import SCHEMA, connect
from tests.support.processes import ROOT, ExportdProcess, base_env, run_exportd


def run(*argv: str | Path, cwd: Path) -> str:
    """Run a command from `cwd` (never the checkout, whose exportd/ would shadow the wheel)."""
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install_wheel(tmp_path: Path) -> Path:
    """Build the wheel, make a fresh venv, install the wheel alone into it; the venv's bin.

    The venv reaches exportd's dependencies through a .pth line naming this environment's
    site-packages (so nothing is downloaded); exportd itself comes only from the wheel.
    """
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", dist, ROOT, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("exportd-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run(python, "-c", purelib, cwd=tmp_path).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel, cwd=tmp_path)  # fmt: skip
    where = run(python, "-c", "import exportd; print(exportd.__file__)", cwd=tmp_path)
    assert where.startswith(str(site)), where
    return venv / "bin"


@pytest.mark.timeout(300)
async def test_a_wheel_in_a_fresh_venv_migrates_an_empty_database_and_serves(
    tmp_path: Path, pg: EmbeddedPostgres, settings: Settings
) -> None:
    bin_dir = await asyncio.to_thread(install_wheel, tmp_path)
    dsn = await pg.recreate_database("wheel_install")
    exportd = str(bin_dir / "exportd")

    migrated = await run_exportd("migrate", env=base_env() | {"EXPORTD_DATABASE_URL": dsn},
                                 executable=exportd)  # fmt: skip

    assert migrated.returncode == 0, migrated
    names = [m.name for m in load_migrations()]
    assert re.search(rf"applied {len(names)} migration\(s\): {', '.join(names)}", migrated.stdout)

    # The data the test catalog reads (its SQL is checked at start), and the test catalog
    # without its hook module: tests/ is not importable from the wheel's venv.
    await load_demo(dsn, schema=SCHEMA)
    conn = await connect(dsn)
    try:
        await conn.execute(TEST_SCHEMA.read_text())
    finally:
        await conn.close()
    served = replace(settings, database_url=dsn, catalog_hooks="")
    port = free_port()
    process = ExportdProcess.serve(
        "wheel",
        port=port,
        env=base_env() | as_env(served),
        log_path=tmp_path / "wheel.log",
        executable=exportd,
    )
    try:
        await process.start()
        async with aiohttp.ClientSession(base_url=process.url) as http:
            created = await create(http, {"export": "numbers", "params": {"rows": 10}})
            done = await wait_until(http, created["id"])
            # The page's static files are package data: they must be in the wheel.
            async with http.get("/") as page, http.get("/static/app.js") as script:
                assert (page.status, script.status) == (200, 200)
                assert page.content_type == "text/html"
        assert done["status"] == "succeeded", (done, process.log()[-2000:])
        assert done["result"]["rows"] == 10
    finally:
        process.stop()
