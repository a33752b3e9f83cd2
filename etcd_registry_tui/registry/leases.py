"""Lease countdowns without one RPC per key per second.

The tracker asks LeaseTimeToLive once per *unique* lease, counts down locally
from a monotonic deadline, and re-syncs in bounded batches: often for leases
near expiry or never synced, rarely for healthy ones. A lease kept alive by
another process thus shows its renewed TTL within a few seconds, and the RPC
rate stays under ``max_rate`` calls a second however many keys there are.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .connection import EtcdConnection
from .errors import RegistryError


@dataclass(slots=True)
class LeaseInfo:
    lease_id: int
    granted: int | None = None
    deadline: float | None = None  # monotonic time the lease runs out
    synced_at: float | None = None
    next_sync: float = 0.0
    exists: bool = True
    # The deadline lies in [lo, hi]: etcd truncates TTLs to whole seconds, so each
    # reading bounds it by a second plus the round trip; readings of a lease that
    # was not renewed in between narrow the window to well under a second.
    lo: float | None = None
    hi: float | None = None

    def remaining(self, now: float) -> float | None:
        if not self.exists:
            return 0.0
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - now)


class LeaseTracker:
    """Remaining and granted TTL for every lease the registry uses."""

    def __init__(
        self,
        conn: EtcdConnection,
        max_rate: float = 200.0,
        concurrency: int = 16,
        healthy_interval: float = 4.0,
        urgent_interval: float = 1.0,
        healthy_rate: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.max_rate = max_rate
        # Healthy leases share a smaller budget, so a large, stable registry costs little
        # CPU while leases that are new or close to expiry still get the full max_rate.
        self.healthy_rate = min(healthy_rate, max_rate)
        self.concurrency = concurrency
        self.healthy_interval = healthy_interval
        self.urgent_interval = urgent_interval
        self.clock = clock
        self.leases: dict[int, LeaseInfo] = {}
        self.calls = 0
        self.errors = 0
        self.last_error: str | None = None
        self._queue: list[tuple[float, int]] = []  # healthy leases: (next sync, lease)
        # Never synced, asked for, or near expiry: served before any healthy lease, so
        # they are not stuck behind a backlog when there are more leases than max_rate
        # can re-sync every healthy_interval.
        self._urgent: list[tuple[float, int]] = []
        self._wake = asyncio.Event()

    # -- what to track -------------------------------------------------------
    def track(self, lease_ids: Iterable[int]) -> None:
        """Start following these leases (0 and known ones are ignored)."""
        now = self.clock()
        added = False
        for lease_id in lease_ids:
            if lease_id and lease_id not in self.leases:
                self.leases[lease_id] = LeaseInfo(lease_id, next_sync=now)
                heapq.heappush(self._urgent, (now, lease_id))
                added = True
        if added:
            self._wake.set()

    def untrack(self, lease_ids: Iterable[int]) -> None:
        for lease_id in lease_ids:
            self.leases.pop(lease_id, None)

    def retain(self, lease_ids: set[int]) -> None:
        """Track exactly these leases."""
        self.untrack([lease for lease in self.leases if lease not in lease_ids])
        self.track(lease_ids)

    # -- what the UI reads ---------------------------------------------------
    def remaining(self, lease_id: int) -> float | None:
        info = self.leases.get(lease_id)
        return info.remaining(self.clock()) if info else None

    def granted(self, lease_id: int) -> int | None:
        info = self.leases.get(lease_id)
        return info.granted if info else None

    def ttl(self, lease_id: int) -> tuple[float | None, int | None]:
        """(remaining seconds or None if unknown, granted TTL or None)."""
        info = self.leases.get(lease_id)
        if info is None:
            return None, None
        return info.remaining(self.clock()), info.granted

    def note(self, lease_id: int, ttl: int, granted: int | None = None) -> None:
        """Record a TTL learnt elsewhere (a keep-alive response, a grant): no RPC."""
        info = self.leases.get(lease_id)
        if info is None:
            info = self.leases[lease_id] = LeaseInfo(lease_id)
        self._record(info, ttl, granted if granted is not None else info.granted or ttl, None)

    # -- syncing -------------------------------------------------------------
    def _is_urgent(self, info: LeaseInfo, now: float) -> bool:
        """Unknown TTL or near expiry: re-sync often, ahead of healthy leases."""
        remaining = info.remaining(now)
        if not info.exists:
            return False
        if remaining is None or info.granted is None:
            return True
        return remaining < 5 or remaining < info.granted / 3

    def _interval(self, info: LeaseInfo, now: float) -> float:
        remaining = info.remaining(now)
        if not info.exists:
            return 30.0
        if self._is_urgent(info, now) or remaining is None or info.granted is None:
            return self.urgent_interval
        # Healthy: look again before it could have dropped to a third, at most
        # every ``healthy_interval`` so renewals by others show up quickly.
        return min(self.healthy_interval, max(self.urgent_interval, remaining - info.granted / 3))

    def _record(self, info: LeaseInfo, ttl: int, granted: int, sent_at: float | None) -> None:
        now = self.clock()
        info.synced_at = now
        if ttl < 0:
            info.exists = False
            info.deadline = info.lo = info.hi = now
        else:
            info.exists = True
            info.granted = granted
            if sent_at is None:  # a keep-alive or grant answer: renewed just now, to the second
                lo, hi = now + ttl - 0.25, now + ttl
            else:  # etcd truncates the remaining time: it lies in [ttl, ttl + 1)
                lo, hi = sent_at + ttl, now + ttl + 1
            if info.lo is not None and info.hi is not None and lo <= info.hi and info.lo <= hi:
                lo, hi = max(lo, info.lo), min(hi, info.hi)  # not renewed: narrow the window
            info.lo, info.hi = lo, hi
            info.deadline = (lo + hi) / 2
        info.next_sync = now + self._interval(info, now)
        if info.exists and info.lo is not None and info.hi is not None and info.hi - info.lo > 0.1:
            # Ask when a whole number of seconds is left at the window's middle: the
            # answer then says which half holds the deadline (a binary search).
            middle = (info.lo + info.hi) / 2
            info.next_sync += (middle - info.next_sync) % 1.0
        queue = self._urgent if self._is_urgent(info, now) else self._queue
        heapq.heappush(queue, (info.next_sync, info.lease_id))

    async def sync_one(self, lease_id: int) -> None:
        info = self.leases.get(lease_id)
        if info is None:
            return
        sent_at = self.clock()
        self.calls += 1
        ttl, granted, _ = await self.conn.time_to_live(lease_id)
        if lease_id in self.leases:
            self._record(self.leases[lease_id], ttl, granted, sent_at)

    def _due(self, now: float, limit: int, healthy_limit: int) -> tuple[list[int], int]:
        """Leases to sync now: urgent ones first; returns (leases, how many healthy)."""
        due: list[int] = []
        seen: set[int] = set()
        healthy = 0
        for queue in (self._urgent, self._queue):
            while queue and len(due) < limit and queue[0][0] <= now:
                if queue is self._queue and healthy >= healthy_limit:
                    break
                when, lease_id = heapq.heappop(queue)
                info = self.leases.get(lease_id)
                if info is None or lease_id in seen or info.next_sync != when:
                    continue  # stale heap entry
                seen.add(lease_id)
                due.append(lease_id)
                healthy += queue is self._queue
        return due, healthy

    async def run(self, period: float = 0.25) -> None:
        """Sync due leases forever, at most ``max_rate`` calls a second."""
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(lease_id: int) -> None:
            async with semaphore:
                try:
                    await self.sync_one(lease_id)
                except RegistryError as exc:
                    self.errors += 1
                    self.last_error = str(exc)
                    info = self.leases.get(lease_id)
                    if info is not None:
                        info.next_sync = self.clock() + 2.0
                        heapq.heappush(self._urgent, (info.next_sync, lease_id))

        budget = healthy_budget = 0.0
        last = self.clock()
        while True:
            now = self.clock()
            budget = min(self.max_rate, budget + (now - last) * self.max_rate)
            healthy_budget = min(
                self.healthy_rate, healthy_budget + (now - last) * self.healthy_rate
            )
            last = now
            due, healthy = self._due(now, int(budget), int(healthy_budget))
            if due:
                budget -= len(due)
                healthy_budget -= healthy
                await asyncio.gather(*(one(lease_id) for lease_id in due))
            self._wake.clear()
            wait = period
            heads = [q[0][0] for q in (self._urgent, self._queue) if q]
            if heads:
                wait = min(period, max(0.0, min(heads) - self.clock()))
            if wait > 0 or not due:
                try:
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.05))
                except TimeoutError:
                    pass
