"""An owner that keeps many leases alive, independent of the code under test.

``Renewer`` grants leases and renews each one every ``period`` seconds (random phase)
over a single LeaseKeepAlive stream of a plain ``aetcd.Client``: requests are pipelined
(one writer, one reader), so a thousand leases cost one stream, not a thousand.

It records when each renewal was sent and when etcd acknowledged it. etcd sets a
lease's deadline to "now + TTL" when it handles the request, which is after it was sent,
so ``floor(lease, at)`` is a hard lower bound on the lease's true remaining time at
``at``, whatever the load on the machine: a renewal owner stalled by the CPU only lowers
the bound, it never makes it lie.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import random
import time
from collections import deque
from typing import Any

import aetcd
import grpc
from aetcd import rpc


class Renewer:
    def __init__(self, endpoint: str, period: float, clock: Any = time.monotonic) -> None:
        host, port = endpoint.rsplit(":", 1)
        self.client = aetcd.Client(host=host, port=int(port))
        self.period = period
        self.clock = clock
        self.ttl: dict[int, int] = {}
        # per lease, in order: (acknowledged at, sent at) of each grant or renewal
        self._acks: dict[int, list[tuple[float, float]]] = {}
        self._pending: dict[int, deque[float]] = {}
        self.renewals = 0
        self.lost: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._call: Any = None

    async def grant(self, count: int, ttl: int, concurrency: int = 64) -> list[int]:
        await self.client.connect()
        sem = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with sem:
                sent = self.clock()
                lease = await self.client.lease(ttl)
                self.ttl[lease.id] = ttl
                self._acks[lease.id] = [(self.clock(), sent)]
                return int(lease.id)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    def floor(self, lease: int, at: float) -> float:
        """A lower bound on the lease's true remaining seconds at monotonic time ``at``."""
        acks = self._acks[lease]
        index = bisect.bisect_right(acks, (at, float("inf"))) - 1
        if index < 0:
            return 0.0
        return acks[index][1] + self.ttl[lease] - at

    async def start(self) -> None:
        await self.client.connect()
        self._call = self.client.leasestub.LeaseKeepAlive(metadata=self.client.metadata)
        self._tasks = [
            asyncio.create_task(self._write(), name="renewer writer"),
            asyncio.create_task(self._read(), name="renewer reader"),
        ]

    async def _write(self) -> None:
        now = self.clock()
        due = [(now + random.uniform(0, self.period), lease) for lease in self.ttl]
        heapq.heapify(due)
        while True:
            now = self.clock()
            while due[0][0] <= now:
                _, lease = due[0]
                self._pending.setdefault(lease, deque()).append(self.clock())
                await self._call.write(rpc.LeaseKeepAliveRequest(ID=lease))
                # the next one a period after this one was due, not after now: a stall
                # is not made up for by a burst, nor does it shift the whole schedule
                heapq.heapreplace(due, (max(due[0][0] + self.period, now), lease))
            await asyncio.sleep(min(0.05, max(0.0, due[0][0] - self.clock())))

    async def _read(self) -> None:
        while True:
            response = await self._call.read()
            if response is grpc.aio.EOF:
                return
            now = self.clock()
            lease = int(response.ID)
            sent = self._pending[lease].popleft()
            if response.TTL <= 0:
                self.lost.add(lease)
                continue
            self._acks[lease].append((now, sent))
            self.renewals += 1

    async def close(self, revoke: bool = True) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._call is not None:
            self._call.cancel()
        if revoke:
            for lease in self.ttl:
                with contextlib.suppress(Exception):
                    await self.client.revoke_lease(lease)
        await self.client.close()
