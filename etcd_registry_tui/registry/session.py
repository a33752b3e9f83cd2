"""Everything the dashboard does with etcd, with no UI in it.

A :class:`RegistrySession` owns the connection, the watcher, the lease tracker and
the instances the dashboard registered itself. It turns watch batches into log
entries (PUT, UPDATE, DELETE, lease expiry, revoke) and carries out the actions
(register, revoke, delete, pause heartbeats). The UI only reads and calls it.

Its long-lived tasks (the watcher, the lease tracker, each own instance's keep-alive)
run under a :class:`Supervisor`: a death is reported through ``on_failure`` and the task
restarted with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from .etcd.aio import within
from .etcd.config import ConnectionConfig
from .etcd.connection import MAX_TXN_OPS, EtcdConnection
from .etcd.errors import LeaseNotFound, RegistryError
from .events import ChangeBatch, ConnectionStatus, ConnState
from .history.read import compaction_revision
from .history.reasons import Clues, judge
from .history.several import read_past_prefixes
from .history.store import (
    DEFAULT_MAX_ENTRIES,
    DEFAULT_REVISIONS,
    EventKind,
    History,
    HistoryEvent,
    Reason,
)
from .layouts import Layout
from .leases import PROMPT, LeaseTracker
from .log_entries import LogEntry, LogKind, log_entry
from .model import Change, ChangeKind, Instance, KeyValue, RegistryState
from .registration import ServiceRegistration
from .supervisor import Supervisor, TaskFailure
from .watcher import RegistryWatcher
from .wording import lease_text

#: The dashboard's optional lease re-reads (TimeToLive) a second: every lease each 4 s
#: while there are up to 20, then this many shared by all (idle CPU stays flat however
#: many leases; the readings a countdown needs before it could look low come on top).
IDLE_REFRESH_RATE = 5.0
#: How often the session asks etcd for its compaction revision once history is read (etcd
#: tells no watcher when it compacts; the question is one Range of one key).
COMPACTION_CHECK_EVERY = 10.0


log = logging.getLogger(__name__)

BatchListener = Callable[[ChangeBatch, list[LogEntry]], None]
StatusListener = Callable[[ConnectionStatus], None]
FailureListener = Callable[[TaskFailure], None]
HistoryListener = Callable[[list[LogEntry]], None]
EventsListener = Callable[[list[HistoryEvent]], None]


def _noop(*_: Any) -> None:
    return None


def _kv(inst: Instance) -> KeyValue:
    return KeyValue(
        inst.raw_key, inst.value, inst.create_revision, inst.mod_revision, inst.version, inst.lease
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Revoked:
    """This dashboard's revoke of a lease, as etcd answered it."""

    #: The revision etcd answered the revoke with (see :meth:`EtcdConnection.revoke`).
    revision: int
    #: The keys read just before the revoke: key -> (the revision of that read, whether
    #: the key was on the lease then).
    before: dict[bytes, tuple[int, bool]]

    def took(self, key: bytes) -> bool:
        """The revoke removed ``key``: it was on the lease at the read, and the revoke made
        a revision after it (a revoke that removes nothing makes none)."""
        read = self.before.get(key)
        return read is not None and read[1] and self.revision > read[0]

    def gone(self) -> int:
        """How many of the keys read before went with the revoke."""
        return sum(self.took(key) for key in self.before)


_Answer = asyncio.Future[int | None]
#: A removal waiting for its lease lookup: what was known when its delete arrived, and
#: this dashboard's revoke of its lease and delete of the key if one was under way (they
#: answer with what etcd said, None if they failed).
_Pending = tuple[Clues, "asyncio.Future[Revoked | None] | None", _Answer | None]
#: How long a removal's reason waits for the answer to the dashboard's own revoke/delete.
ANSWER_WAIT = 10.0
#: Lease lookups (TimeToLive) for removal reasons in flight at once: on a link with
#: round trip r, reasons keep up with up to this many lease removals per r seconds.
LOOKUPS_IN_FLIGHT = 32
#: Batches of removals that may wait for their lookups at once; a batch arriving beyond
#: that is judged without one (its reasons say "not checked"): the event log's lag stays
#: bounded however fast leases go. No event is dropped.
MAX_LOOKING = 256

_A = TypeVar("_A")


async def _answer(answer: asyncio.Future[_A | None] | None) -> _A | None:
    if answer is None:
        return None
    with contextlib.suppress(TimeoutError):
        return await within(asyncio.shield(answer), ANSWER_WAIT)
    return None


class ReadOnlyError(RegistryError):
    hint = "the dashboard was started with --read-only"


class RegistrySession:
    """Connection + watcher + lease tracker + the dashboard's own instances."""

    def __init__(
        self,
        config: ConnectionConfig,
        on_batch: BatchListener = _noop,
        on_status: StatusListener = _noop,
        read_only: bool = False,
        on_failure: FailureListener = _noop,
        clock: Callable[[], float] = time.monotonic,
        history_revisions: int = DEFAULT_REVISIONS,
        history_max: int = DEFAULT_MAX_ENTRIES,
        on_history: HistoryListener = _noop,
        on_events: EventsListener = _noop,
    ) -> None:
        self.config = config
        self.read_only = read_only
        self.conn = EtcdConnection(config)
        self.state = RegistryState(config.prefixes)
        self.on_batch = on_batch
        self.on_status = on_status
        self.on_failure = on_failure
        self.supervisor = Supervisor(self._task_failed)
        self.watcher = RegistryWatcher(
            self.conn, self._batch, self._status, state=self.state, prefixes=config.prefixes
        )
        self.tracker = LeaseTracker(self.conn, clock=clock, healthy_rate=IDLE_REFRESH_RATE)
        self.own: dict[bytes, ServiceRegistration] = {}
        # Leases this dashboard revoked -> what etcd answered (None: failed).
        self._revokes: dict[int, asyncio.Future[Revoked | None]] = {}
        # When the watch last stopped being live (the tracker's clock; None: never).
        self._lost_at: float | None = None
        # Keys deleted from the dashboard -> the revision etcd answered with (None: failed).
        self._deletes: dict[bytes, asyncio.Future[int | None]] = {}
        #: What happened, read back at start (``history_revisions`` revisions at most,
        #: 0: none) and then seen live; at most ``history_max`` events.
        self.history = History(history_max)
        self.history_revisions = history_revisions
        self.on_history = on_history
        self.on_events = on_events
        # Batches of events held for their removals' reasons, in order, each with the task
        # that judges them (they are judged concurrently, delivered in order).
        self._unresolved: deque[tuple[list[HistoryEvent], asyncio.Task[None]]] = deque()
        #: How many batches of removals have had their reasons given (they are filled in
        #: in place, after the events were held: a view of the history redraws on a change).
        self.reasons_given = 0
        # Batches whose lookups are under way (at most MAX_LOOKING), and the lookups' cap.
        self._looking = 0
        self._lookups = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)
        #: Set by a UI once the first snapshot is on screen: history is read only then, so
        #: it never delays the first frame (None: read at once).
        self.history_gate: asyncio.Event | None = None
        self._history_started = False

    # -- running -------------------------------------------------------------
    @property
    def status(self) -> ConnectionStatus:
        return self.watcher.status

    async def run(self) -> None:
        """Watch and track leases until cancelled; both restarted whenever they die."""
        await self.supervisor.run_all(
            ("registry watcher", self.watcher.run), ("lease tracker", self.tracker.run)
        )

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Unregister the dashboard's own instances, then close the connection."""
        regs = list(self.own.values())
        self.own.clear()
        if regs:
            with contextlib.suppress(Exception):
                await within(
                    asyncio.gather(*(r.unregister() for r in regs), return_exceptions=True),
                    timeout,
                )
        await self.supervisor.stop()
        held, self._unresolved = self._unresolved, deque()
        for _events, task in held:
            task.cancel()
        await self.conn.close()

    def _task_failed(self, failure: TaskFailure) -> None:
        self.on_failure(failure)

    def _start_keepalive(self, reg: ServiceRegistration) -> None:
        """Heartbeats of an own instance, supervised: restarted if they die, unless the
        instance was let go on purpose (revoked, deleted, unregistered)."""
        key = reg.key.encode()

        def wanted() -> bool:
            return self.own.get(key) is reg and not reg._stopping

        self.supervisor.start(f"heartbeats of {reg.key}", reg.start_keepalive, wanted)

    # -- feeding the UI ------------------------------------------------------
    def _status(self, status: ConnectionStatus) -> None:
        if status.state is not ConnState.LIVE:
            self._lost_at = self.tracker.clock()
        self.on_status(status)

    def _batch(self, batch: ChangeBatch) -> None:
        if batch.snapshot and self.watcher.snapshots_loaded <= 1:
            self._follow_leases(batch)
            self.on_batch(batch, [])
            if not self._history_started:  # once, not once per page of the snapshot
                self._history_started = True
                self._start_history(batch.revision)
            return
        if batch.snapshot:
            self.history.restart_at(batch.revision)
        events = [self._event(change) for change in batch.changes]
        # Before the tracker lets go of them: what was known of deleted keys' leases.
        pending = {
            id(e): self._clues(e.key, e.lease, batch.snapshot)
            for e in events
            if e.kind is EventKind.DELETE and e.reason is None
        }
        self._follow_leases(batch)
        deleted_leases: set[int] = set()
        for change in batch.changes:
            if change.kind is ChangeKind.DELETE:
                self._deletes.pop(change.key, None)
                deleted_leases.add(change.instance.lease)
        by_lease = self.state.by_lease
        self._revokes = {
            lease: answer
            for lease, answer in self._revokes.items()
            if lease in by_lease or lease in deleted_leases
        }
        if not batch.snapshot:
            # A reload's differences are not events (their revisions were compacted away);
            # the history goes on from the reload's revision (restart_at above).
            self.history.append(events)
        if pending or self._unresolved:
            # A lease lookup says why these went; later entries wait for them, in order.
            self.on_batch(batch, [])
            checked = self._looking < MAX_LOOKING
            task = asyncio.create_task(
                self._judge(events, pending, checked), name="removal reasons"
            )
            self._unresolved.append((events, task))
            task.add_done_callback(self._deliver)
            return
        self.on_batch(batch, [log_entry(e) for e in events])
        if events:
            self.on_events(events)

    def _event(self, change: Change) -> HistoryEvent:
        inst = change.instance
        if change.kind is ChangeKind.DELETE:
            prev = _kv(inst)
            event = HistoryEvent.make(
                self.config.prefixes, change.revision, None, prev, key=inst.raw_key, at=time.time()
            )
            self._reason_now(event, inst.raw_key)
            return event
        before = _kv(change.previous) if change.previous is not None else None
        return HistoryEvent.make(
            self.config.prefixes, change.revision, _kv(inst), before, at=time.time()
        )

    def _reason_now(self, event: HistoryEvent, raw_key: bytes) -> None:
        """Why a key went, when that is clear without asking etcd."""
        lease = event.lease
        hex_lease = lease_text(lease)
        if not lease:
            event.reason, event.detail = Reason.DEREGISTERED, "key deleted (no lease)"
        elif lease in self._revokes and not self.state.keys_on_lease(lease):
            pass  # revoked from here: etcd's answer to the revoke says whether it took the key
        elif raw_key in self._deletes:
            pass  # deleted from here: etcd's answer to the delete says whether it took the key
        elif any(
            (held := self.state.instances.get(other)) is not None
            and held.mod_revision < event.revision
            for other in self.state.keys_on_lease(lease)
        ):
            # A lease that ends takes all its keys at once: another key put on it before
            # this delete is still there, so this one was deleted (a key put since could be
            # on a new lease granted with the same id).
            event.reason = Reason.DEREGISTERED
            event.detail = f"key deleted, lease {hex_lease} lives on"

    def _clues(self, raw_key: bytes, lease: int, snapshot: bool) -> _Pending:
        """What is known of ``lease`` as a delete of one of its keys arrives."""
        window = self.tracker.window(lease)
        # Lost: the watch reconnected since the last reading that found the lease; slow:
        # the link answered late (or silently not at all) since, while the watch stayed up.
        lost = window is not None and (self._lost_at or -math.inf) >= window.alive_at
        slow = window is not None and self.tracker.steady_since() >= window.alive_at
        behind = self.tracker.behind_on(lease)
        info = self.tracker.leases.get(lease)
        now = self.tracker.clock()
        clues = Clues(
            now,
            window,
            gap=snapshot or lost,
            slow=slow,
            # Held up: the link was last seen delivering promptly when a reading came back
            # in time; the delete may have waited in it since about then.
            held_up=max(0.0, now - self.tracker.prompt_at + PROMPT),
            behind=behind,
            granted=info.granted if info is not None and info.alive_at is not None else None,
        )
        return clues, self._revokes.get(lease), self._deletes.get(raw_key)

    async def _judge(
        self, events: list[HistoryEvent], pending: dict[int, _Pending], checked: bool
    ) -> None:
        """Give the removals in ``events`` their reasons: wait for the answers to the
        dashboard's own revokes/deletes, ask etcd whether their leases still exist (unless
        not ``checked``: too many batches are waiting already), judge."""
        removals = [e for e in events if id(e) in pending]
        if not removals:
            return
        if checked:
            self._looking += 1
        try:
            clues = await asyncio.gather(*(self._answered(e, *pending[id(e)]) for e in removals))
            ttls: dict[int, tuple[int, int] | None] = {}
            if checked:
                leases = list(dict.fromkeys(e.lease for e in removals))
                found = await asyncio.gather(*(self._lookup(lease) for lease in leases))
                ttls = dict(zip(leases, found, strict=True))
            for event, clue in zip(removals, clues, strict=True):
                if not checked:
                    clue = dataclasses.replace(clue, unchecked=True)
                ttl_after, granted_after = ttls.get(event.lease) or (None, None)
                judge(event, ttl_after, clue, granted_after)
        finally:
            if checked:
                self._looking -= 1

    async def _answered(
        self,
        event: HistoryEvent,
        clues: Clues,
        revoke: asyncio.Future[Revoked | None] | None,
        delete: _Answer | None,
    ) -> Clues:
        """``clues`` with what etcd answered the dashboard's own revoke and delete."""
        if revoke is None and delete is None:
            return clues
        revoked, deleted_at = await _answer(revoke), await _answer(delete)
        clues = dataclasses.replace(clues, deleted_at=deleted_at)
        if revoked is not None:
            read_at, on_lease = revoked.before.get(event.key, (None, False))
            clues = dataclasses.replace(
                clues, revoked_at=revoked.revision, read_before=read_at, on_lease_before=on_lease
            )
        return clues

    async def _lookup(self, lease: int) -> tuple[int, int] | None:
        """The lease's remaining and granted TTL as etcd tells them now (remaining -1:
        gone; None: no answer)."""
        async with self._lookups:
            try:
                ttl, granted, *_ = await self.conn.time_to_live(lease)
                return ttl, granted
            except RegistryError:
                return None

    def _deliver(self, _done: asyncio.Task[None]) -> None:
        """Hand on the held batches whose reasons are given, oldest first, up to the first
        still being judged (a batch is never handed on before an earlier one)."""
        while self._unresolved and self._unresolved[0][1].done():
            events, task = self._unresolved.popleft()
            if not task.cancelled() and task.exception() is not None:
                # A bug, not etcd: hand the events on all the same (their reasons unset).
                log.error("judging removals failed", exc_info=task.exception())
            self.reasons_given += 1
            try:
                self.on_batch(ChangeBatch([], self.state.revision), [log_entry(e) for e in events])
                if events:
                    self.on_events(events)
            except Exception:  # a listener's bug must not hold up the batches after it
                log.exception("a listener failed on removals handed on late")

    def waiting_removals(self) -> dict[str, int]:
        """Removals seen but not yet passed on (their reasons wait for a lease lookup), per
        service: no longer in :attr:`state`, not yet given to ``on_events``."""
        counts: dict[str, int] = {}
        for events, _ in self._unresolved:
            for event in events:
                if event.kind is EventKind.DELETE:
                    counts[event.service] = counts.get(event.service, 0) + 1
        return counts

    # -- history -------------------------------------------------------------
    def _start_history(self, end: int) -> None:
        if self.history_revisions <= 0:
            self.history.load_past([], end + 1, 0, end)
            self.on_history([])
            return

        async def read() -> None:
            if self.history_gate is not None:
                await self.history_gate.wait()
            try:
                past = await read_past_prefixes(
                    self.conn,
                    self.watcher.watched,
                    end,
                    revisions=self.history_revisions,
                    max_events=self.history.max_entries,
                    max_bytes=self.history.max_bytes,
                )
            except RegistryError as exc:
                self.history.load_past([], end + 1, 0, end)
                self.on_history([LogEntry(LogKind.INFO, "", f"history not read: {exc}")])
                return
            kept = self.history.load_past(
                past.events, past.start, past.compacted, past.floor, past.complete
            )
            self.on_history([log_entry(e, historic=True) for e in kept])
            self.supervisor.start("compaction check", follow_compaction)

        async def follow_compaction() -> None:
            while True:
                await asyncio.sleep(COMPACTION_CHECK_EVERY)
                with contextlib.suppress(RegistryError, TimeoutError):
                    compacted = await compaction_revision(self.conn, self.watcher.watched[0])
                    if self.history.note_compacted(compacted):
                        self.on_history([])

        self.supervisor.start("history reader", read)

    def _follow_leases(self, batch: ChangeBatch) -> None:
        """Tell the tracker which leases are in use: all of them after a snapshot, else
        only those the batch touched (cheap for small batches on a large registry)."""
        if batch.snapshot:
            self.tracker.retain(self.state.leases())
            return
        touched = {c.instance.lease for c in batch.changes}
        touched.update(c.previous.lease for c in batch.changes if c.previous is not None)
        touched.discard(0)
        by_lease = self.state.by_lease
        self.tracker.track(lease for lease in touched if lease in by_lease)
        self.tracker.untrack(lease for lease in touched if lease not in by_lease)

    # -- queries -------------------------------------------------------------
    def ttl(self, lease_id: int) -> tuple[float | None, int | None]:
        return self.tracker.ttl(lease_id) if lease_id else (None, None)

    def is_own(self, raw_key: bytes) -> bool:
        return raw_key in self.own

    def paused_keys(self) -> set[bytes]:
        return {key for key, reg in self.own.items() if reg.paused}

    # -- actions -------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError("writing is turned off")

    async def register(
        self,
        name: str,
        address: str,
        ttl: int = 30,
        extra: dict[str, Any] | None = None,
        layout: Layout = Layout.WALKTHROUGH,
    ) -> ServiceRegistration:
        """Register an instance of ``name`` and keep it alive; written in ``layout`` (as
        ``register --layout`` does: a framework's key and value, wherever the prefix)."""
        self._check_writable()
        reg = ServiceRegistration(
            self.conn, name, address, ttl=ttl, prefix=self.config.prefix, extra=extra,
            layout=layout,
        )  # fmt: skip
        started = self.tracker.clock()  # no later than the grant's request
        await reg.register()
        assert reg.lease_id is not None
        # The TTL etcd granted (it raises 1 s to its minimum), not the one asked for; the
        # deadline is no earlier than the grant's request plus that.
        self.tracker.note(reg.lease_id, reg.ttl, reg.ttl, sent_at=started)
        self.own[reg.key.encode()] = reg
        self._start_keepalive(reg)
        return reg

    async def revoke(self, lease_id: int) -> int:
        """Revoke a lease; returns how many keys went with it. LeaseNotFound if gone.

        Our own instances on it stop their heartbeats first: a heartbeat that saw the
        lease gone would register the instance again on a new lease. They stay
        stopped even if the revoke fails: their lease then runs out by itself. The keys
        are read just before (see :class:`Revoked`), while the heartbeats still run: a
        slow read must not let a short lease run out before its revoke.
        """
        self._check_writable()
        # A copy: the state's own set empties as the watch reports the keys gone.
        keys = set(self.state.keys_on_lease(lease_id))
        own = [
            (key, reg)
            for key, reg in self.own.items()
            if key in keys or (reg.lease_id is not None and reg.lease_id == lease_id)
        ]
        for key, _reg in own:
            del self.own[key]
            keys.add(key)
        answer: asyncio.Future[Revoked | None] = asyncio.get_running_loop().create_future()
        self._revokes[lease_id] = answer
        revoked: Revoked | None = None
        try:
            try:
                before = await self._read_before(lease_id, keys)
            finally:
                for _key, reg in own:
                    await reg.stop_keepalive()
            revoked = Revoked(await self.conn.revoke(lease_id), before)
            answer.set_result(revoked)
        except LeaseNotFound:
            self._revokes.pop(lease_id, None)
            raise
        finally:
            if not answer.done():
                answer.set_result(None)
            # A re-registration cut short by stop_keepalive may have left a new lease.
            for _key, reg in own:
                if reg.lease_id is not None and reg.lease_id != lease_id:
                    with contextlib.suppress(RegistryError):
                        await self.conn.revoke(reg.lease_id)
                reg.lease_id = None
        assert revoked is not None  # else the revoke raised
        return revoked.gone()

    async def _read_before(self, lease_id: int, keys: set[bytes]) -> dict[bytes, tuple[int, bool]]:
        """Read ``keys`` just before revoking ``lease_id``: key -> (the revision read at,
        whether the key was on the lease then); see :class:`Revoked`."""
        ordered = sorted(keys)
        chunks = [ordered[i : i + MAX_TXN_OPS] for i in range(0, len(ordered), MAX_TXN_OPS)]
        reads = await asyncio.gather(*(self.conn.leases_of(chunk) for chunk in chunks))
        return {
            key: (revision, found.get(key) == lease_id)
            for chunk, (revision, found) in zip(chunks, reads, strict=True)
            for key in chunk
        }

    async def revoke_many(self, lease_ids: set[int]) -> tuple[int, int]:
        """Revoke several leases; returns (keys gone, leases already expired)."""
        gone = expired = 0
        for lease_id in sorted(lease_ids):
            try:
                gone += await self.revoke(lease_id)
            except LeaseNotFound:
                expired += 1
        return gone, expired

    async def delete(self, raw_key: bytes) -> bool:
        self._check_writable()
        # Its DELETE entry says "deleted from the dashboard" only if etcd's answer carries
        # the revision of that delete (an own instance's key goes with its lease's revoke).
        self._deletes = {k: a for k, a in self._deletes.items() if not a.done() or k in self.state}
        answer: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._deletes[raw_key] = answer
        took: int | None = None
        try:
            reg = self.own.pop(raw_key, None)
            if reg is not None:
                lease, before = reg.lease_id, {}
                if lease is not None:  # read while the heartbeats still run, as revoke() does
                    with contextlib.suppress(RegistryError):
                        before = await self._read_before(lease, {raw_key})
                await reg.stop_keepalive()
                if reg.lease_id is not None:
                    with contextlib.suppress(RegistryError):
                        revoked = Revoked(await self.conn.revoke(reg.lease_id), before)
                        if reg.lease_id == lease and revoked.took(raw_key):
                            took = revoked.revision
            gone, revision = await self.conn.delete_one(raw_key)
            if gone:
                took = revision
            deleted = gone > 0 or reg is not None
        finally:
            if not answer.done():
                answer.set_result(took)
        return deleted

    def toggle_pause(self, raw_key: bytes) -> bool:
        """Pause or resume the heartbeats of one of our own instances; True if paused."""
        self._check_writable()
        reg = self.own.get(raw_key)
        if reg is None:
            raise RegistryError("only instances registered from this dashboard can be paused")
        if reg.paused:
            reg.resume()
        else:
            reg.pause()
        return reg.paused
