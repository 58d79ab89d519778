"""What a replica-chaos run left, counted from the database, S3, the mail sink, the webhook
receivers and the replica logs; and what every run must show (shared by the process test
and bench/replica_chaos.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

import asyncpg

from exportd.dev.servers import EmbeddedS3
from tests.support.chaos import Chaos, Traffic
from tests.support.mail import mail_id
from tests.support.processes import ExportdProcess
from tests.support.receiver import Receiver
from tests.support.s3 import objects_under

# The export a mail is about, as its text says it (the footer names the export's id).
MAILED_EXPORT: Final = re.compile(r"Export ([0-9a-f-]{36})")
# The events every export of a run must have delivered: it succeeds, then its file expires.
EVENTS: Final = ("export.succeeded", "export.expired")
LOG_EVENTS: Final = (
    "job.lease_lost",
    "job.retrying",
    "job.exhausted",
    "job.failed",
    "notify.resending",
)


@dataclass(frozen=True)
class Tally:
    acknowledged: int  # distinct export ids the client got a 202 for
    exports: int
    expired: int  # succeeded, and their file deleted at the end of retention
    other: int  # any other status (must be none)
    results: int  # exports with a recorded result (sha256), kept after expiry
    objects_left: int  # objects under the prefix (every file expired: must be none)
    open_uploads: int  # multipart uploads left open (killed claims; expiry aborts them)
    mails: int
    unmailed: int  # exports that got no mail (must be none)
    mailed_twice: int  # exports mailed again after a claim died mid-send
    # Mails whose Message-ID is not their export's (a second copy must carry the same one).
    wrong_message_ids: int
    stray_mails: int  # mails about ids that are not these exports
    deliveries: int  # webhook requests received
    undelivered_events: int  # (event, export) pairs no receiver got (must be none)
    redelivered: int  # webhook-ids received more than once (at-least-once; deduplicable)
    unverified: int  # requests whose signature did not verify (must be none)
    deliveries_not_delivered: int  # webhook_deliveries rows not `delivered` (must be none)
    jobs_left: int
    reclaimed_builds: int  # exports whose build was claimed more than once
    max_attempts: int
    errors: dict[str, int]  # error_code → exports (retried on the way, or failed)
    log_events: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def tally(
    conn: asyncpg.Connection[asyncpg.Record],
    s3: EmbeddedS3,
    prefix: str,
    mails: Sequence[EmailMessage],
    receivers: Sequence[Receiver],
    traffic: Traffic,
    logs: Sequence[Path],
) -> Tally:
    rows = await conn.fetch("SELECT id, status, result_sha256, attempts, error_code FROM exports")
    ids = {str(r["id"]) for r in rows}
    statuses = Counter(r["status"] for r in rows)
    listed, uploads = await asyncio.to_thread(objects_under, s3, prefix)
    mailed = [(_mailed_export(m), str(m["Message-ID"]).strip()) for m in mails]
    per_export = Counter(export for export, _ in mailed)
    received = [r for receiver in receivers for r in receiver.received]
    got = {(r.json()["type"], r.json()["data"]["id"]) for r in received}
    webhook_ids = Counter(r.webhook_id for r in received)
    pending = "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'"
    return Tally(
        acknowledged=len(set(traffic.acknowledged.values())),
        exports=len(rows),
        expired=statuses["expired"],
        other=len(rows) - statuses["expired"],
        results=sum(r["result_sha256"] is not None for r in rows),
        objects_left=len(listed),
        open_uploads=len(uploads),
        mails=sum(n for export, n in per_export.items() if export in ids),
        unmailed=len(ids - set(per_export)),
        mailed_twice=sum(1 for export, n in per_export.items() if export in ids and n > 1),
        wrong_message_ids=sum(1 for export, sent in mailed if sent != mail_id(export)),
        stray_mails=sum(n for export, n in per_export.items() if export not in ids),
        deliveries=len(received),
        undelivered_events=sum((e, i) not in got for i in ids for e in EVENTS),
        redelivered=sum(1 for n in webhook_ids.values() if n > 1),
        unverified=sum(len(receiver.unverified) for receiver in receivers),
        deliveries_not_delivered=await conn.fetchval(pending),
        jobs_left=await conn.fetchval("SELECT count(*) FROM jobs"),
        reclaimed_builds=sum(r["attempts"] > 1 for r in rows),
        max_attempts=max((r["attempts"] for r in rows), default=0),
        errors=dict(Counter(r["error_code"] for r in rows if r["error_code"])),
        log_events=_read_logs(logs),
    )


def _mailed_export(mail: EmailMessage) -> str:
    text = mail.get_body(("plain",))
    found = MAILED_EXPORT.search(text.get_content() if text is not None else "")
    return found.group(1) if found else "?"


def _read_logs(paths: Sequence[Path]) -> dict[str, int]:
    """How often each of LOG_EVENTS appears in the replicas' JSON logs."""
    events = dict.fromkeys(LOG_EVENTS, 0)
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by kill -9
            if isinstance(entry, dict) and entry.get("event") in events:
                events[entry["event"]] += 1
    return events


@dataclass(frozen=True)
class Run:
    """What a chaos run did: its fleet, the client's traffic, the kills, and how long."""

    requested: int
    fleet: Sequence[ExportdProcess]
    traffic: Traffic
    chaos: Chaos
    nginx_failovers: int
    drain_seconds: float
    wall_seconds: float


async def conclude(
    conn: asyncpg.Connection[asyncpg.Record],
    s3: EmbeddedS3,
    prefix: str,
    mails: Sequence[EmailMessage],
    receivers: Sequence[Receiver],
    run: Run,
) -> tuple[Tally, dict[str, Any]]:
    """Count what a finished run left and the report it makes."""
    logs = [r.log_path for r in run.fleet]
    outcome = await tally(conn, s3, prefix, mails, receivers, run.traffic, logs)
    chaos, traffic = run.chaos, run.traffic
    report = {
        "exports_requested": run.requested,
        **outcome.as_dict(),
        "kills": chaos.kills,
        "jobs_held_by_killed": chaos.jobs_hit,
        "post_requests": traffic.requests,
        "post_retries": dict(traffic.retries),
        "replayed": traffic.replayed,
        "nginx_failovers": run.nginx_failovers,
        "restart_seconds_max": round(max(chaos.restart_seconds, default=0.0), 2),
        "post_seconds": round(traffic.seconds, 1),
        "drain_seconds": round(run.drain_seconds, 1),
        "wall_seconds": round(run.wall_seconds, 1),
        "exports_per_s": round(outcome.expired / run.wall_seconds, 1) if run.wall_seconds else 0,
        "seed": chaos.seed,
    }
    return outcome, report


def check(outcome: Tally, requested: int) -> None:
    """What every run must show, whatever the kills hit; each assertion shows the counts.

    Every acknowledged export exists once, succeeded (its result on record) and expired
    (nothing left in S3); each was mailed at least once, a second copy with the same
    Message-ID; both its events reached the tenant's endpoint, signed; no job is left.
    """
    counts = outcome.as_dict()
    # Nothing lost, nothing doubled: one export per acknowledged POST, each built once.
    assert outcome.acknowledged == requested == outcome.exports, counts
    assert outcome.expired == requested and outcome.results == requested, counts
    # Retention is real: every file and every upload a killed attempt left is gone.
    assert outcome.objects_left == 0 and outcome.open_uploads == 0, counts
    # Everyone told: a mail each (a resend only after a claim died mid-send, same id).
    assert outcome.unmailed == 0 and outcome.stray_mails == 0, counts
    assert outcome.wrong_message_ids == 0, counts
    assert outcome.undelivered_events == 0 and outcome.unverified == 0, counts
    assert outcome.deliveries_not_delivered == 0, counts
    assert outcome.jobs_left == 0, counts
