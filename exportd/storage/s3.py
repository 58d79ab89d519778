"""The bucket exports go to: one client per process, presigned reads, deletes and cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig

from exportd.config import Settings
from exportd.metrics import Metrics
from exportd.storage.errors import storage_errors
from exportd.storage.writer import ObjectWriter

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@asynccontextmanager
async def open_s3(settings: Settings) -> AsyncIterator[S3Client]:
    """One S3 client per process; SigV4 because presigned GETs need it."""
    session = aioboto3.Session()
    config = AioConfig(
        signature_version="s3v4",
        # No SHA-256 of every part for the signature (botocore does it on the event loop
        # over plain http; https to AWS skips it anyway): parts still carry a CRC32, and the
        # whole object's sha256 is ours.
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max(10, settings.workers * settings.parts_in_flight + 2),
    )
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
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
        bucket: str,
        part_size: int,
        parts_in_flight: int,
        metrics: Metrics,
    ):
        self.client = client
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
        """Raise unless the bucket answers to these credentials (readiness)."""
        with storage_errors():
            await self.client.head_bucket(Bucket=self.bucket)

    async def presign_get(self, key: str, ttl: timedelta) -> str:
        with storage_errors():
            return await self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=max(1, int(ttl.total_seconds())),
            )

    async def delete(self, key: str) -> None:
        with storage_errors():
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_others(self, prefix: str, *, keep: str) -> list[str]:
        """Delete every object and abort every upload under `prefix` except `keep`: what
        attempts that died mid-way left behind. Returns the keys removed."""
        removed = []
        with storage_errors():
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["Key"] != keep:
                        await self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                        removed.append(item["Key"])
            uploads = await self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            for upload in uploads.get("Uploads", []):
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                removed.append(upload["Key"])
        return removed
