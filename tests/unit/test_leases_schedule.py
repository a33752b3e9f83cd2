"""The tracker's scheduling on a simulated clock: the invariant at the rate cap's edge.

These tests are about *when* the tracker reads, not about etcd (tests/etcd/test_leases_scale.py
checks the same promise against a real etcd). A small lessor stands in for etcd with
its documented arithmetic: a renewal sets the deadline to now + TTL, LeaseTimeToLive
answers the remaining time truncated to whole seconds, -1 once it ran out. The clock only
moves when the test moves it, so a minute of 1,000 leases takes a second and the result
does not depend on the machine.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.leases import FLOOR_SECONDS, LeaseTracker
from etcd_registry_tui.registry.session import IDLE_REFRESH_RATE, RegistrySession


class Lessor:
    """Lease deadlines on a manual clock, answering LeaseTimeToLive as etcd does."""

    def __init__(self) -> None:
        self.now = 0.0
        self.deadline: dict[int, float] = {}
        self.granted: dict[int, int] = {}
        self.calls: list[float] = []

    def grant(self, lease: int, ttl: int) -> None:
        self.granted[lease] = ttl
        self.deadline[lease] = self.now + ttl

    def renew(self, lease: int) -> None:
        if self.deadline[lease] > self.now:
            self.deadline[lease] = self.now + self.granted[lease]

    async def time_to_live(self, lease: int, keys: bool = False) -> tuple[int, int, list[Any]]:
        self.calls.append(self.now)
        left = self.deadline[lease] - self.now
        if left <= 0:
            return -1, 0, []
        return math.floor(left), self.granted[lease], []


def busiest_second(starts: list[float]) -> int:
    most, first = 0, 0
    for last, at in enumerate(starts):
        while starts[first] <= at - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


async def simulate(
    count: int, ttl: int, period: float | None, rate: float, seconds: float, step: float = 0.05
) -> tuple[LeaseTracker, Lessor, list[tuple[int, float, float]], float]:
    """Run the tracker for ``seconds``; returns (tracker, lessor, low samples, lowest shown).

    A low sample is (lease, shown, true remaining) with shown under min(5 s, true - 1 s).
    """
    rng = random.Random(9)
    lessor = Lessor()
    tracker = LeaseTracker(lessor, max_rate=rate, clock=lambda: lessor.now)  # type: ignore[arg-type]
    leases = list(range(1, count + 1))
    for lease in leases:
        lessor.grant(lease, ttl)
    renew_at = {lease: rng.uniform(0, period) for lease in leases} if period else {}
    tracker.track(leases)
    low: list[tuple[int, float, float]] = []
    lowest = math.inf
    ticks = round(seconds / step)
    for tick in range(1, ticks + 1):
        for lease, when in renew_at.items():
            if when <= lessor.now:
                lessor.renew(lease)
                renew_at[lease] = when + (period or 0)
        due = tracker._due(lessor.now)
        await asyncio.gather(*(tracker.sync_one(lease) for lease in due))
        if tick % 5 == 0:
            for lease in leases:
                shown = tracker.remaining(lease)
                if shown is None:
                    continue
                true = lessor.deadline[lease] - lessor.now
                lowest = min(lowest, shown)
                if shown < min(FLOOR_SECONDS, true - 1.0):
                    low.append((lease, round(shown, 2), round(true, 2)))
        lessor.now = round(tick * step, 6)
    return tracker, lessor, low, lowest


async def test_renewed_leases_at_the_edge_of_the_cap_are_never_shown_low() -> None:
    # the reproduction: 1,000 leases of TTL 15 renewed every 2 s, cap 200/s,
    # N / R = 5 s = TTL / 3: the edge of the promise
    tracker, lessor, low, lowest = await simulate(1000, 15, 2.0, 200.0, 75.0)
    assert not low, f"{len(low)} low samples, first {low[:5]}"
    assert lowest >= FLOOR_SECONDS
    assert busiest_second(lessor.calls) <= 200
    # after the first round, a lease costs one reading per (its countdown after a reading,
    # on average TTL - period / 2) - (floor + margin), plus the refresh budget: no more
    later = [at for at in lessor.calls if at >= 15.0]
    needed = 1000 / (15 - 2.0 / 2 - FLOOR_SECONDS - tracker.margin)
    assert len(later) / 60.0 <= needed + tracker.healthy_rate


async def test_short_renewed_leases_are_never_shown_low() -> None:
    # 150 leases of TTL 10 renewed at a third of it (the issue: half of them shown red)
    _, lessor, low, lowest = await simulate(150, 10, 10 / 3, 200.0, 50.0)
    assert not low, f"{len(low)} low samples, first {low[:5]}"
    assert lowest >= FLOOR_SECONDS
    assert busiest_second(lessor.calls) <= 200


async def test_unrenewed_leases_run_down_truly_and_cost_little_while_healthy() -> None:
    tracker, lessor, low, _ = await simulate(2000, 40, None, 200.0, 60.0)
    assert not low  # nobody renews: shown is never under the truth by more than a second
    assert busiest_second(lessor.calls) <= 200
    # healthy (20-30 s left): only the refresh budget is spent
    quiet = [at for at in lessor.calls if 12.0 <= at < 20.0]
    assert len(quiet) / 8.0 <= 21
    # every lease ran out, and the tracker says so (from a reading, not a guess)
    assert all(not info.exists for info in tracker.leases.values())
    assert all(tracker.remaining(lease) == 0 for lease in tracker.leases)


async def test_long_renewed_leases_cost_the_refresh_budget_only() -> None:
    # 100 leases of TTL 60 renewed every 20 s: the 4-s refreshes see every renewal, so
    # no reading is ever needed on top of the 20 a second
    _, lessor, low, lowest = await simulate(100, 60, 20.0, 200.0, 120.0)
    assert not low and lowest > 30
    later = [at for at in lessor.calls if at >= 10.0]
    assert len(later) / 110.0 <= 20.5


async def test_stale_heap_entries_do_not_pile_up() -> None:
    tracker, _, _, _ = await simulate(50, 600, None, 200.0, 120.0)
    assert len(tracker._need) + len(tracker._refresh) <= 4 * 50 + 64 + 50


async def idle_reads_per_second(count: int, **tracker_kw: float) -> float:
    """Reads a second of ``count`` long, unrenewed leases, once each was read."""
    lessor = Lessor()
    tracker = LeaseTracker(lessor, clock=lambda: lessor.now, **tracker_kw)  # type: ignore[arg-type]
    leases = list(range(1, count + 1))
    for lease in leases:
        lessor.grant(lease, 3600)
    tracker.track(leases)
    step = 0.05
    for tick in range(1, round(120.0 / step) + 1):
        due = tracker._due(lessor.now)
        await asyncio.gather(*(tracker.sync_one(lease) for lease in due))
        lessor.now = round(tick * step, 6)
    assert all(info.deadline is not None for info in tracker.leases.values())
    return len([at for at in lessor.calls if at >= 80.0]) / 40.0


async def test_the_dashboards_idle_reads_scale_with_the_leases_up_to_its_budget() -> None:
    # Idle CPU: a healthy lease is re-read every healthy_interval while there are few, and
    # all of them share IDLE_REFRESH_RATE reads a second when there are many (1,000 or
    # 10,000 leases cost the same); the needed readings keep the countdowns right.
    rate = IDLE_REFRESH_RATE
    assert rate <= 5.0
    assert await idle_reads_per_second(4, healthy_rate=rate) == pytest.approx(1.0, abs=0.1)
    assert await idle_reads_per_second(12, healthy_rate=rate) == pytest.approx(3.0, abs=0.2)
    many = await idle_reads_per_second(1_000, healthy_rate=rate)
    assert rate - 0.5 <= many <= rate + 0.1
    more = await idle_reads_per_second(4_000, healthy_rate=rate)
    assert more <= rate + 0.1


def test_the_dashboards_tracker_uses_the_idle_budget() -> None:
    session = RegistrySession(ConnectionConfig())
    assert session.tracker.healthy_rate == IDLE_REFRESH_RATE
