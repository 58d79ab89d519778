"""Where a queued export stands: how many builds start before it, and roughly when it will."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from exportd.db.pool import Executor
from exportd.db.rows import ExportRow
from exportd.model import Status

MIN_HISTORY: Final = 3  # fewer finished builds than this say nothing about the next one

# Claim order is (ready_at, id) over builds not under a live lease (claim_jobs): count the
# ones before each asked-about build on the claim index, fleet-wide and for its own tenant.
QUEUE_STANDING: Final = """
WITH target AS (
    SELECT export_id, tenant, ready_at, id FROM jobs
    WHERE export_id = ANY($1::uuid[]) AND kind = 'build'
),
-- live: builds under a live lease per tenant (at most the fleet's workers)
live AS (
    SELECT tenant, count(*) AS n FROM jobs
    WHERE kind = 'build' AND lease_token IS NOT NULL AND ready_at > now()
    GROUP BY tenant
),
-- history: the newest builds (first claim to success): their median time, and how fast the
-- fleet finished those of the last ten minutes (builds per second)
recent AS (
    SELECT finished_at, extract(epoch FROM finished_at - started_at)::float8 AS seconds
    FROM exports WHERE result_sha256 IS NOT NULL ORDER BY finished_at DESC LIMIT 50
),
history AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median_s, count(*) AS n,
           ((count(*) FILTER (WHERE finished_at > now() - interval '10 minutes') - 1)
             / nullif(extract(epoch FROM max(finished_at) - min(finished_at) FILTER (
                 WHERE finished_at > now() - interval '10 minutes')), 0))::float8 AS per_s
    FROM recent
)
SELECT target.export_id,
       (SELECT count(*) FROM jobs w
        WHERE w.kind = 'build' AND (w.ready_at, w.id) < (target.ready_at, target.id)
          AND (w.lease_token IS NULL OR w.ready_at <= now())) AS ahead,
       (SELECT count(*) FROM jobs w
        WHERE w.kind = 'build' AND w.tenant = target.tenant
          AND (w.ready_at, w.id) < (target.ready_at, target.id)
          AND (w.lease_token IS NULL OR w.ready_at <= now())) AS own_ahead,
       coalesce((SELECT n FROM live WHERE live.tenant = target.tenant), 0) AS own_running,
       (SELECT coalesce(sum(n), 0) FROM live)::bigint AS fleet_running,
       history.median_s, history.n AS samples, history.per_s, now() AS at
FROM target, history"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Standing:
    """A queued build's place: `ahead` builds start before it; `waiting_for` says what it
    waits for: a worker, or its tenant's own builds (those running and queued before it
    already fill the tenant's cap)."""

    ahead: int
    waiting_for: str
    estimated_start_at: datetime | None

    @property
    def position(self) -> int:
        return self.ahead + 1


def estimate_start(
    *,
    at: datetime,
    ahead: int,
    own_ahead: int,
    own_running: int,
    fleet_running: int,
    tenant_cap: int,
    median_s: float | None,
    samples: int,
    per_s: float | None,
) -> datetime | None:
    """A rough estimate: the builds ahead go at the rate the fleet finished builds lately
    (`per_s`; else as many at once as run now, each taking the median), and when the
    tenant's own builds fill its cap, those over it end first, `tenant_cap` at a time.
    None without enough history to say anything."""
    if median_s is None or samples < MIN_HISTORY:
        return None
    if per_s:
        rate = per_s
    elif median_s > 0:
        rate = max(fleet_running, 1) / median_s
    else:
        return None
    wait = (ahead + 1) / rate
    over_cap = own_running + own_ahead - tenant_cap + 1
    if over_cap > 0:
        wait = max(wait, median_s * over_cap / tenant_cap)
    return at + timedelta(seconds=max(wait, 0.0))


async def queue_standing(
    conn: Executor, export_ids: Sequence[uuid.UUID], *, tenant_cap: int
) -> dict[uuid.UUID, Standing]:
    """Each queued export's standing; an id without a build job (it just started, or ended)
    is left out."""
    if not export_ids:
        return {}
    records = await conn.fetch(QUEUE_STANDING, list(export_ids))
    standings = {}
    for r in records:
        standings[r["export_id"]] = Standing(
            ahead=r["ahead"],
            waiting_for=(
                "tenant_limit" if r["own_running"] + r["own_ahead"] >= tenant_cap else "worker"
            ),
            estimated_start_at=estimate_start(
                at=r["at"],
                ahead=r["ahead"],
                own_ahead=r["own_ahead"],
                own_running=r["own_running"],
                fleet_running=r["fleet_running"],
                tenant_cap=tenant_cap,
                median_s=r["median_s"],
                samples=r["samples"],
                per_s=r["per_s"],
            ),
        )
    return standings


async def standing_of(conn: Executor, export: ExportRow, *, tenant_cap: int) -> Standing | None:
    """Where the export stands while it is queued; None otherwise (or once it has started)."""
    if export.status != Status.QUEUED:
        return None
    found = await queue_standing(conn, [export.id], tenant_cap=tenant_cap)
    return found.get(export.id)
