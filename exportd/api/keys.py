"""Typed keys for what the app carries: its settings, catalog and the services it was given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from exportd.api.auth import Verifier
from exportd.api.watch import Watch
from exportd.config import Settings
from exportd.db.pool import Pool
from exportd.envvars import Networks
from exportd.export.catalog import Catalog
from exportd.metrics import Metrics
from exportd.queue.listener import Listener
from exportd.storage.s3 import Storage

Role = Literal["all", "api", "worker"]


def _keep_claiming() -> None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What the routes use, opened by the composition root for the life of the process."""

    pool: Pool
    storage: Storage
    listener: Listener
    # Each dependency's check: None when it answers, else a reason safe to show.
    readiness: Callable[[], Awaitable[Mapping[str, str | None]]]
    # Shutdown's first step: claim nothing more (a no-op where no workers run).
    stop_claiming: Callable[[], None] = _keep_claiming


SETTINGS = web.AppKey("settings", Settings)
CATALOG = web.AppKey("catalog", Catalog)
VERIFIER = web.AppKey("verifier", Verifier)
ROLE = web.AppKey("role", str)
METRICS = web.AppKey("metrics", Metrics)
SERVICES = web.AppKey("services", Services)
# The long-poll waiters of this replica (api/watch.py).
WATCH = web.AppKey("watch", Watch)
# The proxies whose X-Forwarded-For is believed (EXPORTD_TRUSTED_PROXIES, parsed once).
PROXIES: web.AppKey[Networks] = web.AppKey("proxies")
