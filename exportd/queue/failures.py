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
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncpg.PostgresError) and is_unavailable(exc):
        message = "The database is unavailable; the export will be retried."
        return JobFailure("database_unavailable", message, retryable=True, detail=detail)
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        message = "A service the export needs is unavailable; it will be retried."
        return JobFailure("unavailable", message, retryable=True, detail=detail)
    message = "Something unexpected went wrong; the operator can look it up by its id."
    return JobFailure("internal", message, retryable=True, detail=detail)
