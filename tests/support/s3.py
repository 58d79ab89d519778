"""What is in the bucket under a prefix: completed objects and open multipart uploads."""

from __future__ import annotations

from exportd.dev.servers import EmbeddedS3


def objects_under(s3: EmbeddedS3, prefix: str) -> tuple[list[str], list[str]]:
    """(object keys, open multipart upload keys) under a prefix."""
    client = s3.client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    uploads = client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", [])
    return keys, [u["Key"] for u in uploads]


def nothing_under(s3: EmbeddedS3, prefix: str) -> bool:
    return objects_under(s3, prefix) == ([], [])
