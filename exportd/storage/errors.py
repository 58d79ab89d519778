"""What storage failures mean to a job: S3 being away or refusing us is worth a retry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions

from exportd.errors import JobFailure


class StorageUnavailable(JobFailure):
    """S3 did not do what was asked (down, throttling, refusing credentials): retry later."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            "storage_unavailable",
            "File storage is unavailable; the export will be retried.",
            retryable=True,
            detail=detail,
        )


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn botocore's errors inside the block into StorageUnavailable."""
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
