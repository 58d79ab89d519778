"""The process's Prometheus metrics (prometheus-client, one registry per process): counters
and histograms updated as things happen, gauges set when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from exportd.model import JobKind

# No `_created` twin beside every counter and histogram: it doubles the series for nothing.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The exposition format's media type, without the charset aiohttp adds itself.
CONTENT_TYPE: Final = "text/plain; version=0.0.4"
SIZE_BUCKETS: Final = tuple(float(10**e) for e in range(2, 12))  # 100 B .. 100 GB
ROW_BUCKETS: Final = tuple(float(10**e) for e in range(0, 10))
SECONDS_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
JOB_STATES: Final = ("ready", "delayed", "running")
# A method label from this set or "other": a client may send any token as a method, and every
# label value is a series kept for the life of the process.
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every metric exportd exports, named as Prometheus asks (units in the name, _total)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "exportd_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "exportd_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=r,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.exports_created = Counter(
            "exportd_exports_created", "Exports accepted (202), replays excluded.", registry=r
        )
        self.exports_refused = Counter(
            "exportd_exports_refused",
            "Create requests refused for capacity (429).",
            ["reason"],
            registry=r,
        )
        self.jobs_claimed = Counter(
            "exportd_jobs_claimed", "Jobs this process claimed.", ["kind"], registry=r
        )
        self.jobs_reclaimed = Counter(
            "exportd_jobs_reclaimed",
            "Claims of jobs whose previous lease had expired (its replica died or stalled).",
            ["kind"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "exportd_jobs_finished",
            "Job runs this process ended, by how they ended.",
            ["kind", "outcome"],
            registry=r,
        )
        self.job_retries = Counter(
            "exportd_job_retries",
            "Job runs that failed and will be retried.",
            ["kind", "code"],
            registry=r,
        )
        self.lease_losses = Counter(
            "exportd_lease_losses",
            "Job runs stopped because their lease was lost.",
            ["kind"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "exportd_job_queue_wait_seconds",
            "From a job's creation to its first claim.",
            ["kind"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.build_seconds = Histogram(
            "exportd_build_duration_seconds",
            "Time to build an export's file, by format.",
            ["format"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.export_bytes = Histogram(
            "exportd_export_size_bytes",
            "Size of each export's file.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.export_rows = Histogram(
            "exportd_export_rows", "Rows in each export's file.", buckets=ROW_BUCKETS, registry=r
        )
        self.mail_seconds = Histogram(
            "exportd_mail_send_duration_seconds",
            "Time to hand a mail to the relay.",
            registry=r,
        )
        self.mail_resends = Counter(
            "exportd_mail_resends",
            "Mails sent again because an earlier send's outcome was unknown (same Message-ID).",
            registry=r,
        )
        self.downloads = Counter(
            "exportd_downloads",
            "Downloads granted (a redirect to the file), by route: api or link.",
            ["route"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "exportd_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered, failed or refused.",
            ["outcome"],
            registry=r,
        )
        self.files_expired = Counter(
            "exportd_files_expired", "Export files deleted at the end of retention.", registry=r
        )
        self.exports_purged = Counter(
            "exportd_exports_purged", "Export rows purged after the history window.", registry=r
        )
        self.upload_seconds = Histogram(
            "exportd_upload_part_duration_seconds",
            "Time to upload one multipart part to S3.",
            registry=r,
        )
        # Set when scraped.
        self.jobs = Gauge(
            "exportd_jobs",
            "Jobs in the queue (the whole fleet's), by kind and state.",
            ["kind", "state"],
            registry=r,
        )
        self.oldest_ready = Gauge(
            "exportd_oldest_ready_job_age_seconds",
            "How long the oldest claimable job has waited (0 when none waits).",
            ["kind"],
            registry=r,
        )
        self.jobs_running = Gauge(
            "exportd_jobs_running", "Jobs this process is running now.", ["kind"], registry=r
        )
        self.waiters = Gauge(
            "exportd_longpoll_waiters",
            "Long-polls (and running jobs) waiting on a change.",
            registry=r,
        )
        self.longpoll_reads = Counter(
            "exportd_longpoll_reads",
            "Reads of an export made for its long-poll waiters: one per change, however many wait.",
            registry=r,
        )
        self.longpolls_refused = Counter(
            "exportd_longpolls_refused",
            "Long-polls answered 429 because too many were waiting, by scope: replica or tenant.",
            ["scope"],
            registry=r,
        )
        self.pool_connections = Gauge(
            "exportd_db_pool_connections",
            "Connections of the queue database's pool.",
            ["state"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "exportd_dependency_up",
            "1 while a dependency answers its readiness check.",
            ["check"],
            registry=r,
        )

        # The process (memory, CPU, open files) and which exportd it is.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        build = Gauge(
            "exportd_build_info", "Always 1; the version as a label.", ["version"], registry=r
        )
        build.labels(version=version("exportd")).set(1)
        # Every kind's series from the start: an absent series reads as "no data", not 0.
        for kind in JobKind:
            for counter in (self.jobs_claimed, self.jobs_reclaimed, self.lease_losses):
                counter.labels(kind=kind)
        self.exports_refused.labels(reason="too_many_queued")
        for route in ("api", "link"):
            self.downloads.labels(route=route)
        for scope in ("replica", "tenant"):
            self.longpolls_refused.labels(scope=scope)
        for outcome in ("delivered", "failed", "refused"):
            self.webhook_attempts.labels(outcome=outcome)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request. Each label set's children are kept: finding them by their
        labels costs more than updating them, on every request."""
        method = method if method in HTTP_METHODS else "other"
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_seconds.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def set_queue(
        self,
        kinds: Iterable[str],
        depth: Iterable[tuple[str, str, int]],
        oldest: Iterable[tuple[str, float]],
    ) -> None:
        """The queue as read from the database: every kind and state present, 0 if empty."""
        kinds = list(kinds)
        for kind in kinds:
            for state in JOB_STATES:
                self.jobs.labels(kind=kind, state=state).set(0)
            self.oldest_ready.labels(kind=kind).set(0)
        for kind, state, count in depth:
            self.jobs.labels(kind=kind, state=state).set(count)
        for kind, age in oldest:
            self.oldest_ready.labels(kind=kind).set(age)

    def clear_queue(self) -> None:
        """The queue could not be read: no numbers rather than stale ones."""
        self.jobs.clear()
        self.oldest_ready.clear()

    def render(self) -> bytes:
        return generate_latest(self.registry)
