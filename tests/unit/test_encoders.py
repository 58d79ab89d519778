"""The bytes of an export: file kinds, compression sinks, object headers and part sizes
(Parquet is in test_parquet.py, the mails in test_mail.py)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io

import pytest
import zstandard
from botocore.httpchecksum import Crc32Checksum

from exportd.export.compress import CHUNK, QUEUED, Sink, codec, sink_for
from exportd.export.formats import content_type, extension
from exportd.storage.writer import PIECE, PartBody, content_disposition, part_size_for


class CollectingWriter:
    """Stands in for our own S3 ObjectWriter (only its `write` is used by the sinks): collects
    the bytes, or fails every write with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.data = bytearray()
        self.error = error

    async def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.data += data


def zstd_decompress(data: bytes) -> bytes:
    # A streamed frame has no content size, so decompress it as a stream.
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


DECOMPRESS = {"gzip": gzip.decompress, "zstd": zstd_decompress}
# Compressible but not trivially so: a few MiB that cross several CHUNK boundaries.
PAYLOAD = b"".join(b"row %d,%s\n" % (n, b"x" * (n % 50)) for n in range(120_000))


# --- formats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "compression", "ext", "media"),
    [
        ("csv", "none", ".csv", "text/csv; charset=utf-8"),
        ("csv", "gzip", ".csv.gz", "application/gzip"),
        ("jsonl", "none", ".jsonl", "application/x-ndjson"),
        ("jsonl", "zstd", ".jsonl.zst", "application/zstd"),
        ("parquet", "none", ".parquet", "application/vnd.apache.parquet"),
    ],
)
def test_extension_and_content_type(fmt: str, compression: str, ext: str, media: str) -> None:
    assert extension(fmt, compression) == ext
    assert content_type(fmt, compression) == media


# --- compression ------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_codec_round_trips_in_pieces(compression: str) -> None:
    compressor = codec(compression)
    pieces = [compressor.compress(PAYLOAD[i : i + 70_000]) for i in range(0, len(PAYLOAD), 70_000)]
    compressed = b"".join(pieces) + compressor.flush()
    assert len(compressed) < len(PAYLOAD) // 4
    assert DECOMPRESS[compression](compressed) == PAYLOAD


def test_codec_refuses_an_unknown_compression() -> None:
    with pytest.raises(ValueError, match="brotli"):
        codec("brotli")


async def test_direct_sink_passes_bytes_through_in_order() -> None:
    writer = CollectingWriter()
    sink = sink_for(writer, "none")
    for piece in (b"a,b\n", b"", b"1,2\n"):
        await sink.write(piece)
    await sink.finish()
    assert writer.data == b"a,b\n1,2\n"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
@pytest.mark.parametrize("size", [0, 10, len(PAYLOAD)])
async def test_compressing_sink_writes_one_valid_stream(compression: str, size: int) -> None:
    writer = CollectingWriter()
    sink = sink_for(writer, compression)
    data = PAYLOAD[:size]
    for start in range(0, size, 100_000):
        await sink.write(data[start : start + 100_000])
    await sink.finish()
    assert DECOMPRESS[compression](bytes(writer.data)) == data


async def test_compressing_sink_raises_the_writer_error() -> None:
    sink = sink_for(CollectingWriter(error=OSError("upload failed")), "gzip")
    with pytest.raises(OSError, match="upload failed"):
        await sink.write(PAYLOAD[: 2 * CHUNK])
        await sink.finish()


async def test_a_failed_writer_stops_the_reader_instead_of_leaving_it_waiting() -> None:
    # Once the sink's writer fails nothing takes from its queue: a reader that went on
    # filling it would wait forever. The timeout turns such a hang into a failure.
    sink = sink_for(CollectingWriter(error=OSError("upload failed")), "zstd")
    with pytest.raises(OSError, match="upload failed"):
        async with asyncio.timeout(10):
            for _ in range(QUEUED // CHUNK + 4):
                await sink.write(bytes(CHUNK))


class GatedWriter(CollectingWriter):
    """A writer that takes nothing until `open` is set: an upload waiting for a free slot."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()

    async def write(self, data: bytes) -> None:
        await self.open.wait()
        await super().write(data)


async def test_the_reader_goes_on_while_the_writer_waits_until_the_queue_is_full() -> None:
    writer = GatedWriter()
    sink = Sink(writer)
    written = 0
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            while True:
                written += CHUNK // 4  # counted first: the write that waits has taken its bytes
                await sink.write(bytes(CHUNK // 4))
    # The queue took QUEUED bytes (and the piece being gathered, and the one the writer
    # holds) without the writer taking any, then made the reader wait.
    assert QUEUED <= written <= QUEUED + 2 * CHUNK
    writer.open.set()
    await sink.finish()
    assert len(writer.data) == written


# --- object headers and part sizes ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("orders.csv", "attachment; filename=\"orders.csv\"; filename*=UTF-8''orders.csv"),
        (
            "Übersicht 2025 ✓.csv",
            'attachment; filename="_bersicht 2025 _.csv"; '
            "filename*=UTF-8''%C3%9Cbersicht%202025%20%E2%9C%93.csv",
        ),
        ("注文.csv", "attachment; filename=\"__.csv\"; filename*=UTF-8''%E6%B3%A8%E6%96%87.csv"),
    ],
)
def test_content_disposition_has_ascii_fallback_and_utf8_name(name: str, header: str) -> None:
    assert content_disposition(name) == header


@pytest.mark.parametrize(
    ("part", "multiple"),
    [(1, 1), (1_000, 1), (1_001, 2), (2_000, 2), (2_001, 4), (9_001, 512), (10_000, 512)],
)
def test_part_size_doubles_every_thousand_parts(part: int, multiple: int) -> None:
    assert part_size_for(part, 8 * 1024 * 1024) == multiple * 8 * 1024 * 1024


# --- part bodies ------------------------------------------------------------------

CHUNKS = [b"a" * 10, PAYLOAD[: PIECE + 7], b"", b"tail"]


async def test_part_body_streams_its_chunks_as_views_no_longer_than_a_piece() -> None:
    body = PartBody(CHUNKS)
    views = [bytes(v) async for v in body]
    assert b"".join(views) == b"".join(CHUNKS)
    assert body.size == len(b"".join(CHUNKS))
    assert max(len(v) for v in views) <= PIECE
    assert body.tell() == body.size


async def test_part_body_reads_and_seeks_like_a_file_for_a_retry() -> None:
    body, whole = PartBody(CHUNKS), b"".join(CHUNKS)
    assert body.read(5) + body.read(20) == whole[:25]
    assert body.seek(-4, io.SEEK_END) == body.size - 4
    assert body.read() == b"tail"
    assert body.seek(0) == 0  # what botocore does before sending again
    assert b"".join([bytes(v) async for v in body]) == whole


def test_part_body_digest_feeds_the_hash_and_gives_botocores_crc32() -> None:
    running = hashlib.sha256()
    crc = PartBody(CHUNKS).digest(running.update)
    whole = b"".join(CHUNKS)
    assert running.hexdigest() == hashlib.sha256(whole).hexdigest()
    assert crc == Crc32Checksum().handle(whole)
