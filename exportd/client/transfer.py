"""Downloading an export's file: streamed to a temporary file beside the destination, hashed
as it arrives, checked against the export's size and sha256, then renamed into place; a
failed or interrupted download leaves nothing at the destination.

A file already at the destination is replaced only when it is this export's file (its size
and sha256 are the export's: nothing to download) or when asked to (`force`); otherwise
the download is refused (FileExists) before anything is fetched."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

from exportd.client.api import RETRY_STATUSES, Client, Retryable, retry_after
from exportd.client.errors import ClientError, FileExists, Problem, VerifyError
from exportd.client.network import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, origin

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
    import aiohttp
    from yarl import URL

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


def already_there(path: Path, result: dict[str, Any]) -> bool | None:
    """What is at `path`: None, nothing; True, the file `result` describes (its size and
    sha256); False, something else."""
    if not path.exists():
        return None
    size, sha256 = result.get("size"), result.get("sha256")
    try:
        if not sha256 or not path.is_file() or (size is not None and path.stat().st_size != size):
            return False
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(BATCH):
                digest.update(chunk)
    except OSError:
        return False
    return bool(digest.hexdigest() == sha256)


async def download(
    api: Client,
    export: dict[str, Any],
    dest: Path,
    progress: Progress = lambda n, t: None,
    *,
    force: bool = False,
    shown_as: str | None = None,
) -> Path:
    """Download the succeeded `export` to `dest` (verified), retrying transient failures with
    a fresh link each time; returns `dest`. A file already at `dest` that is not this
    export's is refused (FileExists, naming it `shown_as`) unless `force`."""
    result = export.get("result") or {}
    total = result.get("size")
    if not force:
        there = await asyncio.to_thread(already_there, dest, result)
        if there:
            return dest  # this export's file, already there and whole
        if there is not None:
            raise FileExists(f"{shown_as or dest} exists; use --force to overwrite")
    storage = api.target.url

    async def attempt() -> None:
        nonlocal storage
        location = await api.file_location(export["id"])
        storage = origin(location)
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
        await api.retrying(f"download of {export['id']}", attempt, where=lambda: storage)
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
