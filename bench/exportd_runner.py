"""One real `exportd serve` process, and exports run through its HTTP API."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from benchstack import EXPORT_NAME, Stack

from exportd.auth import issue_token
from exportd.config import Settings, as_env
from exportd.devstack import free_port

EXPORTD: Final = Path(sys.executable).parent / "exportd"
AUDIENCE: Final = "exportd-bench"
TERMINAL: Final = ("succeeded", "failed", "canceled")
POLL_WAIT_S: Final = 30
READY_TIMEOUT_S: Final = 60.0
NOTIFY_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True, slots=True)
class Finished:
    """What the API said about a terminal export, and when the client saw it."""

    export: dict[str, Any]
    wall_s: float


class Rejected(Exception):
    """The service refused the request (e.g. a format it does not offer yet)."""

    def __init__(self, answer: Answer) -> None:
        body = answer.body if isinstance(answer.body, dict) else {}
        self.code = str(body.get("code", answer.status))
        self.detail = str(body.get("detail", body))
        super().__init__(f"{answer.status} {self.code}: {self.detail}")


@dataclass
class ExportdServer:
    """`exportd serve` in its own session, configured for the stack, logging to a file."""

    settings: Settings
    log_path: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def for_stack(cls, stack: Stack, *, part_size: int, parts_in_flight: int) -> Self:
        settings = Settings(
            database_url=stack.pg.uri,
            catalog_path=stack.catalog_path,
            host="127.0.0.1",
            port=free_port(),
            jwt_secret=secrets.token_urlsafe(32),
            jwt_audience=AUDIENCE,
            s3_bucket=stack.s3.bucket,
            s3_endpoint_url=stack.s3.endpoint_url,
            s3_access_key_id=stack.s3.access_key,
            s3_secret_access_key=stack.s3.secret_key,
            s3_prefix="bench",
            part_size=part_size,
            parts_in_flight=parts_in_flight,
            smtp_host=stack.mail.host,
            smtp_port=stack.mail.port,
            workers=1,
            log_format="json",
        )
        settings.validate()
        return cls(settings, stack.root / "exportd.log")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def token(self) -> str:
        return issue_token(
            self.settings.jwt_secret,
            sub="bench",
            tenant="bench",
            email="bench@bench.example",
            audience=AUDIENCE,
            ttl_s=24 * 3600,
        )

    def __enter__(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
        env |= as_env(self.settings) | dict(self.extra_env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(EXPORTD), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"exportd serve exited; see {self.log_path}")
            try:
                if self.request("GET", "/readyz").status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"exportd not ready in time; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> Answer:
        conn = http.client.HTTPConnection(self.settings.host, self.settings.port, timeout=timeout_s)
        try:
            payload = None if body is None else json.dumps(body).encode()
            sent = {"Content-Type": "application/json"} | dict(headers or {})
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            raw = response.read()
            parsed = (
                json.loads(raw) if raw and "json" in response.getheader("Content-Type", "") else raw
            )
            return Answer(response.status, dict(response.getheaders()), parsed)
        finally:
            conn.close()


def create_export(server: ExportdServer, token: str, fmt: str, compression: str) -> str:
    """POST the bench export; return its id, or raise Rejected."""
    body = {"export": EXPORT_NAME, "format": fmt, "compression": compression}
    answer = server.request("POST", "/v1/exports", body, _auth(token))
    if answer.status != 202:
        raise Rejected(answer)
    return str(answer.body["id"])


def wait_terminal(
    server: ExportdServer, token: str, export_id: str, *, started: float, timeout_s: float
) -> Finished:
    """Long-poll the export until it is terminal; `wall_s` counts from `started`."""
    deadline = started + timeout_s
    etag: str | None = None
    while time.monotonic() < deadline:
        headers = _auth(token) | ({"If-None-Match": etag} if etag else {})
        answer = server.request(
            "GET", f"/v1/exports/{export_id}?wait={POLL_WAIT_S}", None, headers, POLL_WAIT_S + 10
        )
        if answer.status == 304:
            continue
        if answer.status != 200:
            raise Rejected(answer)
        if answer.body["status"] in TERMINAL:
            return Finished(answer.body, time.monotonic() - started)
        etag = answer.headers.get("ETag")
    server.request("POST", f"/v1/exports/{export_id}/cancel", None, _auth(token))
    raise TimeoutError(f"export {export_id} not finished after {timeout_s:.0f} s")


def wait_notified(server: ExportdServer, token: str, export_id: str) -> None:
    """Wait until the export's mail went out, so the next variant starts on an idle service."""
    deadline = time.monotonic() + NOTIFY_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = server.request("GET", f"/v1/exports/{export_id}", None, _auth(token))
        if answer.status == 200 and answer.body.get("notified_at"):
            return
        time.sleep(0.05)


def build_seconds(export: Mapping[str, Any]) -> float | None:
    """The build's duration as the service recorded it (started_at to finished_at)."""
    started, finished = export.get("started_at"), export.get("finished_at")
    if not started or not finished:
        return None
    span: timedelta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    return span.total_seconds()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
