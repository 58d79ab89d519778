"""The embedded servers: PostgreSQL (pgserver), S3 (SeaweedFS `weed mini`) and an SMTP sink."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self, cast

import boto3
import botocore.exceptions
from aiosmtpd.controller import Controller
from botocore.config import Config

from exportd.db.admin import recreate_database

READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """PostgreSQL from the `pgserver` wheel, on a Unix socket inside `data_dir`."""

    data_dir: Path
    _server: Any = field(repr=False)

    @classmethod
    def start(cls, data_dir: Path) -> Self:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir; the /tmp fallback is fine here.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            from pgserver.postgres_server import get_server  # a dev/test dependency only

            data_dir.mkdir(parents=True, exist_ok=True)
            return cls(data_dir, get_server(data_dir, cleanup_mode="stop"))

    @property
    def uri(self) -> str:
        return cast(str, self._server.get_uri())

    def dsn(self, database: str) -> str:
        return cast(str, self._server.get_uri(database=database))

    async def recreate_database(self, name: str) -> str:
        """Drop (closing its sessions) and create an empty database; its DSN."""
        await recreate_database(self.uri, name)
        return self.dsn(name)

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def down(self) -> None:
        """Stop the server (fast shutdown: connections are cut), keeping its data."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)

    def up(self) -> None:
        """Start it again after `down`, on the same socket."""
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        self._server.cleanup()


@dataclass
class EmbeddedS3:
    """SeaweedFS `weed mini` on loopback with its own ports, telemetry off, one bucket."""

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    _process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    _args: list[str] = field(repr=False)
    _env: dict[str, str] = field(repr=False)

    @classmethod
    def start(cls, data_dir: Path, *, bucket: str, access_key: str, secret_key: str) -> Self:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        data_dir.mkdir(parents=True, exist_ok=True)
        s3_port = free_port()
        ports = {
            "master.port": free_port(),
            "master.port.grpc": free_port(),
            "volume.port": free_port(),
            "volume.port.grpc": free_port(),
            "filer.port": free_port(),
            "filer.port.grpc": free_port(),
            "s3.port": s3_port,
            "s3.port.grpc": free_port(),
            "admin.port": free_port(),
            "admin.port.grpc": free_port(),
        }
        args = [
            weed,
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-bucket={bucket}",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
        log_path = data_dir / "weed.log"
        s3 = cls(
            f"http://127.0.0.1:{s3_port}",
            bucket,
            access_key,
            secret_key,
            _launch(args, env, log_path),
            log_path,
            args,
            env,
        )
        try:
            s3._wait_ready()
        except BaseException:
            s3.stop()
            raise
        return s3

    def down(self) -> None:
        """Stop the server, keeping its data and ports for `up`."""
        self.stop()

    def up(self) -> None:
        self._process = _launch(self._args, self._env, self.log_path)
        self._wait_ready()

    def settings(self) -> dict[str, Any]:
        """The Settings fields that point exportd at this server."""
        return {
            "s3_bucket": self.bucket,
            "s3_endpoint_url": self.endpoint_url,
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def _wait_ready(self) -> None:
        client = self.client()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"weed mini exited; see {self.log_path}")
            try:
                client.head_bucket(Bucket=self.bucket)
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"S3 not ready in time; see {self.log_path}") from None
                time.sleep(0.3)

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()


def _launch(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=log_path.parent,
            start_new_session=True,  # our own Ctrl-C handling stops it, in order
        )


class _Recorder:
    """aiosmtpd handler: keeps every message, and writes it as .eml when given a folder."""

    def __init__(self, mail_dir: Path | None) -> None:
        self.mail_dir = mail_dir
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        with self.lock:
            self.messages.append(message)
            if self.mail_dir is not None:
                name = f"{time.strftime('%Y%m%d-%H%M%S')}-{len(self.messages):05d}.eml"
                (self.mail_dir / name).write_bytes(raw)
        return "250 Message accepted for delivery"


class MailSink:
    """A real SMTP server on loopback that accepts everything and records it."""

    def __init__(self, mail_dir: Path | None = None, port: int | None = None) -> None:
        if mail_dir is not None:
            mail_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._recorder = _Recorder(mail_dir)
        self._controller = Controller(self._recorder, hostname=self.host, port=self.port)

    def settings(self) -> dict[str, Any]:
        """The Settings fields that point exportd at this sink."""
        return {"smtp_host": self.host, "smtp_port": self.port}

    @property
    def messages(self) -> list[EmailMessage]:
        with self._recorder.lock:
            return list(self._recorder.messages)

    def start(self) -> Self:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def down(self) -> None:
        """Stop accepting mail (connections are refused) until `up`."""
        self.stop()

    def up(self) -> None:
        self._controller = Controller(self._recorder, hostname=self.host, port=self.port)
        self._controller.start()
