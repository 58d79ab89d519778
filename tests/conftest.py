"""Real servers for the tests: embedded PostgreSQL, SeaweedFS S3 and an SMTP sink, once per run."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from helpers import AUDIENCE, JWT_SECRET
from replicas import Replica, fleet_env

from exportd.app import Role, create_app
from exportd.catalog import Catalog
from exportd.config import Settings
from exportd.dev import DEMO_DIR
from exportd.devstack import EmbeddedPostgres, EmbeddedS3, MailSink, free_port
from exportd.migrations import migrate

TESTS_DIR = Path(__file__).parent
CATALOG_PATH = TESTS_DIR / "catalog.toml"
HOOKS = ("hook_exports",)  # tests/ is on sys.path, so the module imports by name
TEMPLATE_DB = "exportd_template"
BUCKET = "exportd-test"


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: that is private to root (0700), and postgres runs as the
    # `pgserver` user, which must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="exportd-test-pg-"))
    server = EmbeddedPostgres.start(root / "data")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg: EmbeddedPostgres) -> str:
    """A migrated database with the demo data; each test copies it (CREATE DATABASE … TEMPLATE)."""

    async def build() -> None:
        dsn = await pg.recreate_database(TEMPLATE_DB)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute((DEMO_DIR / "schema.sql").read_text())
        finally:
            await conn.close()

    asyncio.run(build())
    return TEMPLATE_DB


@pytest.fixture
async def dsn(pg: EmbeddedPostgres, template_db: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    await admin_execute(pg, f"CREATE DATABASE {name} TEMPLATE {template_db}")
    yield pg.dsn(name)
    # A fresh connection: the test may have restarted the server meanwhile.
    await admin_execute(pg, f"DROP DATABASE {name} WITH (FORCE)")


async def admin_execute(pg: EmbeddedPostgres, sql: str) -> None:
    admin = await asyncpg.connect(pg.uri)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    server = EmbeddedS3.start(
        tmp_path_factory.mktemp("s3"),
        bucket=BUCKET,
        access_key="test-key",
        secret_key="test-secret-key-0123456789",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


@dataclass
class Mailbox:
    """The mail that arrived during one test."""

    sink: MailSink
    start: int

    def messages(self) -> list[EmailMessage]:
        return self.sink.messages[self.start :]

    async def wait_for(self, count: int) -> list[EmailMessage]:
        """Wait (up to 20 s) until at least `count` messages arrived."""
        async with asyncio.timeout(20):
            # The sink's server runs on its own thread and loop: poll rather than await.
            while len(self.messages()) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return self.messages()


@pytest.fixture
def mailbox(mail_sink: MailSink) -> Mailbox:
    return Mailbox(mail_sink, len(mail_sink.messages))


@pytest.fixture
def settings(dsn: str, s3: EmbeddedS3, mail_sink: MailSink) -> Settings:
    return Settings(
        database_url=dsn,
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
    return Catalog.load(CATALOG_PATH, HOOKS)


@pytest.fixture
async def make_client(settings: Settings, catalog: Catalog) -> AsyncIterator[Callable[..., Any]]:
    """Start exportd in-process (role and settings overridable) behind a real HTTP server."""
    clients: list[TestClient[Any, Any]] = []

    async def start(role: Role = "all", **overrides: Any) -> TestClient[Any, Any]:
        app = create_app(replace(settings, **overrides), catalog, role=role)
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
    started: list[Replica] = []
    base = fleet_env(settings)

    async def start(count: int = 1, role: str = "all", **env: str) -> list[Replica]:
        batch = []
        for _ in range(count):
            name = f"r{len(started) + 1}"
            replica = Replica(
                name=name,
                port=free_port(),
                env=base | env,
                log_path=tmp_path / f"{name}.log",
                role=role,
            )
            started.append(replica)
            batch.append(replica)
        await asyncio.gather(*(r.start() for r in batch))
        return batch

    yield start
    for replica in started:
        if replica.running:
            await replica.kill()
