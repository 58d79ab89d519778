"""What a user would script: stream stdin to one S3 object with boto3's `upload_fileobj`.

    psql -c "COPY (...) TO STDOUT (FORMAT csv, HEADER)" | python s3_upload.py --bucket B --key K

Credentials come from the usual AWS_* variables. Multipart with 16 MiB parts, 4 at once.
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

MIB: Final = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--part-mib", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    client = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name=args.region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    transfer = TransferConfig(
        multipart_threshold=args.part_mib * MIB,
        multipart_chunksize=args.part_mib * MIB,
        max_concurrency=args.concurrency,
    )
    client.upload_fileobj(sys.stdin.buffer, args.bucket, args.key, Config=transfer)


if __name__ == "__main__":
    main()
