"""The bucket exports go to: one client per process, presigned reads, deletes and cleanup."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import aioboto3
import botocore.exceptions
from aiobotocore.config import AioConfig

from exportd.config import Settings
from exportd.errors import DependencyRefused
from exportd.metrics import Metrics
from exportd.storage.errors import storage_errors
from exportd.storage.writer import ObjectWriter

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@asynccontextmanager
async def open_storage(settings: Settings, metrics: Metrics) -> AsyncIterator[Storage]:
    """The bucket, for the life of the block. Presigned URLs name the public S3 endpoint when
    one is set (the address browsers reach), through a client of their own that never
    connects: presigning is local."""
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(open_s3(settings))
        presigner = client
        if settings.s3_public_endpoint_url:
            public = open_s3(settings, endpoint_url=settings.s3_public_endpoint_url)
            presigner = await stack.enter_async_context(public)
        yield Storage(
            client=client,
            presigner=presigner,
            bucket=settings.s3_bucket,
            part_size=settings.part_size,
            parts_in_flight=settings.parts_in_flight,
            metrics=metrics,
        )


@asynccontextmanager
async def open_s3(
    settings: Settings, *, endpoint_url: str | None = None
) -> AsyncIterator[S3Client]:
    """An S3 client (one per process, and one to presign with); SigV4 because presigned GETs
    need it."""
    session = aioboto3.Session()
    config = AioConfig(
        signature_version="s3v4",
        # No SHA-256 of every part for the signature (botocore does it on the event loop
        # over plain http; https to AWS skips it anyway): parts still carry a CRC32 (the
        # writer computes it in the pass that hashes the object), and the sha256 is ours.
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max(10, settings.workers * settings.parts_in_flight + 2),
    )
    async with session.client(
        "s3",
        endpoint_url=endpoint_url or settings.s3_endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id or None,
        aws_secret_access_key=settings.s3_secret_access_key or None,
        config=config,
    ) as client:
        yield client


class Storage:
    """The bucket exports go to."""

    def __init__(
        self,
        *,
        client: S3Client,
        presigner: S3Client,
        bucket: str,
        part_size: int,
        parts_in_flight: int,
        metrics: Metrics,
    ):
        self.client = client
        self._presigner = presigner
        self.bucket = bucket
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self._metrics = metrics

    def writer(self, key: str, *, content_type: str, file_name: str) -> ObjectWriter:
        return ObjectWriter(
            client=self.client,
            bucket=self.bucket,
            key=key,
            content_type=content_type,
            file_name=file_name,
            part_size=self.part_size,
            parts_in_flight=self.parts_in_flight,
            part_uploaded=self._metrics.upload_seconds.observe,
        )

    async def check(self) -> None:
        """Raise unless the bucket answers to these credentials (readiness); DependencyRefused
        when S3 refuses them or has no such bucket."""
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (401, 403):
                raise DependencyRefused("refused our credentials", str(exc)) from exc
            if status == 404:
                raise DependencyRefused("bucket not found", str(exc)) from exc
            raise

    async def presign_get(self, key: str, ttl: timedelta) -> str:
        with storage_errors():
            return await self._presigner.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                # Whole seconds, rounded up: a URL never lives shorter than asked.
                ExpiresIn=max(1, math.ceil(ttl.total_seconds())),
            )

    async def delete(self, key: str) -> None:
        with storage_errors():
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_under(self, prefix: str, *, keep: str | None = None) -> list[str]:
        """Delete every object and abort every upload under `prefix`, but `keep`: an expired
        export's files, or what attempts that died mid-way left beside the result. Returns
        the keys removed."""
        removed = []
        with storage_errors():
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["Key"] != keep:
                        await self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                        removed.append(item["Key"])
            uploads = self.client.get_paginator("list_multipart_uploads")
            async for listing in uploads.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in listing.get("Uploads", []):
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed.append(upload["Key"])
        return removed
