"""The streaming compressor between an encoder and the upload, off the event loop."""

from __future__ import annotations

import asyncio
import zlib
from typing import Final, Protocol

import zstandard

GZIP_LEVEL: Final = 1  # the speed/size point of `gzip -1`: exports are built once, read once
ZSTD_LEVEL: Final = 1  # likewise `zstd -1`
CHUNK: Final = 1024 * 1024  # compress in 1 MiB pieces: few thread hops, bounded memory
DEPTH: Final = 4  # pieces queued for the compressor before the reader waits


class Codec(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


def codec(compression: str) -> Codec:
    if compression == "gzip":
        return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip container
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    raise ValueError(f"no codec for {compression!r}")


class Writer(Protocol):
    """Where a sink's bytes go: the object writer (storage/writer.py)."""

    async def write(self, data: bytes) -> None: ...


class Sink(Protocol):
    """Where encoded bytes go: straight to the object, or through a compressor first."""

    async def write(self, data: bytes) -> None: ...
    async def finish(self) -> None: ...
    def cancel(self) -> None: ...


class Direct:
    """No compression: bytes go to the object writer as they come."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def write(self, data: bytes) -> None:
        await self._writer.write(data)

    async def finish(self) -> None:
        return None

    def cancel(self) -> None:
        return None


class Compressing:
    """Compresses in a worker thread while the reader goes on filling the next piece.

    zlib and zstd release the GIL, so compression overlaps the database read on another core;
    a bounded queue keeps memory flat and slows the reader when compression falls behind.
    """

    def __init__(self, writer: Writer, compression: str) -> None:
        self._writer = writer
        self._codec = codec(compression)
        self._buffer = bytearray()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(DEPTH)
        self._task = asyncio.create_task(self._run(), name="compress")

    async def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            await self._put(bytes(self._buffer))
            self._buffer.clear()

    async def finish(self) -> None:
        if self._buffer:
            await self._put(bytes(self._buffer))
            self._buffer.clear()
        await self._put(None)
        await self._task
        await self._writer.write(self._codec.flush())

    async def _put(self, item: bytes | None) -> None:
        """Queue a piece, or raise the compressor's error: a compressor that died (its writer
        failed) takes nothing more, so waiting on the queue alone would wait forever."""
        put = asyncio.ensure_future(self._queue.put(item))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            await self._task  # raises the compressor's error
        elif self._task.done() and not self._task.cancelled():
            self._task.result()  # it failed after taking the piece: raise its error now

    async def _run(self) -> None:
        while (piece := await self._queue.get()) is not None:
            out = await asyncio.to_thread(self._codec.compress, piece)
            if out:
                await self._writer.write(out)

    def cancel(self) -> None:
        self._task.cancel()
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # seen: its error is the build's, not a stray task's


def sink_for(writer: Writer, compression: str) -> Direct | Compressing:
    return Direct(writer) if compression == "none" else Compressing(writer, compression)
