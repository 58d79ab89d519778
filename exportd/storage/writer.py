"""Streaming one object into S3: a single PUT if it stays under a part, else a multipart upload
with bounded memory that is aborted on any failure."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Final, cast
from urllib.parse import quote

import structlog

from exportd.storage.errors import storage_errors

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = structlog.get_logger(__name__)

MAX_PARTS: Final = 10_000
# Part size doubles every this many parts, so the 10,000-part limit never caps a file
# (8 MiB base: the first 1,000 parts carry 8 GiB, the next 16 GiB, ...).
PARTS_PER_SIZE_STEP: Final = 1_000
# A part goes out in views of at most this many bytes: the socket takes each as it comes, so
# no copy of the whole part is ever queued in the transport.
PIECE: Final = 256 * 1024
# A body this small is hashed on the event loop (a worker thread's hop costs more than that)
# and sent as one buffer.
INLINE_DIGEST: Final = 64 * 1024


def content_disposition(file_name: str) -> str:
    """`attachment` with an ASCII fallback and the exact UTF-8 name (RFC 6266)."""
    fallback = file_name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


def part_size_for(part_number: int, base: int) -> int:
    return base << ((part_number - 1) // PARTS_PER_SIZE_STEP)


class PartBody:
    """One part's bytes as they were written, never joined into one buffer.

    botocore needs a file (`read`, `seek`, `tell`: a retry seeks back to 0); given the length
    and the CRC32 it reads nothing. aiohttp sends an async iterable as it comes, on the event
    loop: views into the chunks, with no thread hop per read (as for a file) and no copy.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.size = sum(len(c) for c in chunks)
        self._position = 0

    def digest(self, update: Callable[[bytes], None]) -> str:
        """Feed the object's hash and return this part's CRC32 as S3 wants it (base64). A large
        body's runs in a worker thread: sha256 and crc32 both release the GIL."""
        crc = 0
        for chunk in self._chunks:
            update(chunk)
            crc = zlib.crc32(chunk, crc)
        return base64.b64encode(crc.to_bytes(4, "big")).decode()

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = min(max(base + offset, 0), self.size)
        return self._position

    def read(self, size: int = -1) -> bytes:
        end = self.size if size < 0 else min(self.size, self._position + size)
        data = b"".join(self._views(self._position, end))
        self._position = end
        return data

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        for view in self._views(self._position, self.size):
            self._position += len(view)
            yield view

    def _views(self, start: int, end: int) -> Iterator[memoryview]:
        offset = 0
        for chunk in self._chunks:
            low, high = max(start - offset, 0), min(end - offset, len(chunk))
            for at in range(low, high, PIECE):
                yield memoryview(chunk)[at : min(at + PIECE, high)]
            offset += len(chunk)


def as_file(body: PartBody) -> IO[bytes]:
    """The body as the client's stubs type it: botocore reads a file, aiohttp an iterable."""
    return cast("IO[bytes]", body)


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    parts: int


class ObjectWriter:
    """Streams bytes into one object: a single PUT if it stays under a part, else multipart.

    At most `parts_in_flight` parts are uploading at once and one more is filling, each held
    once (the chunks as they came), so memory is bounded by (parts_in_flight + 1) * part size
    (plus the last chunk's overshoot) whatever the object's size; `write` waits when all are
    busy, which slows the reader (backpressure).
    """

    def __init__(
        self,
        *,
        client: S3Client,
        bucket: str,
        key: str,
        content_type: str,
        file_name: str,
        part_size: int,
        parts_in_flight: int,
        part_uploaded: Callable[[float], None],
    ) -> None:
        self._client = client
        self._bucket = bucket
        self.key = key
        self._content_type = content_type
        self._disposition = content_disposition(file_name)
        self._part_size = part_size
        self._part_uploaded = part_uploaded  # told each part's upload time, in seconds
        # Chunks as they came, sent as they are (PartBody): no join, no copy of the part.
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._hash = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._next_part = 1
        self._uploads: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(parts_in_flight)
        self._failure: BaseException | None = None

    @property
    def size(self) -> int:
        return self._size + self._buffered

    async def write(self, data: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        if not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= part_size_for(self._next_part, self._part_size):
            await self._flush_part()

    async def close(self) -> StoredObject:
        """Upload what is left and complete the object."""
        if self._upload_id is None:
            body = self._take()
            crc = await self._digest(body)
            started = time.monotonic()
            with storage_errors():
                await self._client.put_object(
                    Bucket=self._bucket,
                    Key=self.key,
                    # A small file as bytes: botocore adds `Expect: 100-continue` to a
                    # file-like body, and aiohttp then waits a round trip for the server's
                    # 100 before sending it; bytes go at once, with the headers, in one send.
                    Body=body.read() if body.size <= INLINE_DIGEST else as_file(body),
                    ContentLength=body.size,
                    ChecksumCRC32=crc,
                    ContentType=self._content_type,
                    ContentDisposition=self._disposition,
                )
            self._part_uploaded(time.monotonic() - started)  # a file of one part is one too
            self._size = body.size
            return StoredObject(self.key, self._size, self._hash.hexdigest(), parts=1)
        if self._buffered:
            await self._flush_part()
        await self._drain()
        parts = sorted(self._parts, key=lambda p: p["PartNumber"])
        with storage_errors():
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        return StoredObject(self.key, self._size, self._hash.hexdigest(), parts=len(parts))

    async def abort(self) -> None:
        """Stop uploading and remove every part; safe to call more than once."""
        for task in self._uploads:
            task.cancel()
        await asyncio.gather(*self._uploads, return_exceptions=True)
        self._uploads.clear()
        self._take()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            with storage_errors():
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self.key, UploadId=upload_id
                )
            log.info("upload.aborted", key=self.key)

    async def _flush_part(self) -> None:
        if self._upload_id is None:
            with storage_errors():
                created = await self._client.create_multipart_upload(
                    Bucket=self._bucket,
                    Key=self.key,
                    ContentType=self._content_type,
                    ContentDisposition=self._disposition,
                )
            self._upload_id = created["UploadId"]
        part_number = self._next_part
        if part_number > MAX_PARTS:
            raise RuntimeError("object exceeds the S3 part limit")
        self._next_part += 1
        await self._slots.acquire()
        if self._failure is not None:
            self._slots.release()
            raise self._failure
        body = self._take()
        # Hash in part order, off the loop; the part's CRC32 in the same pass, so botocore
        # does not read the body again for it.
        crc = await self._digest(body)
        self._size += body.size
        task = asyncio.create_task(
            self._upload_part(part_number, body, crc), name=f"upload-part-{part_number}"
        )
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _digest(self, body: PartBody) -> str:
        if body.size <= INLINE_DIGEST:
            return body.digest(self._hash.update)
        return await asyncio.to_thread(body.digest, self._hash.update)

    def _take(self) -> PartBody:
        body = PartBody(self._chunks)
        self._chunks = []
        self._buffered = 0
        return body

    async def _upload_part(self, part_number: int, body: PartBody, crc: str) -> None:
        assert self._upload_id is not None
        started = time.monotonic()
        try:
            with storage_errors():
                answer = await self._client.upload_part(
                    Bucket=self._bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    PartNumber=part_number,
                    Body=as_file(body),
                    ContentLength=body.size,
                    ChecksumCRC32=crc,
                )
            self._parts.append({"PartNumber": part_number, "ETag": answer["ETag"]})
            self._part_uploaded(time.monotonic() - started)
        except Exception as exc:
            self._failure = exc
        finally:
            self._slots.release()

    async def _drain(self) -> None:
        await asyncio.gather(*self._uploads)
        if self._failure is not None:
            raise self._failure
