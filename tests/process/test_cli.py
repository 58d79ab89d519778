"""The `exportd` command: configuration errors, and `exportd dev` from start to a clean stop."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shlex
import signal
import socket
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil
import pytest

from exportd.config import Settings
from exportd.dev.demo import TENANTS as DEMO_TENANTS
from exportd.dev.servers import free_port
from tests.support.catalog import CATALOG_PATH
from tests.support.client import download_export, eventually, wait_until
from tests.support.processes import ExportdProcess, base_env, run_exportd
from tests.support.tokens import AUDIENCE, JWT_SECRET

TESTS_DIR = Path(__file__).parent
DEV_FACTS = ("api_url", "token", "tokens", "mail_dir", "s3_endpoint", "database_url")
ORDERS = {"export": "orders", "params": {"since": "2025-01-01"}}
ORDERS_HEADER = ["id", "customer", "status", "total", "currency", "paid", "created_at", "note"]


def serve_env(**changes: str | None) -> dict[str, str]:
    """A valid serve environment (its database unreachable), with `changes` (None unsets)."""
    env = base_env() | {
        "EXPORTD_DATABASE_URL": f"postgresql://exportd@127.0.0.1:{free_port()}/exportd",
        "EXPORTD_CATALOG": str(CATALOG_PATH),
        "EXPORTD_JWT_SECRET": JWT_SECRET,
        "EXPORTD_JWT_AUDIENCE": AUDIENCE,
        "EXPORTD_PUBLIC_URL": "http://exports.test",
        "EXPORTD_S3_BUCKET": "exportd-test",
        "EXPORTD_PORT": str(free_port()),
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- configuration errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"EXPORTD_DATABASE_URL": None}, "EXPORTD_DATABASE_URL"),
        ({"EXPORTD_WORKERS": "abc"}, "EXPORTD_WORKERS"),
        ({"EXPORTD_S3_BUCKET": None}, "EXPORTD_S3_BUCKET"),
        ({"EXPORTD_JWT_SECRET": None}, "EXPORTD_JWT_SECRET"),
        (
            {"EXPORTD_CATALOG": str(TESTS_DIR / "no-such-catalog.toml")},
            str(TESTS_DIR / "no-such-catalog.toml"),
        ),
    ],
    ids=["no-database-url", "bad-workers", "no-bucket", "no-jwt-secret", "no-catalog-file"],
)
async def test_serve_with_bad_configuration_exits_2_naming_the_problem(
    changes: Mapping[str, str | None], named: str
) -> None:
    run = await run_exportd("serve", env=serve_env(**changes))

    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("exportd: ")
    assert named in lines[0]
    assert run.stdout == ""


async def test_serve_with_an_invalid_catalog_names_the_file(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text("[exports.orders]\nsql = 'SELECT 1'\n")

    run = await run_exportd("serve", env=serve_env(EXPORTD_CATALOG=str(catalog)))

    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert str(catalog) in lines[0]
    assert ":tenant" in lines[0]


async def test_serve_with_an_unreachable_database_says_so_in_one_line() -> None:
    run = await run_exportd("serve", env=serve_env())

    assert run.returncode == 1, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "cannot connect to EXPORTD_DATABASE_URL" in lines[0]


async def test_serve_refuses_a_catalog_whose_sql_does_not_plan(tmp_path: Path, dsn: str) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '[exports.typo]\ntenant_scoped = false\nsql = "SELEC 1"\n'
        '[exports.missing]\nsql = "SELECT nope FROM demo.orders WHERE tenant = :tenant"\n'
        '[exports.fine]\nsql = "SELECT id FROM demo.orders WHERE tenant = :tenant"\n'
    )

    run = await run_exportd(
        "serve", env=serve_env(EXPORTD_DATABASE_URL=dsn, EXPORTD_CATALOG=str(catalog))
    )

    assert run.returncode == 1, run
    assert run.stderr.strip().splitlines() == [
        "exportd: catalog export 'typo' does not plan: syntax error at or near \"SELEC\"",
        "exportd: catalog export 'missing' does not plan: column \"nope\" does not exist "
        '(hint: Perhaps you meant to reference the column "orders.note".)',
    ]


async def test_serve_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(EXPORTD_HOST="127.0.0.1", EXPORTD_PORT=str(port))

        run = await run_exportd("serve", env=env)

    assert run.returncode == 1, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "EXPORTD_PORT" in lines[0]


async def test_dev_on_a_port_in_use_says_so_before_starting_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        run = await run_exportd(
            "dev", "--port", str(port), "--data-dir", str(data_dir), env=base_env()
        )

    assert run.returncode == 1, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert not (data_dir / "postgres").exists()  # nothing was started
    assert "dev is up" not in run.stdout


async def test_migrate_without_a_database_url_exits_2_naming_it() -> None:
    run = await run_exportd("migrate", env=base_env())

    assert run.returncode == 2, run
    assert run.stderr.strip().splitlines() == ["exportd: EXPORTD_DATABASE_URL is required"]


async def test_migrate_with_an_unreachable_database_says_so_in_one_line() -> None:
    run = await run_exportd("migrate", env=serve_env())

    assert run.returncode != 0, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "EXPORTD_DATABASE_URL" in lines[0]


# --- exportd dev --------------------------------------------------------------------


@dataclass(frozen=True)
class Dev:
    """A running `exportd dev`, in its own session, its output in a log file."""

    process: ExportdProcess
    data_dir: Path

    def output(self) -> str:
        return self.process.log()

    def facts(self) -> dict[str, Any] | None:
        """dev.json, once it is there and complete."""
        try:
            facts: dict[str, Any] = json.loads((self.data_dir / "dev.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return facts

    def processes(self) -> list[Any]:
        """Live processes whose command line mentions the data dir (weed, postgres, exportd)."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if proc.pid != os.getpid() and any(str(self.data_dir) in arg for arg in cmdline):
                found.append(proc)
        return found

    async def leftovers(self) -> list[tuple[int, list[str]]]:
        """What still runs after the process ended (a process on its way out gets 5 s)."""
        _, alive = await asyncio.to_thread(psutil.wait_procs, self.processes(), 5)
        return [(proc.pid, proc.info["cmdline"]) for proc in alive]

    async def stop_everything(self) -> None:
        """Kill what the test started, whatever state it left it in."""
        if self.process.running:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait_exit()
        # PostgreSQL daemonizes and weed runs in its own session: neither is in that group.
        leftovers = self.processes()
        for proc in leftovers:
            with suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = await asyncio.to_thread(psutil.wait_procs, leftovers, 10)
        for proc in alive:
            with suppress(psutil.NoSuchProcess):
                proc.kill()


def start_dev(tmp_path: Path) -> Dev:
    data_dir = (tmp_path / "dev").resolve()
    port = free_port()
    process = ExportdProcess(
        name="dev",
        args=("dev", "--port", str(port), "--data-dir", str(data_dir)),
        env=base_env(),
        log_path=tmp_path / "dev.log",
        port=port,
    )
    process.launch()
    return Dev(process, data_dir)


async def is_ready(http: aiohttp.ClientSession, api_url: str) -> bool:
    try:
        async with http.get(f"{api_url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_until_up(dev: Dev, http: aiohttp.ClientSession) -> dict[str, Any]:
    """Poll (up to 45 s) until dev.json is written and /readyz answers 200; return the facts."""
    try:
        async with asyncio.timeout(45):
            while True:
                assert dev.process.running, f"exportd dev exited:\n{dev.output()}"
                facts = dev.facts()
                if facts is not None and await is_ready(http, facts["api_url"]):
                    return facts
                await asyncio.sleep(0.2)
    except TimeoutError:
        pytest.fail(f"exportd dev was not ready within 45 s:\n{dev.output()}")


def first_mail(mail_dir: Path) -> EmailMessage | None:
    found = sorted(mail_dir.glob("*.eml"))
    if not found:
        return None
    message = message_from_bytes(found[0].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def wait_for_mail(mail_dir: Path) -> EmailMessage:
    """Poll (up to 20 s) for the first .eml file the dev mail sink writes."""
    async with asyncio.timeout(20):
        while (message := first_mail(mail_dir)) is None:  # noqa: ASYNC110 - written elsewhere
            await asyncio.sleep(0.1)
    return message


def kept_webhooks(inbox: Path) -> list[dict[str, Any]]:
    """The deliveries the dev inbox kept, as JSON."""
    return [json.loads(path.read_text()) for path in sorted(inbox.glob("*.json"))]


def read_dev_env(path: Path) -> dict[str, str]:
    """dev.env's KEY='value' lines, unquoted as a shell would."""
    env = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        [env[key]] = shlex.split(value) or [""]
    return env


@pytest.mark.timeout(120)  # every wait below is bounded; this keeps room for the cleanup
async def test_dev_serves_the_demo_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    dev = start_dev(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            facts = await wait_until_up(dev, http)

            assert set(DEV_FACTS) <= set(facts), facts
            assert set(facts["tokens"]) == set(DEMO_TENANTS) == {"acme", "globex", "initech"}
            assert facts["token"] == facts["tokens"]["acme"]
            replica = read_dev_env(dev.data_dir / "dev.env")
            assert replica["EXPORTD_DATABASE_URL"] == facts["database_url"]
            assert replica["EXPORTD_S3_ENDPOINT_URL"] == facts["s3_endpoint"]
            Settings.from_env(replica)  # a replica can start from it as it is
            for private in ("dev.json", "dev.env", "jwt-secret"):
                assert (dev.data_dir / private).stat().st_mode & 0o077 == 0, private

            # A second dev on the same data dir says so in one line, and stops.
            second = await run_exportd(
                "dev", "--port", str(free_port()), "--data-dir", str(dev.data_dir), env=base_env()
            )
            assert second.returncode == 1, second
            assert second.stderr.strip().splitlines() == [
                f"exportd: exportd dev is already running with data dir {dev.data_dir} "
                f"(pid {dev.process.pid}); stop it or pass another --data-dir"
            ]

            dev_auth = {"Authorization": f"Bearer {facts['token']}"}
            async with aiohttp.ClientSession(base_url=facts["api_url"]) as api:
                response = await api.post("/v1/exports", json=ORDERS, headers=dev_auth)
                assert response.status == 202, await response.text()
                export_id = (await response.json())["id"]
                done = await wait_until(api, export_id, headers=dev_auth)

                assert done["status"] == "succeeded", done
                result = done["result"]
                body, _ = await download_export(api, done, headers=dev_auth)
        records = list(csv.reader(io.StringIO(body.decode(), newline="")))
        assert records[0] == ORDERS_HEADER
        assert len(records) == result["rows"] + 1
        mail = await wait_for_mail(Path(facts["mail_dir"]))
        assert mail["To"] == "dev@acme.example"
        assert mail["Message-ID"] == f"<export.{export_id}.ready@localhost>"
        # The dev inbox got the tenant's event, and its signature checked out.
        inbox = Path(facts["webhook_dir"])
        await eventually(lambda: any(inbox.glob("*.json")), within=30)
        (kept,) = kept_webhooks(inbox)
        assert kept["signature"] == "signature ok", kept
        assert json.loads(kept["body"])["type"] == "export.succeeded"
        assert json.loads(kept["body"])["data"]["id"] == export_id
        assert f"webhook export.succeeded export {export_id} (signature ok)" in dev.output()
        conn = await asyncpg.connect(facts["database_url"])
        try:
            demo = await conn.fetchrow(
                "SELECT count(*) AS total, count(DISTINCT tenant) AS tenants,"
                " count(*) FILTER (WHERE tenant = 'acme') AS acme FROM demo.orders"
            )
        finally:
            await conn.close()
        assert demo is not None
        assert demo["total"] >= 100_000
        assert demo["tenants"] >= 3
        assert result["rows"] == demo["acme"]

        dev.process.signal(signal.SIGTERM)
        returncode = await dev.process.wait_exit()

        assert returncode == 0, dev.output()
        assert await dev.leftovers() == [], dev.output()
    finally:
        await dev.stop_everything()


@pytest.mark.timeout(120)  # as above
async def test_dev_stopped_while_starting_leaves_nothing_behind(tmp_path: Path) -> None:
    dev = start_dev(tmp_path)
    try:
        # Once weed runs, PostgreSQL does too, and dev is still starting (S3, mail, demo data).
        async with asyncio.timeout(45):
            while not any(p.info["cmdline"][0].endswith("weed") for p in dev.processes()):
                assert dev.process.running, dev.output()
                await asyncio.sleep(0.05)

        dev.process.signal(signal.SIGTERM)
        await dev.process.wait_exit()

        assert await dev.leftovers() == [], dev.output()
    finally:
        await dev.stop_everything()


async def test_version_and_help_are_for_users() -> None:
    shown = await run_exportd("--version", env=base_env())
    helped = await run_exportd("--help", env=base_env())

    assert shown.returncode == 0 and shown.stdout.strip() == f"exportd {version('exportd')}"
    assert helped.returncode == 0
    for command in ("serve", "migrate", "dev", "token"):
        assert f"    {command} " in helped.stdout
    assert "EXPORTD_" in helped.stdout


async def test_a_minted_token_opens_the_api(make_client: Callable[..., Any]) -> None:
    env = base_env() | {"EXPORTD_JWT_SECRET": JWT_SECRET, "EXPORTD_JWT_AUDIENCE": AUDIENCE}

    minted = await run_exportd(
        "token", "--sub", "ops-1", "--tenant", "acme", "--email", "ops@acme.example", env=env
    )

    assert minted.returncode == 0, minted
    client = await make_client(role="api")
    bearer = {"Authorization": f"Bearer {minted.stdout.strip()}"}
    assert (await client.get("/v1/export-types", headers=bearer)).status == 200


async def test_token_without_its_settings_names_them_all() -> None:
    run = await run_exportd("token", "--sub", "u", "--tenant", "t", env=base_env())

    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "exportd: EXPORTD_JWT_SECRET is required to mint tokens",
        "exportd: EXPORTD_JWT_AUDIENCE is required",
    ]
