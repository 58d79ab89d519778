"""Fixtures: one stack of real servers per run (PostgreSQL, S3, an SMTP sink), a fresh database
per test, exportd in-process or as processes. Unit tests use none of them, so start none."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from exportd.api.keys import Role
from exportd.config import Settings
from exportd.dev.demo import load_demo
from exportd.dev.servers import EmbeddedPostgres, EmbeddedS3, MailSink, free_port
from exportd.dev.stack import Stack, running_stack
from exportd.export.catalog import Catalog
from exportd.server import build_app
from tests.support.catalog import CATALOG_PATH, HOOKS, TEST_SCHEMA, load_test_catalog
from tests.support.database import SCHEMA, connect
from tests.support.mail import Mailbox
from tests.support.processes import ExportdProcess, fleet_env
from tests.support.tokens import AUDIENCE, JWT_SECRET

TEMPLATE_DB = "exportd_template"
BUCKET = "exportd-test"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # Not under pytest's tmp_path: that is private to root (0700), and postgres runs as the
    # `pgserver` user, which must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="exportd-test-"))
    try:
        with running_stack(root, bucket=BUCKET) as servers:
            yield servers
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(stack: Stack) -> EmbeddedPostgres:
    return stack.pg


@pytest.fixture(scope="session")
def s3(stack: Stack) -> EmbeddedS3:
    return stack.s3


@pytest.fixture(scope="session")
def mail_sink(stack: Stack) -> MailSink:
    return stack.mail


@pytest.fixture(scope="session")
def template_db(pg: EmbeddedPostgres) -> str:
    """A migrated database with the demo data; each test copies it (CREATE DATABASE … TEMPLATE)."""

    async def build() -> None:
        dsn = await pg.recreate_database(TEMPLATE_DB)
        await load_demo(dsn, schema=SCHEMA)
        await admin_execute(pg, TEST_SCHEMA.read_text(), database=dsn)

    asyncio.run(build())
    return TEMPLATE_DB


@pytest.fixture
async def dsn(pg: EmbeddedPostgres, template_db: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    await admin_execute(pg, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    yield pg.dsn(name)
    # A fresh connection: the test may have restarted the server meanwhile.
    await admin_execute(pg, f"DROP DATABASE {name} WITH (FORCE)")


async def admin_execute(pg: EmbeddedPostgres, sql: str, *, database: str | None = None) -> None:
    admin = await asyncpg.connect(database or pg.uri)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    connection = await connect(dsn)
    yield connection
    await connection.close()


@pytest.fixture
def mailbox(mail_sink: MailSink) -> Mailbox:
    return Mailbox(mail_sink, len(mail_sink.messages))


@pytest.fixture
def settings(dsn: str, s3: EmbeddedS3, mail_sink: MailSink) -> Settings:
    return Settings(
        database_url=dsn,
        public_url="http://exportd.test",
        catalog_path=CATALOG_PATH,
        catalog_hooks=",".join(HOOKS),
        jwt_secret=JWT_SECRET,
        jwt_audience=AUDIENCE,
        **s3.settings(),
        **mail_sink.settings(),
        s3_prefix=f"test-{uuid.uuid4().hex[:8]}",
        workers=2,
        lease=timedelta(seconds=10),
        sweep_interval=timedelta(seconds=1),
        retry_base=timedelta(milliseconds=100),
        progress_interval=timedelta(milliseconds=200),
        max_wait=timedelta(seconds=30),
        log_format="console",
    )


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_test_catalog()


@pytest.fixture
async def make_client(settings: Settings, catalog: Catalog) -> AsyncIterator[Callable[..., Any]]:
    """Start exportd in-process (role and settings overridable) behind a real HTTP server."""
    clients: list[TestClient[Any, Any]] = []

    async def start(role: Role = "all", **overrides: Any) -> TestClient[Any, Any]:
        app = build_app(replace(settings, **overrides), catalog, role=role)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> TestClient[Any, Any]:
    result: TestClient[Any, Any] = await make_client()
    return result


@pytest.fixture
async def replicas(settings: Settings, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start `exportd serve` processes sharing this test's database, bucket prefix and sink."""
    started: list[ExportdProcess] = []
    base = fleet_env(settings)

    async def start(count: int = 1, role: str = "all", **env: str) -> list[ExportdProcess]:
        batch = []
        for _ in range(count):
            name = f"r{len(started) + 1}"
            replica = ExportdProcess.serve(
                name, port=free_port(), env=base | env, log_path=tmp_path / f"{name}.log", role=role
            )
            started.append(replica)
            batch.append(replica)
        await asyncio.gather(*(r.start() for r in batch))
        return batch

    yield start
    for replica in started:
        await replica.kill()
