"""Exponential backoff with full jitter: the one schedule for every retry in exportd."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


def backoff(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """Uniform in [0, min(cap, base * 2^(attempt-1))]: retries spread out instead of
    arriving together (AWS's "full jitter")."""
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=random.uniform(0, ceiling))


@dataclass(frozen=True, slots=True)
class Retry:
    """A kind of job's retry schedule: `backoff` from `base` up to `cap`."""

    base: timedelta
    cap: timedelta

    def delay(self, attempt: int) -> timedelta:
        return backoff(attempt, self.base, self.cap)
