"""One real `exportd serve` for the export benchmark, and exports run through its HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench.benchstack import EXPORT_NAME
from exportd.config import Settings, as_env
from exportd.dev.servers import free_port
from exportd.dev.stack import Stack
from tests.support.client import create, wait_for, wait_until
from tests.support.processes import ExportdProcess, base_env
from tests.support.tokens import AUDIENCE, JWT_SECRET, auth

# Who the benchmark's exports belong to (the catalog's export is not tenant-scoped).
CLAIMS: Final[dict[str, Any]] = {
    "tenant": "bench",
    "sub": "bench",
    "email": "bench@bench.example",
    "ttl_s": 86400,
}
NOTIFY_TIMEOUT_S: Final = 30.0


def start_exportd(
    stack: Stack, catalog_path: Path, *, part_size: int, parts_in_flight: int
) -> ExportdProcess:
    """`exportd serve` with one worker on the stack, ready; its log beside the stack."""
    settings = Settings(
        **stack.settings(),
        catalog_path=catalog_path,
        host="127.0.0.1",
        jwt_secret=JWT_SECRET,
        jwt_audience=AUDIENCE,
        public_url="http://127.0.0.1",
        s3_prefix="bench",
        part_size=part_size,
        parts_in_flight=parts_in_flight,
        workers=1,
        log_format="json",
    )
    settings.validate()
    process = ExportdProcess.serve(
        "exportd",
        port=free_port(),
        env=base_env() | as_env(settings),
        log_path=stack.root / "exportd.log",
    )
    asyncio.run(process.start())
    return process


@dataclass(frozen=True, slots=True)
class Finished:
    """What the API said about a terminal export, and when the client saw it."""

    export: dict[str, Any]
    wall_s: float


def run_export(
    process: ExportdProcess, fmt: str, compression: str, *, timeout_s: float
) -> Finished:
    """POST the bench export and long-poll it until it is terminal (canceled at the timeout);
    `wall_s` counts from just before the POST."""
    return asyncio.run(_run_export(process.url, fmt, compression, timeout_s))


async def _run_export(url: str, fmt: str, compression: str, timeout_s: float) -> Finished:
    body = {"export": EXPORT_NAME, "format": fmt, "compression": compression}
    async with aiohttp.ClientSession(base_url=url) as http:
        started = time.monotonic()
        created = await create(http, body, **CLAIMS)
        try:
            done = await wait_until(http, created["id"], within=timeout_s, **CLAIMS)
        except TimeoutError:
            await http.post(f"/v1/exports/{created['id']}/cancel", headers=auth(**CLAIMS))
            raise
        return Finished(done, time.monotonic() - started)


def wait_notified(process: ExportdProcess, export_id: str) -> None:
    """Wait until the export's mail went out, so the next variant starts on an idle service."""

    async def notified() -> None:
        async with aiohttp.ClientSession(base_url=process.url) as http:
            await wait_for(
                http,
                export_id,
                lambda e: e["notified_at"] is not None,
                within=NOTIFY_TIMEOUT_S,
                **CLAIMS,
            )

    asyncio.run(notified())


def build_seconds(export: Mapping[str, Any]) -> float | None:
    """The build's duration as the service recorded it (started_at to finished_at)."""
    started, finished = export.get("started_at"), export.get("finished_at")
    if not started or not finished:
        return None
    span: timedelta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    return span.total_seconds()
