"""exportd processes behind nginx while one of them is killed again and again: the scenario's
pieces (client, webhooks, chaos, drain), shared by the process test and bench/replica_chaos.py;
chaos_tally.py counts what a run left."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import asyncpg

from exportd.api.auth import WEBHOOKS_SCOPE
from exportd.model import TERMINAL
from tests.support.client import eventually
from tests.support.processes import ExportdProcess
from tests.support.receiver import Receiver
from tests.support.tokens import make_token

SMALL: Final = {"export": "numbers", "params": {"rows": 200}}
TENANTS: Final = ("acme", "globex", "initech")
# Statuses worth another try of the same POST (same Idempotency-Key): the load balancer found
# no replica (502/504), a replica lost its database (503), the tenant's queue is full (429).
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
RETRY_AFTER_CAP_S: Final = 30.0
BUSY_WAIT_S: Final = 2.0
# ExportdProcess settings for the run: 4 workers each, a per-tenant cap that lets 3 tenants fill the
# 3 replicas' 12 workers, and room for a job to meet several kills (they aim at busy replicas)
# before it would end `attempts_exhausted`; the API listens on loopback only.
# Files expire within the run (after the mail had time to go, even past a few kills), and the
# webhooks retry fast: the run ends once every export's story has.
REPLICA_ENV: Final = {
    "EXPORTD_WORKERS": "4",
    "EXPORTD_TENANT_MAX_RUNNING": "4",
    "EXPORTD_MAX_ATTEMPTS": "10",
    "EXPORTD_HOST": "127.0.0.1",
    "EXPORTD_RETENTION_S": "30",
    "EXPORTD_WEBHOOK_ALLOW_PRIVATE": "true",
    "EXPORTD_WEBHOOK_RETRY_BASE_S": "0.2",
    "EXPORTD_WEBHOOK_RETRY_MAX_S": "3",
    "EXPORTD_WEBHOOK_MAX_ATTEMPTS": "30",
}
# The first answers of each endpoint are errors: deliveries are retried from the start.
WEBHOOK_FAILURES: Final = 5


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


async def register_webhooks(url: str, receivers: Sequence[Receiver]) -> None:
    """One endpoint per tenant (its receiver checks every signature with its secret), each
    answering its first WEBHOOK_FAILURES requests with a 503."""
    async with aiohttp.ClientSession() as session:
        for tenant, receiver in zip(TENANTS, receivers, strict=True):
            token = make_token(tenant=tenant, scopes=(WEBHOOKS_SCOPE,))
            async with session.post(
                f"{url}/v1/webhooks",
                json={"url": receiver.url(f"/{tenant}")},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 201, await response.text()
                receiver.verify_with((await response.json())["secret"])
            receiver.answer(503, times=WEBHOOK_FAILURES)


async def drained(
    conn: asyncpg.Connection[asyncpg.Record], expected: int, *, within: float = 120.0
) -> float:
    """Wait (bounded) until `expected` exports are terminal and the queue is empty (every
    build, mail, webhook and expiry finished); the seconds it took."""
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
