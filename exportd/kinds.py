"""Every kind of job: what runs it, what it needs answering before a replica claims it, and
how it retries. The one place the queue's job kinds meet the packages that do the work."""

from __future__ import annotations

from typing import Final

from exportd.config import Settings
from exportd.db.completions import Completions
from exportd.db.followups import Followups
from exportd.db.pool import Pool
from exportd.export.build import BuildJob
from exportd.export.catalog import Catalog
from exportd.export.expire import ExpireJob
from exportd.metrics import Metrics
from exportd.model import JobKind
from exportd.notify.job import NotifyJob
from exportd.notify.mailer import Mailer
from exportd.notify.message import Templates
from exportd.queue.backoff import Retry
from exportd.queue.handler import Handlers
from exportd.storage.s3 import Storage
from exportd.webhooks.job import WebhookJob
from exportd.webhooks.outbound import Sender

# What each kind of job needs answering before a replica claims it (readiness checks).
NEEDS: Final[dict[str, tuple[str, ...]]] = {
    JobKind.BUILD: ("database", "source", "storage"),
    JobKind.NOTIFY: ("database", "storage", "mail"),
    JobKind.EXPIRE: ("database", "storage"),
    JobKind.WEBHOOK: ("database",),
}


# A job failing with one of these codes found that dependency away: check it now, so claims
# of the kinds that need it stop at once rather than at its next scheduled check.
SUSPECTS: Final = {
    "database_unavailable": "database",
    "source_unavailable": "source",
    "storage_unavailable": "storage",
    "mail_unavailable": "mail",
}


def job_handlers(
    settings: Settings,
    catalog: Catalog,
    *,
    pool: Pool,
    source: Pool,
    storage: Storage,
    mailer: Mailer,
    sender: Sender,
    metrics: Metrics,
) -> Handlers:
    """Every job kind and what runs it."""
    followups = Followups.from_settings(settings)
    completions = Completions(pool, retention=settings.retention, followups=followups)
    return {
        JobKind.BUILD: BuildJob(
            pool=pool,
            source=source,
            storage=storage,
            catalog=catalog,
            s3_prefix=settings.s3_prefix,
            lease=settings.lease,
            completions=completions,
            progress_interval=settings.progress_interval,
            metrics=metrics,
        ),
        JobKind.NOTIFY: NotifyJob(
            pool=pool,
            completions=completions,
            storage=storage,
            mailer=mailer,
            title_of=catalog.title_of,
            templates=Templates(settings.mail_templates),
            s3_prefix=settings.s3_prefix,
            public_url=settings.base_url,
            message_id_domain=settings.message_domain,
            metrics=metrics,
        ),
        JobKind.EXPIRE: ExpireJob(
            pool=pool,
            storage=storage,
            s3_prefix=settings.s3_prefix,
            followups=followups,
            metrics=metrics,
        ),
        JobKind.WEBHOOK: WebhookJob(
            pool=pool, sender=sender, base_url=settings.base_url, metrics=metrics
        ),
    }


def retry_schedules(settings: Settings) -> dict[str, Retry]:
    """Each kind's backoff: webhooks wait longer between attempts (a receiver being down is
    often a deploy or an outage of minutes to hours), the rest the queue's own."""
    default = Retry(settings.retry_base, settings.retry_max)
    schedules: dict[str, Retry] = dict.fromkeys(JobKind, default)
    schedules[JobKind.WEBHOOK] = Retry(settings.webhook_retry_base, settings.webhook_retry_max)
    return schedules
