"""What the queue knows about a kind of job: a handler it calls with the claimed row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeAlias

from exportd.db.rows import JobRow
from exportd.logs import Log


class JobHandler(Protocol):
    """Runs one claimed job. Raise JobFailure (retryable or not) to fail it, LeaseLost when a
    fenced write found the lease gone; return normally once the job's own fenced completion
    has committed."""

    async def __call__(self, job: JobRow, log: Log) -> None: ...


# Job kind → its handler, built by the composition root.
Handlers: TypeAlias = Mapping[str, JobHandler]
