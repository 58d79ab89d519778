"""The queue's generic fallbacks for errors a handler did not map itself."""

from __future__ import annotations

import asyncpg

from exportd.db.pool import is_unavailable
from exportd.errors import JobFailure


def classify(exc: BaseException) -> JobFailure:
    """A handler's own JobFailure stands; outages and timeouts retry; anything else is an
    unexpected internal error, retried until the attempts run out."""
    if isinstance(exc, JobFailure):
        return exc
    if isinstance(exc, asyncpg.PostgresError) and is_unavailable(exc):
        return JobFailure("database_unavailable", str(exc), retryable=True)
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return JobFailure("unavailable", f"{type(exc).__name__}: {exc}", retryable=True)
    return JobFailure("internal", f"{type(exc).__name__}: {exc}", retryable=True)
