"""One stack of embedded servers (PostgreSQL, S3, an SMTP sink) under one folder: started
together, stopped in reverse, whatever happens in between. `exportd dev`, the tests and the
benchmarks all run on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exportd.dev.servers import EmbeddedPostgres, EmbeddedS3, MailSink


@dataclass(frozen=True, slots=True)
class Stack:
    root: Path
    _pg: EmbeddedPostgres | None
    _s3: EmbeddedS3 | None
    _mail: MailSink | None

    @property
    def pg(self) -> EmbeddedPostgres:
        if self._pg is None:
            raise RuntimeError("this stack runs no PostgreSQL")
        return self._pg

    @property
    def s3(self) -> EmbeddedS3:
        if self._s3 is None:
            raise RuntimeError("this stack runs no S3")
        return self._s3

    @property
    def mail(self) -> MailSink:
        if self._mail is None:
            raise RuntimeError("this stack runs no mail sink")
        return self._mail

    def settings(self) -> dict[str, Any]:
        """The Settings fields that point exportd at the servers this stack runs."""
        fields: dict[str, Any] = {}
        if self._pg is not None:
            fields["database_url"] = self._pg.uri
        if self._s3 is not None:
            fields |= self._s3.settings()
        if self._mail is not None:
            fields |= self._mail.settings()
        return fields


@contextmanager
def running_stack(
    root: Path,
    *,
    bucket: str,
    postgres: bool = True,
    s3: bool = True,
    mail: bool = True,
    mail_dir: Path | None = None,
) -> Iterator[Stack]:
    """Start the servers asked for under `root` (PostgreSQL in root/postgres, S3 in root/s3;
    the sink writes each message to `mail_dir` when given); stop them all on the way out.

    `root` must be reachable by the `pgserver` user when running as root: not inside a
    private (0700) folder of someone else's.
    """
    with ExitStack() as stack:
        pg = s3_server = sink = None
        if postgres:
            pg = EmbeddedPostgres.start(root / "postgres")
            stack.callback(pg.stop)
        if s3:
            s3_server = EmbeddedS3.start(
                root / "s3", bucket=bucket, access_key=bucket, secret_key=f"{bucket}-secret-key"
            )
            stack.callback(s3_server.stop)
        if mail:
            sink = MailSink(mail_dir).start()
            stack.callback(sink.stop)
        yield Stack(root, pg, s3_server, sink)
