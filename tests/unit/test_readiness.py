"""Readiness checks on their own schedules: nothing claimed before the first run, a refusal
(credentials) looked at rarely, a suspicion from a failed job checked at once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from exportd.errors import DependencyRefused
from exportd.readiness import NotReady, Probe, Readiness

calls: Counter[str] = Counter()


def probe(name: str, error: Exception | None = None) -> Probe:
    async def check() -> None:
        calls[name] += 1
        if error is not None:
            raise error

    return check


async def test_nothing_is_ready_before_the_first_run() -> None:
    readiness = Readiness({"database": probe("database")}, every=timedelta(minutes=1))

    assert not readiness.ok(["database"])
    assert await readiness.check() == {"database": None}
    assert readiness.ok(["database"])


async def test_reasons_are_safe_to_show_and_refusals_are_not_hammered() -> None:
    calls.clear()
    readiness = Readiness(
        {
            "mail": probe("mail", DependencyRefused("refused our credentials", "535 on host x")),
            "storage": probe("storage", OSError("connect to 10.0.0.7 failed")),
            "listener": probe("listener", NotReady("not connected")),
        },
        every=timedelta(minutes=1),
    )

    reasons = await readiness.check()
    for _ in range(5):  # a burst of /readyz calls
        await readiness.check()

    assert reasons == {
        "mail": "refused our credentials",
        "storage": "not answering",
        "listener": "not connected",
    }
    assert calls["mail"] == 1  # nor would it be for a minute: a login per attempt


async def test_a_suspected_check_runs_at_once_and_others_keep_their_schedule() -> None:
    calls.clear()
    readiness = Readiness(
        {"mail": probe("mail"), "storage": probe("storage")}, every=timedelta(minutes=1)
    )
    await readiness.check()

    readiness.suspect("mail")
    readiness.suspect("no-such-check")  # a failure code that names no check
    await readiness.check()

    assert calls == {"mail": 2, "storage": 1}
