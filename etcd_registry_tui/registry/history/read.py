"""Reading the registry's past from etcd: the compaction point, events, keys as of a revision.

* The compaction point is not in ``Status``. A Range at revision 1 succeeds when etcd
  never compacted; otherwise a watch from revision 1 answers at once with
  ``compact_revision``.
* Events come from a watch from ``start_revision`` with ``prev_kv``, bounded: it stops once
  the replay has reached the revision the caller names (the header of a Range made
  before the read), and says whether that is confirmed (:attr:`HistoryRead.complete`). The dashboard
  holds what it read (:func:`read_past`, bounded); the CLI prints it as it comes
  (:func:`stream_past`, nothing held).
* "As of revision N" is a raw Range with ``revision`` (aetcd 1.0 ignores it on get).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..etcd.aio import within
from ..etcd.connection import EtcdConnection
from ..etcd.errors import RegistryError, RevisionCompacted
from ..model import KeyValue
from .store import (
    DEFAULT_REVISIONS,
    EventKind,
    HistoryEvent,
    classify_past,
    kv_of,
    removal_reason,
)

_PUT = 0
#: How long a quiet watch waits before asking etcd how far it has come.
PROGRESS_EVERY = 0.05
#: etcd replays the past to a watch in batches of at most this many revisions (one batch
#: every 100 ms; ``watchBatchMaxRevs`` in etcd's mvcc). A batch with fewer is the last of
#: the replay, and its header names the revision etcd was at when it sent it: the replay
#: has reached that revision. One of exactly this many may or may not be the last.
REPLAY_BATCH = 1_000
#: etcd before 3.4.25 (and 3.5.8) answers a progress request at once with its current
#: revision, even while it is still replaying older events (etcd issue 15220): such an
#: answer (watch id -1) confirms nothing. When nothing else can end the read (no event
#: at all in the range, or a last batch of exactly :data:`REPLAY_BATCH` revisions), it
#: ends after the stream has answered such requests, with no event, for this long and
#: :data:`SETTLE_ANSWERS` times (answers read in a burst after a pause of the reader do not
#: end it: etcd picks at random between a waiting batch and an answer); the read is then
#: *not* confirmed complete.
#: Nor does it end so while a put etcd holds in the range (the newest ``mod_revision``
#: under the prefix at ``end``) has not come: etcd is still replaying, however slowly
#: (100,000 revisions can take etcd 3.4 longer than that to send a first batch).
SETTLE = 1.0
SETTLE_ANSWERS = 10
#: A read that cannot be confirmed so (a window with no event under the prefix since the
#: last one read) is confirmed by one watch of the whole keyspace over that stretch, when
#: it holds at most this many revisions: every revision from 2 on holds an event of some
#: key, and one watch delivers in revision order, so once its replay reaches the window's
#: end no event under the prefix can be missing (it reads the other keys' events there).
QUIET_PROOF_REVISIONS = 10_000


def progress_is_ordered(version: str) -> bool:
    """Whether etcd ``version`` answers a progress request only once the watches on the
    stream have caught up (3.4.25+, 3.5.8+, 3.6+), so the answer confirms the replay."""
    try:
        major, minor, patch = (int(part) for part in version.split("-")[0].split(".")[:3])
    except ValueError:
        return False
    if (major, minor) == (3, 4):
        return patch >= 25
    if (major, minor) == (3, 5):
        return patch >= 8
    return (major, minor) > (3, 5)


async def _ordered_progress(conn: EtcdConnection) -> bool:
    try:
        return progress_is_ordered(str((await conn.status()).version))
    except RegistryError:
        return False


async def _newest_put(conn: EtcdConnection, prefix: str, start: int, end: int) -> int:
    """The revision of a put under ``prefix`` from ``start`` to ``end`` that etcd still
    shows (the newest key's ``mod_revision`` at ``end``), or 0 when none is known."""
    try:
        newest = await conn.newest_mod_revision(prefix.encode(), end)
    except RegistryError:
        return 0
    return newest if start <= newest <= end else 0


async def _quiet_until(conn: EtcdConnection, prefix: str, start: int, end: int) -> bool:
    """Whether etcd proves there is no event under ``prefix`` from ``start`` to ``end``: a
    watch of every key from ``start`` delivers an event at or after ``end`` (every
    revision from 2 on holds one) before any under ``prefix``. False when it cannot (too
    many revisions, compacted meanwhile, the whole keyspace not readable, too slow)."""
    if start > end or end <= 1:
        return True  # nothing to prove: revision 1 holds no event
    if end - start + 1 > QUIET_PROOF_REVISIONS:
        return False
    raw = prefix.encode()

    async def watch() -> bool:
        reached = False  # an event at ``end``: the rest of its revision may follow
        async for response in conn.watch(b"", start, fragment=True):
            for event in response.events:
                revision = int(event.kv.mod_revision)
                if revision > end:
                    return True  # in order: all of the window came before it
                if bytes(event.kv.key).startswith(raw):
                    return False  # an event under the prefix the read did not have
                reached = revision == end
            if reached and not response.fragment:
                return True  # a revision's events come in one response (or its fragments)
        return False  # pragma: no cover - the watch never ends by itself

    try:
        return await within(watch(), 10.0)
    except (RegistryError, TimeoutError):
        return False


async def compaction_revision(conn: EtcdConnection, prefix: str, timeout: float = 5.0) -> int:
    """etcd's compaction revision (0: never compacted)."""
    try:
        await conn.get_prefix(prefix.encode(), page_size=1, keys_only=True, revision=1)
        return 0
    except RevisionCompacted as exc:
        return exc.compact_revision
    except RegistryError as exc:
        if "compacted" not in str(exc):
            raise

    async def ask() -> int:
        async for _ in conn.watch(prefix.encode(), 1):
            pass
        return 0  # pragma: no cover - the watch never ends by itself

    try:
        return await within(ask(), timeout)
    except RevisionCompacted as exc:
        return exc.compact_revision


async def get_at(conn: EtcdConnection, prefix: str, revision: int) -> list[KeyValue]:
    """The keys under ``prefix`` as they were at ``revision``. Raises
    :class:`RevisionCompacted` (naming the compaction revision) when etcd no longer has it."""
    try:
        kvs, _ = await conn.get_prefix(prefix.encode(), revision=revision)
    except RegistryError as exc:
        if "compacted" not in str(exc) or isinstance(exc, RevisionCompacted):
            raise
        raise RevisionCompacted(await compaction_revision(conn, prefix)) from None
    return [kv_of(kv) for kv in kvs]


async def value_at(conn: EtcdConnection, prefix: str, key: bytes, revision: int) -> KeyValue:
    """The value a history event did not keep (:class:`.history.HeldValue`): ``key`` as
    its version of ``mod_revision`` ``revision`` was. Raises :class:`RevisionCompacted`
    when etcd no longer has it, :class:`RegistryError` when etcd has nothing there."""
    try:
        raw = await conn.get_revision(key, revision)
    except RegistryError as exc:
        if "compacted" not in str(exc) or isinstance(exc, RevisionCompacted):
            raise
        raise RevisionCompacted(await compaction_revision(conn, prefix)) from None
    if raw is None or int(raw.mod_revision) != revision:
        raise RegistryError(f"etcd holds no value of this key at revision {revision}")
    return kv_of(raw)


@dataclass(slots=True)
class HistoryRead:
    """What a read of the past found (:func:`read_events`, :func:`read_past`,
    :func:`stream_past`): the events from ``start`` to ``end``, oldest first."""

    #: The events kept (none when they went to a ``sink`` / ``on_events`` instead).
    events: list[HistoryEvent] = field(default_factory=list)
    start: int = 0
    end: int = 0
    #: etcd's compaction revision (0: never compacted), as far as the read learnt it.
    compacted: int = 0
    #: etcd confirmed that the replay reached ``end`` and every event from ``start`` on
    #: was delivered (False: it stopped early, or the read could not tell).
    complete: bool = False
    #: The registry can be rebuilt from what was read at any revision from ``floor`` on:
    #: ``start - 1``, or later when older events were left out (``max_events``).
    floor: int = 0
    #: How many events were left out to keep ``max_events`` / ``max_bytes`` (0: none).
    dropped: int = 0
    #: The newest revision of an event left out so (0: none was).
    dropped_to: int = 0
    #: Every event from ``start`` to this revision was delivered (the replay comes in
    #: revision order, each revision whole): ``end`` when ``complete``, ``start - 1`` when
    #: nothing is known.
    through: int = 0
    #: The read was cut short before ``end`` by its ``timeout`` or ``idle`` (not merely
    #: unconfirmed), or (with ``idle``) by an error of the connection: the events after
    #: ``through`` were not read.
    stopped: bool = False
    #: Why it stopped: ``"timed out"``, or the error's one-line message.
    why: str = ""


#: Receives the events of a read as they arrive (a response's worth, oldest first) and
#: ``through``: every event up to that revision has been delivered. The read waits for it
#: (no more of the watch is read meanwhile, and that time is not idle time).
Sink = Callable[[list[HistoryEvent], int], Awaitable[None]]


async def read_events(
    conn: EtcdConnection,
    prefix: str,
    start: int,
    end: int,
    max_events: int | None = DEFAULT_REVISIONS,
    timeout: float | None = 60.0,
    max_bytes: int | None = None,
    idle: float | None = None,
    sink: Sink | None = None,
) -> HistoryRead:
    """Every change under ``prefix`` from revision ``start`` to ``end``, oldest first (the
    newest ``max_events`` of them, ``None``: all, weighing at most ``max_bytes``; values
    longer than :data:`.history.LARGE_VALUE` kept as size and digest). ``end`` must be a revision
    etcd had reached before the call (a Range's header). Raises :class:`RevisionCompacted`
    when ``start`` is gone. With ``sink`` nothing is kept: each response's events go to it
    as they arrive (memory does not grow with the events; see :data:`Sink`).

    The read ends when etcd confirms the replay reached ``end``: an event at or after it,
    a replay batch shorter than :data:`REPLAY_BATCH` whose header is at or after it, or a
    progress notification at or after it that etcd sends only to a watch that caught up
    (its own, or on etcd with :func:`progress_is_ordered`). Pauses do not end it. What
    cannot be confirmed (see :data:`SETTLE`), or is cut short by ``timeout`` (in all) or
    ``idle`` (seconds with no event delivered: the read goes on while the replay makes
    progress), comes back with ``complete`` False; :attr:`HistoryRead.through` says how far
    it did read. With ``idle``, an error of the connection stops the read the same way
    (:attr:`HistoryRead.why` names it) instead of losing what was read."""
    read = HistoryRead(start=start, end=end, floor=start - 1, through=start - 1)
    events: deque[HistoryEvent] = deque()
    bound = max(1, max_events) if max_events is not None else None
    if start > end:
        read.complete = True
        read.through = max(read.through, end)
        return read
    ordered = await _ordered_progress(conn)
    present = 0 if ordered else await _newest_put(conn, prefix, start, end)
    loop = asyncio.get_running_loop()

    weight = 0
    whole = True  # the last response with events ended its batch (not a fragment)
    newest = 0  # the revision of the newest event read

    def make(event: Any, revision: int) -> HistoryEvent:
        prev = kv_of(event.prev_kv) if event.HasField("prev_kv") else None
        if event.type == _PUT:
            made = HistoryEvent.make(prefix, revision, kv_of(event.kv), prev)
        else:
            made = HistoryEvent.make(prefix, revision, None, prev, key=bytes(event.kv.key))
        return made.slim()

    def keep(made: HistoryEvent) -> None:
        nonlocal weight
        while events and (
            (bound is not None and len(events) >= bound)
            or (max_bytes is not None and weight > max_bytes)
        ):
            gone = events.popleft()
            weight -= gone.weight
            read.dropped_to = gone.revision
            read.dropped += 1
        events.append(made)
        weight += made.weight

    began = loop.time()
    limit: asyncio.Timeout | None = None

    def deadline() -> float | None:
        """When the read is cut short: ``timeout`` after it began, ``idle`` after now."""
        times = [began + timeout] if timeout is not None else []
        if idle is not None:
            times.append(loop.time() + idle)
        return min(times) if times else None

    async def deliver(got: list[HistoryEvent], through: int) -> None:
        nonlocal newest
        if not got:
            return
        newest = got[-1].revision
        if sink is None:
            for made in got:
                keep(made)
            return
        if limit is not None:
            limit.reschedule(None)  # the sink's time (a slow stdout) is not etcd's
        await sink(got, through)
        if limit is not None:
            limit.reschedule(deadline())

    async def collect() -> bool:
        nonlocal whole
        batch_revisions = 0  # distinct revisions in the batch so far (fragments add up)
        last = 0
        quiet_since: float | None = None  # first unconfirming answer since the last event
        answers = 0
        async for response in conn.watch(
            prefix.encode(), start, progress_every=PROGRESS_EVERY, prev_kv=True, fragment=True
        ):
            if response.created:
                continue
            header = int(response.header.revision)
            if not response.events:
                if header < end:
                    continue
                if response.watch_id >= 0 or ordered:
                    return True
                if last < present:
                    continue  # a put etcd holds in the range has not come: not quiet
                now = loop.time()
                answers += 1
                if quiet_since is None:
                    quiet_since, answers = now, 1
                elif now - quiet_since >= SETTLE and answers >= SETTLE_ANSWERS:
                    return False
                continue
            quiet_since = None
            if limit is not None and idle is not None:
                limit.reschedule(deadline())  # progress: the idle time starts again
            reached = False  # an event at ``end``: the rest of its revision may follow
            beyond = False  # an event after ``end``: all up to it came before
            got: list[HistoryEvent] = []
            for event in response.events:
                revision = int(event.kv.mod_revision)
                if revision > end:
                    beyond = True
                    break
                if revision != last:
                    batch_revisions += 1
                    last = revision
                got.append(make(event, revision))
                reached = revision >= end
            if beyond:
                await deliver(got, end)
                return True
            whole = not response.fragment
            if not response.fragment:
                read.through = max(read.through, min(last, end))  # each revision comes whole
            await deliver(got, read.through)
            if response.fragment:
                continue  # more of the same batch (maybe of revision ``end``) follows
            if reached:
                return True  # a revision's events come in one response (or its fragments)
            if batch_revisions < REPLAY_BATCH and header >= end:
                return True
            batch_revisions = 0
        return False  # pragma: no cover - the watch never ends by itself

    async def bounded() -> bool:
        nonlocal limit
        async with asyncio.timeout(deadline()) as limit:
            return await collect()

    settled = False
    try:
        read.complete = await bounded()
        settled = not read.complete
    except TimeoutError:
        read.complete = False
        read.stopped, read.why = True, "timed out"
    except RevisionCompacted:
        raise
    except RegistryError as exc:
        if idle is None:
            raise
        read.complete = False
        read.stopped, read.why = True, str(exc)
    if settled and whole:
        # Unconfirmed, not timed out: every event since the last one read can still be
        # proven absent (a revision's events come whole, so from the one after it).
        since = max(start, newest + 1) if newest else start
        read.complete = await _quiet_until(conn, prefix, since, end)
    if read.complete:
        read.through = end
    read.stopped = read.stopped and read.through < end
    read.events = list(events)
    read.floor = max(start - 1, read.dropped_to)
    return read


async def past_start(
    conn: EtcdConnection,
    prefix: str,
    end: int,
    revisions: int = DEFAULT_REVISIONS,
    since: int | None = None,
) -> tuple[int, int]:
    """Where a read of up to ``revisions`` revisions before ``end`` (or from ``since``)
    starts, not below the compaction point; and etcd's compaction revision."""
    compacted = await compaction_revision(conn, prefix)
    start = since if since is not None else end - max(0, revisions) + 1
    # Not from the compaction revision itself: etcd lets a watch start there, but a delete
    # at exactly that revision is compacted away with it (no tombstone is kept).
    return max(start, compacted + 1 if compacted else 1, 1), compacted


async def read_past(
    conn: EtcdConnection,
    prefix: str,
    end: int,
    revisions: int = DEFAULT_REVISIONS,
    max_events: int | None = DEFAULT_REVISIONS,
    since: int | None = None,
    max_bytes: int | None = None,
    idle: float | None = None,
) -> HistoryRead:
    """Up to ``revisions`` revisions before ``end`` (or from ``since``), not below the
    compaction point, with every removal classified (see :func:`classify_past`); the newest
    ``max_events`` of them (``None``: every one), held in memory (the dashboard's read; the
    CLI's is :func:`stream_past`).

    With ``idle`` there is no total timeout: the read goes on while etcd delivers events,
    stops after ``idle`` seconds without one (:attr:`HistoryRead.stopped`), and an
    unconfirmed read that made progress is taken up again from where it ended."""
    start, compacted = await past_start(conn, prefix, end, revisions, since)
    read = HistoryRead(start=start, end=end, through=start - 1)
    for _attempt in range(3):
        try:
            read = await _read_on(conn, prefix, start, end, max_events, max_bytes, idle)
            break
        except RevisionCompacted as exc:  # compacted meanwhile: start again from there
            compacted = exc.compact_revision
            start = max(start, compacted + 1)
            read = HistoryRead(start=start, end=end, through=start - 1)
    events = read.events
    live: set[int] | None = None
    if any(e.lease for e in events):
        with contextlib.suppress(RegistryError):
            live = set(await conn.leases())
    classify_past(events, live)
    read.start, read.end, read.compacted = start, end, compacted
    read.floor = max(start - 1, read.dropped_to)
    return read


async def _read_on(
    conn: EtcdConnection,
    prefix: str,
    start: int,
    end: int,
    max_events: int | None,
    max_bytes: int | None,
    idle: float | None,
) -> HistoryRead:
    """:func:`read_events` from ``start`` to ``end``; with ``idle``, without a total
    timeout and again from where an unconfirmed read that made progress ended (the
    :data:`SETTLE` rule can end a replay etcd was slow to send), until it is confirmed,
    stops, or makes none."""
    if idle is None:
        return await read_events(conn, prefix, start, end, max_events, max_bytes=max_bytes)
    read = HistoryRead(start=start, end=end, through=start - 1)
    while True:
        part = await read_events(
            conn, prefix, read.through + 1, end, max_events, None, max_bytes, idle
        )
        read.events.extend(part.events)
        read.dropped_to = max(read.dropped_to, part.dropped_to)
        read.dropped += part.dropped
        progressed = part.through > read.through
        read.through = max(read.through, part.through)
        read.complete, read.stopped, read.why = part.complete, part.stopped, part.why
        if part.complete or part.stopped or not progressed:
            break
    if max_events is not None and len(read.events) > max(1, max_events):
        extra = len(read.events) - max(1, max_events)
        read.dropped_to = max(read.dropped_to, read.events[extra - 1].revision)
        read.dropped += extra
        del read.events[:extra]
    return read


class _Removals:
    """:func:`classify_past`'s rules for a read that is not held (:func:`stream_past`),
    one revision at a time, before its events are printed.

    One rule looks ahead: a key whose lease is gone now was deregistered if another key,
    put on its lease before it went (seen in this read), left the lease later in the read
    (a lease that ends takes all its keys in one revision; a key put on a lease granted
    again with the same id came after). The first such delete makes one more watch read
    the rest of the read's range (:meth:`_scan`), noting only the newest delete of each
    lease that is not live: at most one more replay, and mappings of leases and keys, not
    events."""

    def __init__(self, conn: EtcdConnection, prefix: str, end: int, idle: float | None):
        self.conn, self.prefix, self.end, self.idle = conn, prefix, end, idle
        self.live: set[int] | None = None
        self.asked = False
        #: lease -> the newest revision of a delete of one of its keys, up to ``known_to``.
        self.later: dict[int, int] = {}
        self.known_to = 0
        self.scanned = False
        #: lease -> the keys put on it in this read, still on it as far as read.
        self.on_lease: dict[int, set[bytes]] = {}

    async def classify(self, revision: list[HistoryEvent]) -> None:
        """Give each removal of ``revision`` (every event of one revision) its reason."""
        try:
            await self._judge(revision)
        finally:
            for e in revision:
                if e.prev is not None and e.prev.lease:
                    self.on_lease.get(e.prev.lease, set()).discard(e.key)
                if e.kv is not None and e.kv.lease:
                    self.on_lease.setdefault(e.kv.lease, set()).add(e.key)

    async def _judge(self, revision: list[HistoryEvent]) -> None:
        deletes = [e for e in revision if e.kind is EventKind.DELETE and e.reason is None]
        if not deletes:
            return
        if not self.asked and any(e.lease for e in deletes):
            self.asked = True
            with contextlib.suppress(RegistryError):
                self.live = set(await self.conn.leases())
        together: dict[int, int] = {}
        for e in deletes:
            if e.lease:
                together[e.lease] = together.get(e.lease, 0) + 1
        for e in deletes:
            lease = e.lease
            across = False
            gone_with = {d.key for d in deletes if d.lease == lease}
            others = self.on_lease.get(lease, set()) - gone_with if lease else set()
            if others and not (self.live is not None and lease in self.live):
                across = await self._gone_later(lease, e.revision)
            e.reason, e.detail = removal_reason(lease, self.live, across, together.get(lease, 0))

    async def _gone_later(self, lease: int, revision: int) -> bool:
        if self.later.get(lease, 0) <= revision and not self.scanned:
            await self._scan(max(self.known_to, revision) + 1)
        return self.later.get(lease, 0) > revision

    async def _scan(self, first: int) -> None:
        """Note every delete of a lease not live from ``first`` to the read's end."""
        self.scanned = True
        live = self.live or set()

        async def note(events: list[HistoryEvent], _through: int) -> None:
            for e in events:
                lease = e.lease
                if e.kind is EventKind.DELETE and lease and lease not in live:
                    self.later[lease] = max(self.later.get(lease, 0), e.revision)

        try:
            part = await read_events(
                self.conn, self.prefix, first, self.end, None, None, None, self.idle, note
            )
        except RegistryError:  # compacted meanwhile, or gone: what it noted is what is known
            return
        self.known_to = part.through if part.stopped else self.end


async def stream_past(
    conn: EtcdConnection,
    prefix: str,
    start: int,
    end: int,
    on_events: Callable[[list[HistoryEvent]], Awaitable[None]],
    on_compacted: Callable[[int, int], Awaitable[None]] | None = None,
    idle: float | None = None,
) -> HistoryRead:
    """Every change under ``prefix`` from ``start`` (see :func:`past_start`) to ``end``,
    oldest first, each revision's events handed to ``on_events`` once whole and classified
    (the rules of :func:`classify_past`, with the same answers), as the replay delivers
    them; nothing is held but the revision being read (the CLI's ``history``).

    The read waits while ``on_events`` does (so a slow stdout slows the watch, and is not
    idle time). Like :func:`read_past` with ``idle``: no total timeout, an unconfirmed read
    that made progress is taken up again where it ended, one that stopped says where
    (:attr:`HistoryRead.through`). Events etcd compacted away during the read (the replay
    fell behind a compaction) go to ``on_compacted(first, last)`` where they would have
    been, and the read goes on after them; the read is then not ``complete``."""
    removals = _Removals(conn, prefix, end, idle)
    read = HistoryRead(start=start, end=end, floor=start - 1, through=start - 1)
    pending: list[HistoryEvent] = []  # the newest revision's events, until it is whole
    delivered = start - 1  # the newest revision handed to ``on_events``
    lost = False

    async def flush() -> None:
        nonlocal delivered
        if pending:
            revision = pending[:]
            pending.clear()
            await removals.classify(revision)
            delivered = revision[-1].revision
            await on_events(revision)

    async def sink(events: list[HistoryEvent], through: int) -> None:
        read.through = max(read.through, through)
        for event in events:
            if pending and event.revision != pending[-1].revision:
                await flush()
                # Events come in revision order: one of a later revision makes the one
                # before whole, even within a fragmented batch that may yet be cut.
                read.through = max(read.through, delivered)
            pending.append(event)
        if pending and pending[-1].revision <= read.through:
            await flush()  # that revision is whole

    while True:
        first = before = read.through + 1
        try:
            part = await read_events(conn, prefix, first, end, None, None, None, idle, sink)
        except RevisionCompacted as exc:
            await flush()
            read.compacted = exc.compact_revision
            gone_from = max(read.through, delivered) + 1
            if exc.compact_revision < gone_from:
                raise  # no progress to be had: etcd has nothing after what was read
            lost = True
            last = min(exc.compact_revision, end)
            if on_compacted is not None:
                await on_compacted(gone_from, last)
            read.through = last
            continue
        read.through = max(read.through, part.through)
        progressed = read.through >= before
        read.complete, read.stopped, read.why = part.complete, part.stopped, part.why
        # A revision begun in fragments and not whole: taken up again (or left unprinted,
        # in the gap the caller reports from ``through``), never handed over in part.
        pending[:] = [e for e in pending if e.revision <= read.through]
        if part.complete or part.stopped or not progressed:
            break
    if read.complete:
        read.through = end
    await flush()
    read.complete = read.complete and not lost
    return read
