"""Downloading an export's file: streamed to a temporary file beside the destination, hashed
as it arrives, checked against the export's size and sha256, then renamed into place; a
failed or interrupted download leaves nothing at the destination."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

import aiohttp
from yarl import URL

from exportd.client.api import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    RETRY_STATUSES,
    Client,
    Retryable,
    retry_after,
)
from exportd.client.errors import ClientError, Problem, VerifyError

CHUNK: Final = 1 << 16
# Bytes gathered before one write-and-hash in a thread (sha256 is CPU work: off the loop).
BATCH: Final = 1 << 20

Progress = Callable[[int, int | None], None]


class Sink:
    """A temporary file and the sha256 of what went into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self.file: IO[bytes] = path.open("xb")

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def temporary_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")


def check(sink: Sink, result: dict[str, Any]) -> None:
    """The file is the one the export reported: its size and sha256 (each when known)."""
    size, sha256 = result.get("size"), result.get("sha256")
    if size is not None and sink.size != size:
        raise VerifyError(f"downloaded {sink.size} bytes, but the export reported {size}")
    got = sink.digest.hexdigest()
    if sha256 and got != sha256:
        raise VerifyError(f"the file's sha256 is {got}, but the export reported {sha256}")


async def fetch(
    api: Client, location: str, sink: Sink, total: int | None, progress: Progress
) -> None:
    """GET the presigned URL (without exportd's token) into `sink`."""
    timeout = aiohttp.ClientTimeout(connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
    # encoded=True: the URL is signed as it is; re-quoting it would break the signature.
    async with api.session.get(
        URL(location, encoded=True), timeout=timeout, auto_decompress=False
    ) as response:
        if response.status != 200:
            detail = f"storage answered HTTP {response.status} for the file"
            if response.status in RETRY_STATUSES:
                problem = Problem(response.status, {"title": "Storage error", "detail": detail})
                raise Retryable(problem, retry_after(response.headers))
            raise ClientError(detail)
        batch = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            batch += chunk
            if len(batch) >= BATCH:
                await asyncio.to_thread(sink.write, bytes(batch))
                batch.clear()
                progress(sink.size, total)
        await asyncio.to_thread(sink.write, bytes(batch))
        progress(sink.size, total)


async def download(
    api: Client, export: dict[str, Any], dest: Path, progress: Progress = lambda n, t: None
) -> Path:
    """Download the succeeded `export` to `dest` (verified), retrying transient failures with
    a fresh link each time; returns `dest`."""
    result = export.get("result") or {}
    total = result.get("size")

    async def attempt() -> None:
        location = await api.file_location(export["id"])
        sink = Sink(temporary_path(dest))
        try:
            progress(0, total)
            await fetch(api, location, sink, total, progress)
            await asyncio.to_thread(sink.finish)
            check(sink, result)
            os.replace(sink.path, dest)
        except BaseException:
            sink.discard()
            raise

    try:
        await api.retrying(f"download of {export['id']}", attempt)
    except OSError as exc:
        raise ClientError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return dest


def destination(output: Path | None, result: dict[str, Any], cwd: Path) -> Path:
    """Where the file goes: `output`, inside it when it is a folder, else the export's file
    name in `cwd` (only its last part: a name never picks the folder)."""
    name = Path(str(result.get("file_name") or "export")).name
    if output is None:
        return cwd / name
    return output / name if output.is_dir() else output
