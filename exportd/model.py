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
    # Succeeded, and its file has since been deleted (retention): the result's facts remain.
    EXPIRED = "expired"


# Where an export's story ends: nothing changes it after these.
TERMINAL: Final = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.EXPIRED})
# Statuses a queued or running export may still leave (cancel applies to these).
ACTIVE: Final = frozenset({Status.QUEUED, Status.RUNNING})


class JobKind(StrEnum):
    """A unit of work on the queue; each kind has one handler."""

    BUILD = "build"
    # Mail the owner: the link to a finished file, or why it failed.
    NOTIFY = "notify"
    # Delete a finished export's file at its expiry (or a failed one's leftovers).
    EXPIRE = "expire"
    # Deliver one event to one webhook endpoint.
    WEBHOOK = "webhook"


class Event(StrEnum):
    """What a webhook endpoint can subscribe to: an export reaching a final state."""

    SUCCEEDED = "export.succeeded"
    FAILED = "export.failed"
    CANCELED = "export.canceled"
    EXPIRED = "export.expired"

    @property
    def status(self) -> Status:
        """The status the event is the arrival at."""
        return Status(self.removeprefix("export."))
