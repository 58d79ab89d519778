"""The words every layer shares: an export's statuses and the kinds of job, defined once."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Status(StrEnum):
    """An export's status; the SQL CHECK constraint in migrations/ lists the same values."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# Where an export's story ends: nothing changes it after these.
TERMINAL: Final = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})
# Statuses a queued or running export may still leave (cancel applies to these).
ACTIVE: Final = frozenset({Status.QUEUED, Status.RUNNING})


class JobKind(StrEnum):
    """A unit of work on the queue; each kind has one handler."""

    BUILD = "build"
    NOTIFY = "notify"
