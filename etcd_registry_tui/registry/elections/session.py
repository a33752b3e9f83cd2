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
LostListener = Callable[[Candidacy], None]


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
        on_lost: LostListener = lambda _: None,
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
        self.on_lost = on_lost
        #: Our candidates lost (not resigned) whose keys etcd may still show: lease ->
        #: why. The watch may show such a key leading for a while (a frozen link).
        self.lost: dict[int, str] = {}
        self._lost_watches: dict[int, asyncio.Task[None]] = {}

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
        for task in [*self._waiters.values(), *self._lost_watches.values()]:
            task.cancel()
        await asyncio.gather(*(c.resign() for c in own), return_exceptions=True)
        await self.supervisor.stop()

    def _changed(self, changes: list[LeaderChange]) -> None:
        gained, lost = self.state.drain_leases()  # what changed, not every lease again
        self.tracker.untrack(lost)
        self.tracker.track(gained)
        for candidacy in [c for c in self.own.values() if c.lost.is_set()]:
            self._lost(candidacy)
        self._gone = {c for c in self._gone if not c.ended}
        for lease in [lease for lease in self.lost if not self.state.keys_on_lease(lease)]:
            del self.lost[lease]  # its key is gone from the view as well
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
        self._lost_watches[candidacy.lease] = asyncio.create_task(
            self._watch_lost(candidacy), name=f"lost {name}"
        )
        return candidacy

    async def _watch_lost(self, candidacy: Candidacy) -> None:
        """Say at once when a candidate of ours is lost (not resigned): the watch may not
        show it for a long while (a frozen link), and until then its key still leads."""
        try:
            await candidacy.lost.wait()
        finally:
            self._lost_watches.pop(candidacy.lease, None)
        self._lost(candidacy)

    def _lost(self, candidacy: Candidacy) -> None:
        """A candidacy of ours is lost: no longer ours to act on; said (``on_lost``) once,
        unless it was resigned here."""
        lease = candidacy.lease
        if self.own.get(lease) is not candidacy:
            return  # resigned, revoked or shut down here, or said already
        # a lost candidacy stops its heartbeats and revokes its lease by itself
        self._gone.add(self.own.pop(lease))
        if candidacy.reason != "resigned":
            self.lost[lease] = candidacy.reason or "lost"
            self.on_lost(candidacy)

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
