"""Between an encoder and the object: a bounded queue and a task that compresses (off the event
loop) or not, then writes to the object."""

from __future__ import annotations

import asyncio
import zlib
from typing import Final, Protocol

import zstandard

GZIP_LEVEL: Final = 1  # the speed/size point of `gzip -1`: exports are built once, read once
ZSTD_LEVEL: Final = 1  # likewise `zstd -1`
CHUNK: Final = 1024 * 1024  # chunks travel in pieces of about 1 MiB: few thread hops
QUEUED: Final = 4 * CHUNK  # bytes queued before the encoder waits


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


class Sink:
    """Takes encoded bytes and hands them, in order, to a task that writes them to the object.

    The encoder (COPY's reader) goes on while the writer hashes a finished part or waits for
    a free upload slot, and waits itself only once QUEUED bytes are waiting: the database
    read overlaps the upload, and a slow upload still slows the read instead of growing
    memory. With a codec the task compresses each piece in a worker thread first (zlib and
    zstd release the GIL, so compression runs on the other core).
    """

    def __init__(self, writer: Writer, codec: Codec | None = None) -> None:
        self._writer = writer
        self._codec = codec
        self._piece: list[bytes] = []  # chunks as they came: no copy to gather them
        self._piece_size = 0
        self._queue: asyncio.Queue[tuple[list[bytes], int] | None] = asyncio.Queue()
        self._queued = 0
        self._room = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="sink")

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._piece.append(data)
        self._piece_size += len(data)
        if self._piece_size >= CHUNK:
            await self._put_piece()

    async def finish(self) -> None:
        if self._piece:
            await self._put_piece()
        self._queue.put_nowait(None)
        await self._task

    def cancel(self) -> None:
        self._task.cancel()
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # seen: its error is the build's, not a stray task's

    async def _put_piece(self) -> None:
        """Queue the piece once there is room, or raise the task's error: a task that died (its
        writer failed) takes nothing more, so waiting for room alone would wait forever."""
        while self._queued >= QUEUED and not self._task.done():
            self._room.clear()
            room = asyncio.ensure_future(self._room.wait())
            await asyncio.wait({room, self._task}, return_when=asyncio.FIRST_COMPLETED)
            room.cancel()
        if self._task.done():
            self._task.result()  # raises its error
        self._queue.put_nowait((self._piece, self._piece_size))
        self._queued += self._piece_size
        self._piece, self._piece_size = [], 0

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            piece, size = item
            if self._codec is not None:
                piece = [await asyncio.to_thread(_compress, self._codec, piece)]
            for chunk in piece:
                await self._writer.write(chunk)
            self._queued -= size
            self._room.set()
        if self._codec is not None:
            await self._writer.write(self._codec.flush())


def _compress(codec: Codec, piece: list[bytes]) -> bytes:
    # One codec call per ~1 MiB piece, not one per COPY chunk (often a few KiB): fewer,
    # larger calls, as the compressor had before the sink.
    return codec.compress(b"".join(piece))


def sink_for(writer: Writer, compression: str) -> Sink:
    return Sink(writer, None if compression == "none" else codec(compression))
