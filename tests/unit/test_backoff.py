"""The one retry schedule: exponential, capped, with full jitter."""

from __future__ import annotations

from datetime import timedelta

from exportd.queue.backoff import backoff


def test_backoff_is_exponential_with_full_jitter() -> None:
    base, cap = timedelta(seconds=1), timedelta(seconds=60)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        delays = [backoff(attempt, base, cap).total_seconds() for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the whole range, not a fixed step
