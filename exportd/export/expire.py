"""The `expire` job: at a succeeded export's expiry, delete its file (and anything else under
its prefix) and mark it expired; for a failed or canceled export, tidy what its attempts
left. Deleting twice is harmless, so a replica dying between the delete and the mark only
means the next claim deletes nothing and marks it."""

from __future__ import annotations

from dataclasses import dataclass

from exportd.db import retention
from exportd.db.followups import Followups
from exportd.db.pool import Pool
from exportd.db.rows import JobRow
from exportd.errors import LeaseLost
from exportd.logs import Log
from exportd.metrics import Metrics
from exportd.model import Status
from exportd.storage.keys import export_prefix
from exportd.storage.s3 import Storage


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireJob:
    pool: Pool
    storage: Storage
    s3_prefix: str
    followups: Followups
    metrics: Metrics

    async def __call__(self, job: JobRow, log: Log) -> None:
        export = job.export
        # Downloads stopped at expires_at already (both routes check it): only the bytes go.
        removed = await self.storage.delete_under(
            export_prefix(self.s3_prefix, export.tenant, export.id)
        )
        if not await retention.complete_expire(self.pool, job, self.followups):
            raise LeaseLost
        if export.status == Status.SUCCEEDED:
            self.metrics.files_expired.inc()
            log.info("export.expired", removed=len(removed))
        elif removed:
            log.info("export.tidied", removed=len(removed))
