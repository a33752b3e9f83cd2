"""Lease countdowns without one RPC per key per second.

The tracker asks LeaseTimeToLive once per *unique* lease and counts down locally from
a monotonic deadline. Each lease has two times for its next reading:

- ``need``: the reading must come before the countdown could fall under
  :data:`FLOOR_SECONDS` (the dashboard's red), with ``margin`` seconds to spare for
  queueing and a busy machine; a lease too short for that margin is read when half its
  time to the floor is gone, and one under the floor once per ``urgent_interval``. A
  lease renewed by its owner is read again before it could look low.
- ``refresh``: a cheaper, optional re-read every ``healthy_interval`` so that renewals
  and revocations by others show up quickly on a small registry; their budget scales with
  the number of leases (every lease once per ``healthy_interval``) up to ``healthy_rate``
  calls a second, and they only use what the needed readings leave.

One heap per kind, both keyed by time (stale entries are skipped), served earliest
first under ``max_rate`` calls in any one second. While ``N / max_rate`` stays under
about a third of the TTL, a renewed lease is never shown under ``min(FLOOR_SECONDS,
its true remaining time)``; an idle registry of N leases costs ``min(N / healthy_interval,
healthy_rate)`` calls a second plus one reading per lease as it nears expiry.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .etcd.aio import within
from .etcd.connection import EtcdConnection
from .etcd.errors import RegistryError

#: A countdown under this is shown as critical (red) by the dashboard; the tracker reads
#: a lease again before its countdown could fall under it.
FLOOR_SECONDS = 5.0
#: The rate cap counts calls started within this sliding window (a hair over a second,
#: so a caller timing the same calls a few microseconds later sees no more than the cap).
RATE_WINDOW = 1.01
#: A reading answered later than this (or still unanswered after it) shows a link that is
#: not keeping up: what arrives over it may be late (see :meth:`LeaseTracker.steady_since`).
PROMPT = 1.0


@dataclass(slots=True)
class LeaseInfo:
    lease_id: int
    granted: int | None = None
    deadline: float | None = None  # monotonic time the lease runs out
    synced_at: float | None = None
    need: float = 0.0  # read again by then (before the countdown could look low)
    refresh: float = math.inf  # may read again from then, budget allowing
    exists: bool = True
    # The deadline lies in [lo, hi]: etcd truncates TTLs to whole seconds, so each
    # reading bounds it by a second plus the round trip; readings of a lease that
    # was not renewed in between narrow the window to well under a second.
    lo: float | None = None
    hi: float | None = None
    narrowed: bool = False  # the last reading narrowed the window (not renewed since)
    alive_at: float | None = None  # when a reading last found the lease (lo, hi are from it)

    def remaining(self, now: float) -> float | None:
        if not self.exists:
            return 0.0
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - now)


@dataclass(frozen=True, slots=True)
class LeaseWindow:
    """What the last reading that found a lease says of its deadline (monotonic times).

    ``lo`` is certain: a renewal only moves the deadline later. ``hi`` holds unless the
    lease was renewed after the reading taken at ``alive_at``.
    """

    lo: float
    hi: float
    alive_at: float


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
        margin: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.max_rate = max_rate
        # Optional refreshes share a smaller budget, so a large, stable registry costs
        # little CPU; the readings a countdown needs get whatever is left of max_rate.
        self.healthy_rate = min(healthy_rate, max_rate)
        self.concurrency = concurrency
        self.healthy_interval = healthy_interval
        self.urgent_interval = urgent_interval
        self.margin = margin
        self.clock = clock
        self.leases: dict[int, LeaseInfo] = {}
        self.calls = 0
        self.errors = 0
        self.last_error: str | None = None
        self._need: list[tuple[float, int]] = []  # (need, lease), stale entries skipped
        self._refresh: list[tuple[float, int]] = []  # (refresh, lease)
        self._started: deque[float] = deque()  # start of every call in the rate window
        self._refreshed: deque[float] = deque()  # start of every optional refresh
        self._wake = asyncio.Event()
        self._asked: dict[int, float] = {}  # reading in flight -> when it was sent
        self._asks = 0
        self._slow_at = -math.inf  # when a reading last came back late or failed
        #: When a reading last came back within PROMPT (the link was delivering then).
        self.prompt_at = -math.inf

    # -- what to track -------------------------------------------------------
    def track(self, lease_ids: Iterable[int]) -> None:
        """Start following these leases (0 and known ones are ignored)."""
        now = self.clock()
        added = False
        for lease_id in lease_ids:
            if lease_id and lease_id not in self.leases:
                self.leases[lease_id] = LeaseInfo(lease_id, need=now)
                heapq.heappush(self._need, (now, lease_id))
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

    def window(self, lease_id: int) -> LeaseWindow | None:
        """The deadline's bounds from the last reading that found the lease (None: none)."""
        info = self.leases.get(lease_id)
        if info is None or info.alive_at is None or info.lo is None or info.hi is None:
            return None
        return LeaseWindow(info.lo, info.hi, info.alive_at)

    def behind_on(self, lease_id: int, slack: float = 0.5) -> bool:
        """A reading of ``lease_id`` was needed (its countdown neared the floor) more than
        ``slack`` seconds ago and has not been taken: what the tracker knows of its deadline
        is older than the schedule promises (the tracker is starved by its rate cap)."""
        info = self.leases.get(lease_id)
        if info is None or not info.exists or info.synced_at is None:
            return False
        return info.synced_at < info.need < self.clock() - slack

    def steady_since(self) -> float:
        """Since when every reading was answered within :data:`PROMPT` seconds (now: one
        has been waiting longer than that; -inf: always). A silent link (no error, only
        late answers) shows here first: the tracker reads every lease near its end about
        once a second."""
        now = self.clock()
        if any(now - sent > PROMPT for sent in self._asked.values()):
            return now
        return self._slow_at

    def note(
        self, lease_id: int, ttl: int, granted: int | None = None, sent_at: float | None = None
    ) -> None:
        """Record a TTL learnt elsewhere (a keep-alive response, a grant): no RPC.

        ``sent_at``: when the request that renewed or granted the lease was sent (this
        tracker's clock), or earlier: etcd set the deadline to ``ttl`` after some moment
        between then and now, so the deadline is no earlier than ``sent_at + ttl``. Without
        it the answer is taken to have come at most a quarter second after its request."""
        info = self.leases.get(lease_id)
        if info is None:
            info = self.leases[lease_id] = LeaseInfo(lease_id)
        granted = granted if granted is not None else info.granted or ttl
        self._record(info, ttl, granted, None, renewed_at=sent_at)

    # -- when to read --------------------------------------------------------
    def _schedule(self, info: LeaseInfo, now: float) -> None:
        """Set (and queue) when ``info`` must and when it may be read again."""
        if not info.exists or info.deadline is None:
            info.need, info.refresh = now + (30.0 if not info.exists else 2.0), math.inf
        else:
            # Before the countdown could drop under the floor, with a margin to spare; a
            # lease too short for the margin is read when half its time to the floor is
            # gone (at least every urgent_interval, at most four times a second).
            to_floor = info.deadline - FLOOR_SECONDS - now
            gap = self.urgent_interval
            if to_floor > 0:
                gap = min(gap, max(0.25, to_floor / 2))
            soonest = now + gap
            info.need = max(soonest, info.deadline - FLOOR_SECONDS - self.margin)
            info.refresh = now + self.healthy_interval
            if info.lo is not None and info.hi is not None and info.hi - info.lo > 0.1:
                # Ask when a whole number of seconds is left at the window's middle: the
                # answer then says which half holds the deadline (a binary search). A
                # needed reading only moves earlier, and only for a lease not renewed
                # lately (a renewed one starts a fresh window anyway).
                middle = (info.lo + info.hi) / 2
                info.refresh += (middle - info.refresh) % 1.0
                earlier = info.need - (info.need - middle) % 1.0
                if info.narrowed and earlier >= soonest:
                    info.need = earlier
            heapq.heappush(self._refresh, (info.refresh, info.lease_id))
        heapq.heappush(self._need, (info.need, info.lease_id))

    def _record(
        self,
        info: LeaseInfo,
        ttl: int,
        granted: int,
        sent_at: float | None,
        renewed_at: float | None = None,
    ) -> None:
        now = self.clock()
        info.synced_at = now
        info.narrowed = False
        if ttl < 0:
            # Gone: the countdown shows 0; lo and hi stay those of the last reading that
            # found it (what was known of its deadline).
            info.exists = False
            info.deadline = now
        else:
            info.exists = True
            info.granted = granted
            if sent_at is None:  # a keep-alive or grant answer: renewed to the second, between
                # its request (renewed_at, or a quarter second ago) and now
                start = min(now - 0.25 if renewed_at is None else renewed_at, now)
                lo, hi = start + ttl, now + ttl
                # Found alive at some moment since its request: the earliest, to be safe.
                info.alive_at = start
            else:
                # A reading: etcd truncates the remaining time toward zero: it lies in
                # [ttl, ttl + 1), or in (-1, 1) for a 0 (a lease past its deadline lives until
                # it is revoked); found alive at some moment since its request.
                info.alive_at = sent_at
                lo, hi = sent_at + ttl - (1 if ttl == 0 else 0), now + ttl + 1
            if info.lo is not None and info.hi is not None and lo <= info.hi and info.lo <= hi:
                lo, hi = max(lo, info.lo), min(hi, info.hi)  # not renewed: narrow the window
                info.narrowed = True
            info.lo, info.hi = lo, hi
            info.deadline = (lo + hi) / 2
        self._schedule(info, now)

    async def sync_one(self, lease_id: int) -> None:
        info = self.leases.get(lease_id)
        if info is None:
            return
        sent_at = self.clock()
        self._started.append(sent_at)
        self.calls += 1
        self._asks += 1
        ask = self._asks
        self._asked[ask] = sent_at
        try:
            ttl, granted, _ = await self.conn.time_to_live(lease_id)
        except BaseException:
            self._slow_at = self.clock()
            raise
        finally:
            del self._asked[ask]
        if self.clock() - sent_at > PROMPT:
            self._slow_at = self.clock()
        else:
            self.prompt_at = self.clock()
        if lease_id in self.leases:
            self._record(self.leases[lease_id], ttl, granted, sent_at)

    def healthy_budget(self) -> int:
        """Optional refreshes allowed a second: enough to re-read every lease once per
        ``healthy_interval``, never more than ``healthy_rate`` (at least one)."""
        wanted = math.ceil(len(self.leases) / self.healthy_interval)
        return max(1, min(int(self.healthy_rate), wanted))

    def _allowed(self, now: float) -> tuple[int, int]:
        """How many calls may start now: (in all, of them optional refreshes)."""
        for window in (self._started, self._refreshed):
            while window and window[0] <= now - RATE_WINDOW:
                window.popleft()
        allowed = max(1, int(self.max_rate)) - len(self._started)
        refresh = self.healthy_budget() - len(self._refreshed)
        return max(0, allowed), max(0, min(allowed, refresh))

    def _compact(self) -> None:
        """Drop stale heap entries once they outnumber the leases (a long TTL's old
        ``need`` would otherwise wait in the heap until its time)."""
        if len(self._need) + len(self._refresh) <= 4 * len(self.leases) + 64:
            return
        self._need = [(info.need, lease) for lease, info in self.leases.items()]
        self._refresh = [
            (info.refresh, lease) for lease, info in self.leases.items() if info.refresh != math.inf
        ]
        heapq.heapify(self._need)
        heapq.heapify(self._refresh)

    def _due(self, now: float) -> list[int]:
        """Leases to read now: needed readings earliest first, then optional refreshes."""
        self._compact()
        allowed, refresh_allowed = self._allowed(now)
        due: list[int] = []
        seen: set[int] = set()
        for heap in (self._need, self._refresh):
            needed = heap is self._need
            while heap and heap[0][0] <= now:
                when, lease_id = heap[0]
                info = self.leases.get(lease_id)
                if (
                    info is None
                    or lease_id in seen
                    or when != (info.need if needed else info.refresh)
                ):
                    heapq.heappop(heap)  # stale entry
                    continue
                if len(due) >= allowed or (not needed and refresh_allowed <= 0):
                    break
                heapq.heappop(heap)
                seen.add(lease_id)
                due.append(lease_id)
                if not needed:
                    refresh_allowed -= 1
                    self._refreshed.append(now)
        return due

    def _next_wake(self, now: float, period: float) -> float:
        """Seconds until a reading may be due: a heap's head, once the cap lets it start."""
        allowed, refresh_allowed = self._allowed(now)
        capped = self._started[0] + RATE_WINDOW - now if not allowed and self._started else 0.0
        refresh_capped = capped
        if not refresh_allowed and allowed and self._refreshed:
            refresh_capped = self._refreshed[0] + RATE_WINDOW - now
        wait = period
        if self._need:
            wait = min(wait, max(self._need[0][0] - now, capped))
        if self._refresh:
            wait = min(wait, max(self._refresh[0][0] - now, refresh_capped))
        return max(0.01, wait)

    async def run(self, period: float = 0.25) -> None:
        """Read due leases forever, never more than ``max_rate`` calls in one second."""
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
                        info.need, info.refresh = self.clock() + 2.0, math.inf
                        heapq.heappush(self._need, (info.need, lease_id))

        while True:
            self._wake.clear()
            due = self._due(self.clock())
            if due:
                await asyncio.gather(*(one(lease_id) for lease_id in due))
                continue  # more may be due already
            try:
                await within(self._wake.wait(), self._next_wake(self.clock(), period))
            except TimeoutError:
                pass
