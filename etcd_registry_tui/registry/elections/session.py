"""What the dashboard does with elections and locks, with no UI in it.

It follows every election (an :class:`ElectionWatcher`), counts its candidates' leases
down (a :class:`LeaseTracker` of its own, so the registry's tracker keeps exactly the
registry's leases), and carries out the actions: campaign (the dashboard's own
candidates, kept alive), proclaim, resign, pause heartbeats, revoke any candidate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from ..etcd.connection import EtcdConnection
from ..etcd.errors import LeaseNotFound, RegistryError
from ..leases import LeaseTracker
from ..supervisor import Supervisor, TaskFailure
from .campaign import Candidacy, Election
from .state import ElectionState, LeaderChange
from .watch import ElectionWatcher

log = logging.getLogger(__name__)

ChangeListener = Callable[[list[LeaderChange]], None]
ErrorListener = Callable[[str | None], None]


class ElectionsSession:
    """Elections watcher + lease tracker + the dashboard's own candidates."""

    def __init__(
        self,
        conn: EtcdConnection,
        prefixes: Sequence[str] = (),
        on_change: ChangeListener = lambda _: None,
        on_error: ErrorListener = lambda _: None,
        read_only: bool = False,
        on_failure: Callable[[TaskFailure], None] = lambda _: None,
    ) -> None:
        self.conn = conn
        self.read_only = read_only
        self.on_change = on_change
        self.on_error = on_error
        self.watcher = ElectionWatcher(conn, prefixes, self._changed, self._error)
        self.tracker = LeaseTracker(conn, max_rate=50.0)
        self.supervisor = Supervisor(on_failure)
        self.own: dict[int, Candidacy] = {}  # lease -> our candidate
        self._gone: set[Candidacy] = set()  # lost ones still letting their lease go
        self._waiters: dict[int, asyncio.Task[None]] = {}

    @property
    def state(self) -> ElectionState:
        return self.watcher.state

    async def run(self) -> None:
        """Watch elections and track their leases; both restarted whenever they die."""
        await self.supervisor.run_all(
            ("elections watcher", self.watcher.run), ("elections lease tracker", self.tracker.run)
        )

    async def shutdown(self) -> None:
        """Resign every candidate of ours (their keys go at once); wait until the lost
        ones have let their leases go."""
        own = [*self.own.values(), *self._gone]
        self.own.clear()
        self._gone.clear()
        for task in self._waiters.values():
            task.cancel()
        await asyncio.gather(*(c.resign() for c in own), return_exceptions=True)
        await self.supervisor.stop()

    def _changed(self, changes: list[LeaderChange]) -> None:
        gained, lost = self.state.drain_leases()  # what changed, not every lease again
        self.tracker.untrack(lost)
        self.tracker.track(gained)
        for lease in [lease for lease, c in self.own.items() if c.lost.is_set()]:
            # a lost candidacy stops its heartbeats and revokes its lease by itself
            self._gone.add(self.own.pop(lease))
        self._gone = {c for c in self._gone if not c.ended}
        self.on_change(changes)

    def _error(self, error: str | None) -> None:
        self.on_error(error)

    def ttl(self, lease: int) -> tuple[float | None, int | None]:
        return self.tracker.ttl(lease)

    def paused_leases(self) -> set[int]:
        return {lease for lease, c in self.own.items() if c.paused}

    # -- actions ------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise RegistryError("writing is turned off", "the dashboard was started --read-only")

    async def campaign(self, name: str, value: str, ttl: int = 60) -> Candidacy:
        """Stand as a candidate (kept alive here); it leads once those before it go."""
        self._check_writable()
        candidacy = Election(self.conn, name).candidacy(value, ttl)
        started = self.tracker.clock()  # no later than the grant's request
        await candidacy.start()
        self.own[candidacy.lease] = candidacy
        self.tracker.note(candidacy.lease, candidacy.ttl, candidacy.ttl, sent_at=started)

        async def wait() -> None:
            with contextlib.suppress(RegistryError):
                await candidacy.wait_elected()
            self._waiters.pop(candidacy.lease, None)

        self._waiters[candidacy.lease] = asyncio.create_task(wait(), name=f"campaign {name}")
        return candidacy

    async def proclaim(self, lease: int, value: str) -> None:
        self._check_writable()
        candidacy = self._own(lease)
        await candidacy.proclaim(value)

    async def resign(self, lease: int) -> None:
        """Guarded delete of our key, then revoke its lease. When that fails (ResignFailed)
        the candidate stays ours, to resign again."""
        self._check_writable()
        candidacy = self._own(lease)
        await candidacy.resign()
        self.own.pop(lease, None)

    def toggle_pause(self, lease: int) -> bool:
        self._check_writable()
        candidacy = self._own(lease)
        if candidacy.paused:
            candidacy.resume()
        else:
            candidacy.pause()
        return candidacy.paused

    async def revoke(self, lease: int) -> None:
        """Revoke any candidate's lease (forces a failover). LeaseNotFound if gone."""
        self._check_writable()
        candidacy = self.own.get(lease)
        if candidacy is not None:
            await candidacy.resign()
            self.own.pop(lease, None)
            return
        await self.conn.revoke(lease)

    def _own(self, lease: int) -> Candidacy:
        candidacy = self.own.get(lease)
        if candidacy is None:
            raise RegistryError(
                "only candidates started from this dashboard can do that",
                "campaign with `c` first, or revoke the lease with `x`",
            )
        return candidacy


__all__ = ["ElectionsSession", "LeaseNotFound"]
