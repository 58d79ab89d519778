"""The rows exportd reads and writes, as frozen dataclasses that name their columns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

import asyncpg

from exportd.model import TERMINAL


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportRow:
    id: uuid.UUID
    tenant: str
    owner_sub: str
    recipient: str | None
    export_name: str
    params: dict[str, Any]
    format: str
    compression: str
    options: dict[str, Any]
    file_name: str
    status: str
    progress_rows: int
    progress_bytes: int
    rows_estimate: int | None
    progress_rate: float | None
    progress_phase: str | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_id: str | None
    object_key: str | None
    result_size: int | None
    result_rows: int | None
    result_sha256: str | None
    content_type: str | None
    as_of: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    notified_at: datetime | None
    mail_attempted_at: datetime | None
    expires_at: datetime | None
    download_count: int
    last_download_at: datetime | None
    version: int

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(
            id=r["id"],
            tenant=r["tenant"],
            owner_sub=r["owner_sub"],
            recipient=r["recipient"],
            export_name=r["export_name"],
            params=r["params"],
            format=r["format"],
            compression=r["compression"],
            options=r["options"],
            file_name=r["file_name"],
            status=r["status"],
            progress_rows=r["progress_rows"],
            progress_bytes=r["progress_bytes"],
            rows_estimate=r["rows_estimate"],
            progress_rate=r["progress_rate"],
            progress_phase=r["progress_phase"],
            attempts=r["attempts"],
            error_code=r["error_code"],
            error_message=r["error_message"],
            error_id=r["error_id"],
            object_key=r["object_key"],
            result_size=r["result_size"],
            result_rows=r["result_rows"],
            result_sha256=r["result_sha256"],
            content_type=r["content_type"],
            as_of=r["as_of"],
            created_at=r["created_at"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            notified_at=r["notified_at"],
            mail_attempted_at=r["mail_attempted_at"],
            expires_at=r["expires_at"],
            download_count=r["download_count"],
            last_download_at=r["last_download_at"],
            version=r["version"],
        )

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True, slots=True)
class Reading:
    """A build's progress report: rows streamed and bytes uploaded so far, the planner's row
    estimate, and the smoothed rate (rows/s; None before the first interval)."""

    rows: int
    size: int
    estimate: int | None
    rate: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRow:
    id: int
    kind: str
    export_id: uuid.UUID
    tenant: str
    attempts: int
    max_attempts: int
    lease_token: uuid.UUID
    created_at: datetime
    # A webhook job's delivery (one event for one endpoint); None for other kinds.
    delivery_id: uuid.UUID | None
    # The owner of the lease this claim took over (it expired: a replica died or stalled).
    previous_owner: str | None
    # The job's export as the claim left it.
    export: ExportRow = field(repr=False)

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        """A claimed job: its columns prefixed `job_`, then its export's."""
        export = ExportRow.from_record(r)
        return cls(
            id=r["job_id"],
            kind=r["job_kind"],
            export_id=export.id,
            tenant=export.tenant,
            attempts=r["job_attempts"],
            max_attempts=r["job_max_attempts"],
            lease_token=r["job_lease_token"],
            created_at=r["job_created_at"],
            delivery_id=r["job_delivery_id"],
            previous_owner=r["job_previous_owner"],
            export=export,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NewExport:
    id: uuid.UUID
    tenant: str
    owner_sub: str
    recipient: str | None
    export_name: str
    params: dict[str, Any]
    format: str
    compression: str
    file_name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildResult:
    object_key: str
    size: int
    rows: int
    sha256: str
    content_type: str
    as_of: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadRow:
    id: int
    at: datetime
    route: str
    client_ip: str | None
    user_agent: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        ip = r["client_ip"]
        return cls(
            id=r["id"],
            at=r["at"],
            route=r["route"],
            client_ip=None if ip is None else str(ip),
            user_agent=r["user_agent"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookRow:
    id: uuid.UUID
    tenant: str
    created_by: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(
            id=r["id"],
            tenant=r["tenant"],
            created_by=r["created_by"],
            url=r["url"],
            events=tuple(r["events"]),
            secret=r["secret"],
            created_at=r["created_at"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRow:
    id: uuid.UUID
    webhook_id: uuid.UUID
    export_id: uuid.UUID
    event: str
    state: str
    created_at: datetime
    attempts: int
    last_status: int | None
    last_error: str | None
    last_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(
            id=r["id"],
            webhook_id=r["webhook_id"],
            export_id=r["export_id"],
            event=r["event"],
            state=r["state"],
            created_at=r["created_at"],
            attempts=r["attempts"],
            last_status=r["last_status"],
            last_error=r["last_error"],
            last_at=r["last_at"],
            delivered_at=r["delivered_at"],
        )
