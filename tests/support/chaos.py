"""ExportdProcesss behind nginx while one of them is killed again and again: the scenario's pieces
(client, chaos, drain, tally, check), shared by the process test and bench/replica_chaos.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg

from exportd.dev.servers import EmbeddedS3
from exportd.model import TERMINAL
from tests.support.client import eventually
from tests.support.processes import ExportdProcess
from tests.support.s3 import objects_under
from tests.support.tokens import make_token

SMALL: Final = {"export": "numbers", "params": {"rows": 200}}
TENANTS: Final = ("acme", "globex", "initech")
# Statuses worth another try of the same POST (same Idempotency-Key): the load balancer found
# no replica (502/504), a replica lost its database (503), the tenant's queue is full (429).
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_AFTER_CAP_S: Final = 30.0
BUSY_WAIT_S: Final = 2.0
MESSAGE_ID: Final = re.compile(r"<export\.([0-9a-f-]{36})@exportd>")
# ExportdProcess settings for the run: 4 workers each, a per-tenant cap that lets 3 tenants fill the
# 3 replicas' 12 workers, and room for a job to meet several kills (they aim at busy replicas)
# before it would end `attempts_exhausted`; the API listens on loopback only.
REPLICA_ENV: Final = {
    "EXPORTD_WORKERS": "4",
    "EXPORTD_TENANT_MAX_RUNNING": "4",
    "EXPORTD_MAX_ATTEMPTS": "10",
    "EXPORTD_HOST": "127.0.0.1",
}


@dataclass
class Traffic:
    """What the client saw: one export id per acknowledged POST, and every retry's reason."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # Idempotency-Key → export id
    requests: int = 0
    replayed: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


async def post_export(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    token: str,
    traffic: Traffic,
    *,
    max_tries: int = 40,
) -> str:
    """POST one export until a 202, retrying what is safe to retry under one Idempotency-Key."""
    key = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    for attempt in range(1, max_tries + 1):
        traffic.requests += 1
        delay = min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
        try:
            async with session.post(f"{url}/v1/exports", json=body, headers=headers) as response:
                if response.status == 202:
                    export_id: str = (await response.json())["id"]
                    traffic.replayed += response.headers.get("Idempotent-Replayed") == "true"
                    traffic.acknowledged[key] = export_id
                    return export_id
                if response.status not in RETRY_STATUSES:
                    text = await response.text()
                    raise AssertionError(f"POST answered {response.status}: {text}")
                traffic.retries[str(response.status)] += 1
                if response.status == 429:
                    delay = min(float(response.headers.get("Retry-After", 1)), RETRY_AFTER_CAP_S)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The replica died with our request: created or not, the retry tells (same key).
            traffic.retries[type(exc).__name__] += 1
        await asyncio.sleep(delay)  # backoff before the retry, not synchronisation
    raise AssertionError(f"POST with Idempotency-Key {key} not acknowledged in {max_tries} tries")


async def post_exports(
    url: str,
    count: int,
    *,
    concurrency: int = 20,
    rate: float | None = None,
    burst: int = 1,
    body: dict[str, Any] = SMALL,
) -> Traffic:
    """POST `count` exports, at most `concurrency` in flight, round-robin over TENANTS.

    With `rate`, exports go out `burst` at a time, `rate` a second on average: bursts are
    what a kill should meet, POSTs in flight and builds just claimed.
    """
    traffic = Traffic()
    tokens = [make_token(tenant=t, email=f"user-1@{t}.example", ttl_s=3600) for t in TENANTS]
    todo = iter(range(count))
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def client() -> None:
            for n in todo:
                if rate is not None:  # pacing: the n-th export goes with its burst
                    due = started + (n - n % burst) / rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                await post_export(session, url, body, tokens[n % len(tokens)], traffic)

        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(client())
    traffic.seconds = time.monotonic() - started
    return traffic


LeaseCounts = Callable[[], Awaitable[Counter[int]]]


async def live_leases(conn: asyncpg.Connection[asyncpg.Record]) -> Counter[int]:
    """Live job leases per replica pid (a lease owner is `host:pid:nonce`)."""
    owners = await conn.fetch(
        "SELECT lease_owner FROM jobs WHERE lease_token IS NOT NULL AND ready_at > now()"
    )
    return Counter(int(r["lease_owner"].split(":")[1]) for r in owners)


@dataclass
class Chaos:
    """Kill -9 a replica every `interval` seconds and start it again on the same port.

    With `leases`, the victim is a replica holding jobs at that moment (waiting up to
    BUSY_WAIT_S for one), so the kill lands on builds and mails in flight rather than on an
    idle process; without, or when all stay idle, it is any replica.
    """

    fleet: Sequence[ExportdProcess]
    leases: LeaseCounts | None = None
    interval: tuple[float, float] = (2.0, 3.0)
    max_kills: int = 50
    seed: int = field(default_factory=lambda: random.randrange(2**32))
    kills: int = 0
    jobs_hit: int = 0  # leases the victims held when killed
    victims: Counter[str] = field(default_factory=Counter)
    restart_seconds: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set or `max_kills` is reached; a restart under way is completed."""
        rng = random.Random(self.seed)
        while self.kills < self.max_kills:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(*self.interval))
            if stop.is_set():
                return
            victim, held = await self._pick(rng)
            await victim.kill()
            self.kills += 1
            self.jobs_hit += held
            self.victims[victim.name] += 1
            started = time.monotonic()
            # Same object, same port and env: nginx's upstream list stays right.
            await victim.start()
            self.restart_seconds.append(time.monotonic() - started)

    async def _pick(self, rng: random.Random) -> tuple[ExportdProcess, int]:
        if self.leases is not None:
            deadline = time.monotonic() + BUSY_WAIT_S
            while time.monotonic() < deadline:
                held = await self.leases()
                busy = [r for r in self.fleet if held[r.pid] > 0]
                if busy:
                    victim = rng.choice(busy)
                    return victim, held[victim.pid]
                await asyncio.sleep(0.02)  # polling the database, bounded by BUSY_WAIT_S
        return rng.choice(self.fleet), 0


async def drive_with_chaos(
    url: str,
    fleet: Sequence[ExportdProcess],
    count: int,
    *,
    chaos: Chaos,
    concurrency: int = 20,
    rate: float | None = None,
    burst: int = 1,
    body: dict[str, Any] = SMALL,
) -> Traffic:
    """POST `count` exports through `url` while `chaos` runs; chaos stops once all are acked."""
    stop = asyncio.Event()
    chaos_task = asyncio.create_task(chaos.run(stop), name="chaos")
    try:
        traffic = await post_exports(
            url, count, concurrency=concurrency, rate=rate, burst=burst, body=body
        )
    finally:
        stop.set()
        await chaos_task
    assert all(r.running for r in fleet)
    return traffic


async def drained(
    conn: asyncpg.Connection[asyncpg.Record], expected: int, *, within: float = 120.0
) -> float:
    """Wait (bounded) until `expected` exports are terminal and the queue is empty (every
    build and notify finished); the seconds it took."""
    started = time.monotonic()

    async def done() -> bool:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM exports WHERE status = ANY($1)) AS terminal,"
            " (SELECT count(*) FROM jobs) AS jobs",
            list(TERMINAL),
        )
        assert row is not None
        return bool(row["terminal"] >= expected and row["jobs"] == 0)

    await eventually(done, within=within)
    return time.monotonic() - started


@dataclass(frozen=True)
class Tally:
    """The outcome, counted from the database, S3, the mail sink and the replica logs."""

    acknowledged: int  # distinct export ids the client got a 202 for
    exports: int
    succeeded: int
    failed: int
    other: int
    results: int  # exports with a recorded result (object key and sha256)
    objects: int  # completed S3 objects under the prefix
    missing_objects: int  # recorded results whose object is not in S3
    # Objects no export points at (a claim killed after its upload and before its commit
    # leaves one; the attempt that succeeds after it removes it).
    orphan_objects: list[str]
    open_uploads: int  # multipart uploads left open (killed claims; also removed)
    notified: int  # exports with notified_at
    mails: int
    unmailed: int  # exports that got no mail
    # Exports mailed more than once (same Message-ID): must never happen.
    duplicate_mails: dict[str, int]
    # Exports whose notify found a claim had died mid-send: not mailed again, on purpose.
    outcome_unknown: int
    stray_mails: int  # mails for ids that are not these exports
    jobs_left: int
    reclaimed_builds: int  # exports whose build was claimed more than once
    reclaimed_notifies: int  # ... whose notify was
    max_attempts: int
    errors: dict[str, int]  # error_code → exports (failed ones, or retried on the way)
    log_events: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


LOG_EVENTS: Final = ("job.lease_lost", "job.retrying", "job.exhausted", "job.failed")


async def tally(
    conn: asyncpg.Connection[asyncpg.Record],
    s3: EmbeddedS3,
    prefix: str,
    mails: Sequence[EmailMessage],
    traffic: Traffic,
    logs: Sequence[Path],
) -> Tally:
    rows = await conn.fetch(
        "SELECT id, status, object_key, result_sha256, notified_at, attempts, error_code"
        " FROM exports"
    )
    exports = {str(r["id"]): r for r in rows}
    statuses = Counter(r["status"] for r in rows)
    keys = {r["object_key"] for r in rows if r["object_key"] and r["result_sha256"]}
    listed, uploads = await asyncio.to_thread(objects_under, s3, prefix)
    objects = set(listed)
    orphans = sorted(objects - keys)
    mailed = Counter(_export_id(m) for m in mails)
    events, notify_claims = _read_logs(logs)
    duplicates = {i: n for i, n in mailed.items() if i in exports and n > 1}

    return Tally(
        acknowledged=len(set(traffic.acknowledged.values())),
        exports=len(rows),
        succeeded=statuses["succeeded"],
        failed=statuses["failed"],
        other=len(rows) - statuses["succeeded"] - statuses["failed"],
        results=len(keys),
        objects=len(objects),
        missing_objects=len(keys - objects),
        orphan_objects=orphans,
        open_uploads=len(uploads),
        notified=sum(r["notified_at"] is not None for r in rows),
        mails=sum(n for i, n in mailed.items() if i in exports),
        unmailed=sum(1 for i in exports if i not in mailed),
        duplicate_mails=duplicates,
        outcome_unknown=sum(r["error_code"] == "mail_outcome_unknown" for r in rows),
        stray_mails=sum(n for i, n in mailed.items() if i not in exports),
        jobs_left=await conn.fetchval("SELECT count(*) FROM jobs"),
        reclaimed_builds=sum(r["attempts"] > 1 for r in rows),
        reclaimed_notifies=sum(1 for n in notify_claims.values() if n > 1),
        max_attempts=max((r["attempts"] for r in rows), default=0),
        errors=dict(Counter(r["error_code"] for r in rows if r["error_code"])),
        log_events=events,
    )


def _read_logs(paths: Sequence[Path]) -> tuple[dict[str, int], Counter[str]]:
    """LOG_EVENTS in the replicas' JSON logs, and how often each export's notify job was
    claimed (its highest attempt: the claim counts the attempt before the job starts)."""
    events = dict.fromkeys(LOG_EVENTS, 0)
    notify_claims: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by kill -9
            if not isinstance(entry, dict):
                continue
            event = entry.get("event")
            if event in events:
                events[event] += 1
            elif event == "job.started" and entry.get("kind") == "notify":
                export_id = str(entry.get("export_id"))
                attempt = int(entry.get("attempt", 1))
                notify_claims[export_id] = max(notify_claims[export_id], attempt)
    return events, notify_claims


def _export_id(mail: EmailMessage) -> str:
    found = MESSAGE_ID.fullmatch(str(mail["Message-ID"] or "").strip())
    return found.group(1) if found else "?"


async def conclude(
    conn: asyncpg.Connection[asyncpg.Record],
    s3: EmbeddedS3,
    prefix: str,
    mails: Sequence[EmailMessage],
    run: Run,
) -> tuple[Tally, dict[str, Any]]:
    """Count what a finished run left (database, S3, mails, logs) and the report it makes."""
    outcome = await tally(conn, s3, prefix, mails, run.traffic, [r.log_path for r in run.fleet])
    report = summarize(
        run.requested,
        outcome,
        run.traffic,
        run.chaos,
        nginx_failovers=run.nginx_failovers,
        drain_seconds=run.drain_seconds,
        wall_seconds=run.wall_seconds,
    )
    return outcome, report


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


def summarize(
    requested: int,
    outcome: Tally,
    traffic: Traffic,
    chaos: Chaos,
    *,
    nginx_failovers: int,
    drain_seconds: float,
    wall_seconds: float,
) -> dict[str, Any]:
    """The counts a run reports (the test prints them, the bench saves them)."""
    return {
        "exports_requested": requested,
        "acknowledged": outcome.acknowledged,
        "exports": outcome.exports,
        "succeeded": outcome.succeeded,
        "failed": outcome.failed,
        "other": outcome.other,
        "results": outcome.results,
        "objects": outcome.objects,
        "missing_objects": outcome.missing_objects,
        "orphan_objects": len(outcome.orphan_objects),
        "open_uploads": outcome.open_uploads,
        "notified": outcome.notified,
        "mails": outcome.mails,
        "unmailed": outcome.unmailed,
        "duplicate_mails": len(outcome.duplicate_mails),
        "outcome_unknown": outcome.outcome_unknown,
        "stray_mails": outcome.stray_mails,
        "jobs_left": outcome.jobs_left,
        "kills": chaos.kills,
        "jobs_held_by_killed": chaos.jobs_hit,
        "reclaimed_builds": outcome.reclaimed_builds,
        "reclaimed_notifies": outcome.reclaimed_notifies,
        "max_attempts": outcome.max_attempts,
        "errors": outcome.errors,
        "post_requests": traffic.requests,
        "post_retries": dict(traffic.retries),
        "replayed": traffic.replayed,
        "nginx_failovers": nginx_failovers,
        "log_events": outcome.log_events,
        "restart_seconds_max": round(max(chaos.restart_seconds, default=0.0), 2),
        "post_seconds": round(traffic.seconds, 1),
        "drain_seconds": round(drain_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "exports_per_s": round(outcome.succeeded / wall_seconds, 1) if wall_seconds else 0.0,
        "seed": chaos.seed,
    }


def check(outcome: Tally, requested: int) -> None:
    """What every run must show, whatever the kills hit; each assertion shows the counts.

    Every acknowledged export exists once, succeeded, has exactly one result whose object
    exists and no other object or open upload beside it, got at most one mail, and left no
    job. An export goes unmailed only when its notify found that a claim died mid-send (the
    mail may or may not have gone out; it is not sent twice).
    """
    counts = outcome.as_dict()
    # Nothing lost, nothing doubled: one export per acknowledged POST, all built.
    assert outcome.acknowledged == requested == outcome.exports, counts
    assert outcome.succeeded == requested, counts
    # Exactly one result each, its object there, and nothing else under the prefix.
    assert outcome.results == requested and outcome.missing_objects == 0, counts
    assert outcome.orphan_objects == [] and outcome.objects == requested, counts
    assert outcome.open_uploads == 0, counts
    # At most one mail each; every export either recorded its mail or knows why not.
    assert outcome.duplicate_mails == {}, counts
    assert outcome.stray_mails == 0, counts
    assert outcome.notified + outcome.outcome_unknown == requested, counts
    assert outcome.mails <= requested, counts
    assert outcome.jobs_left == 0, counts
