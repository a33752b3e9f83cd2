"""Reading the registry's past from etcd: the compaction point, events, keys as of a revision.

* The compaction point is not in ``Status``. A Range at revision 1 succeeds when etcd
  never compacted; otherwise a watch from revision 1 answers at once with
  ``compact_revision``.
* Events come from a watch from ``start_revision`` with ``prev_kv``, bounded: it stops once
  the replay has reached the revision the caller names (the header of a Range made
  before the read), and says whether that is confirmed (:attr:`EventsRead.complete`).
* "As of revision N" is a raw Range with ``revision`` (aetcd 1.0 ignores it on get).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..etcd.aio import within
from ..etcd.connection import EtcdConnection
from ..etcd.errors import RegistryError, RevisionCompacted
from ..model import KeyValue
from .store import DEFAULT_REVISIONS, HistoryEvent, classify_past, kv_of

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
class EventsRead:
    """What :func:`read_events` found. ``complete``: etcd confirmed that the replay reached
    ``end`` (False: it stopped early, or the read could not tell)."""

    events: list[HistoryEvent] = field(default_factory=list)
    complete: bool = False
    #: The newest revision of an event left out to keep ``max_events`` (0: none was).
    dropped: int = 0
    #: How many events were left out to keep ``max_events`` / ``max_bytes``.
    dropped_count: int = 0
    #: Every event from the read's start to this revision was delivered (the replay comes
    #: in revision order, each revision whole): ``end`` when ``complete``, the start - 1
    #: when nothing is known.
    through: int = 0
    #: The read was cut short by its ``timeout`` or ``idle`` (not merely unconfirmed), or
    #: (with ``idle``) by an error of the connection.
    stopped: bool = False
    #: Why it stopped: ``"timed out"``, or the error's one-line message.
    why: str = ""


async def read_events(
    conn: EtcdConnection,
    prefix: str,
    start: int,
    end: int,
    max_events: int | None = DEFAULT_REVISIONS,
    timeout: float | None = 60.0,
    max_bytes: int | None = None,
    idle: float | None = None,
) -> EventsRead:
    """Every change under ``prefix`` from revision ``start`` to ``end``, oldest first (the
    newest ``max_events`` of them, ``None``: all, weighing at most ``max_bytes``; values
    longer than :data:`.history.LARGE_VALUE` kept as size and digest). ``end`` must be a revision
    etcd had reached before the call (a Range's header). Raises :class:`RevisionCompacted`
    when ``start`` is gone.

    The read ends when etcd confirms the replay reached ``end``: an event at or after it,
    a replay batch shorter than :data:`REPLAY_BATCH` whose header is at or after it, or a
    progress notification at or after it that etcd sends only to a watch that caught up
    (its own, or on etcd with :func:`progress_is_ordered`). Pauses do not end it. What
    cannot be confirmed (see :data:`SETTLE`), or is cut short by ``timeout`` (in all) or
    ``idle`` (seconds with no event delivered: the read goes on while the replay makes
    progress), comes back with ``complete`` False; :attr:`EventsRead.through` says how far
    it did read. With ``idle``, an error of the connection stops the read the same way
    (:attr:`EventsRead.why` names it) instead of losing what was read."""
    read = EventsRead(through=start - 1)
    events: deque[HistoryEvent] = deque()
    bound = max(1, max_events) if max_events is not None else None
    if start > end:
        read.complete = True
        read.through = max(read.through, end)
        return read
    ordered = await _ordered_progress(conn)
    loop = asyncio.get_running_loop()

    weight = 0
    whole = True  # the last response with events ended its batch (not a fragment)

    def keep(event: Any, revision: int) -> None:
        nonlocal weight
        prev = kv_of(event.prev_kv) if event.HasField("prev_kv") else None
        if event.type == _PUT:
            made = HistoryEvent.make(prefix, revision, kv_of(event.kv), prev)
        else:
            made = HistoryEvent.make(prefix, revision, None, prev, key=bytes(event.kv.key))
        made.slim()
        while events and (
            (bound is not None and len(events) >= bound)
            or (max_bytes is not None and weight > max_bytes)
        ):
            gone = events.popleft()
            weight -= gone.weight
            read.dropped = gone.revision
            read.dropped_count += 1
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
            for event in response.events:
                revision = int(event.kv.mod_revision)
                if revision > end:
                    return True
                if revision != last:
                    batch_revisions += 1
                    last = revision
                keep(event, revision)
                reached = revision >= end
            whole = not response.fragment
            if response.fragment:
                continue  # more of the same batch (maybe of revision ``end``) follows
            read.through = max(read.through, min(last, end))  # each revision comes whole
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
        since = max(start, events[-1].revision + 1) if events else start
        read.complete = await _quiet_until(conn, prefix, since, end)
    if read.complete:
        read.through = end
    read.events = list(events)
    return read


@dataclass(slots=True)
class PastRead:
    """What :func:`read_past` found: events from ``start`` to ``end`` (oldest first)."""

    events: list[HistoryEvent] = field(default_factory=list)
    start: int = 0
    end: int = 0
    compacted: int = 0
    #: etcd confirmed every event from ``start`` to ``end`` is here (see :func:`read_events`).
    complete: bool = False
    #: The registry can be rebuilt from what was read at any revision from ``floor`` on:
    #: ``start - 1``, or later when older events were left out (``max_events``).
    floor: int = 0
    #: How many events were left out to keep ``max_events`` / ``max_bytes`` (0: none).
    dropped: int = 0
    #: Every event from ``start`` to this revision was read (``end`` when ``complete``).
    through: int = 0
    #: The read stopped (no progress for its ``idle`` seconds, or its timeout) before
    #: ``end``: the events after ``through`` were not read.
    stopped: bool = False
    #: Why it stopped (see :attr:`EventsRead.why`).
    why: str = ""


async def read_past(
    conn: EtcdConnection,
    prefix: str,
    end: int,
    revisions: int = DEFAULT_REVISIONS,
    max_events: int | None = DEFAULT_REVISIONS,
    since: int | None = None,
    max_bytes: int | None = None,
    idle: float | None = None,
) -> PastRead:
    """Up to ``revisions`` revisions before ``end`` (or from ``since``), not below the
    compaction point, with every removal classified (see :func:`classify_past`); the newest
    ``max_events`` of them (``None``: every one).

    With ``idle`` (the CLI's reads) there is no total timeout: the read goes on while etcd
    delivers events, stops after ``idle`` seconds without one (:attr:`PastRead.stopped`),
    and an unconfirmed read that made progress is taken up again from where it ended."""
    compacted = await compaction_revision(conn, prefix)
    start = since if since is not None else end - max(0, revisions) + 1
    # Not from the compaction revision itself: etcd lets a watch start there, but a delete
    # at exactly that revision is compacted away with it (no tombstone is kept).
    start = max(start, compacted + 1 if compacted else 1, 1)
    read = EventsRead(through=start - 1)
    for _attempt in range(3):
        try:
            read = await _read_on(conn, prefix, start, end, max_events, max_bytes, idle)
            break
        except RevisionCompacted as exc:  # compacted meanwhile: start again from there
            compacted = exc.compact_revision
            start = max(start, compacted + 1)
            read = EventsRead(through=start - 1)
    events = read.events
    live: set[int] | None = None
    if any(e.lease for e in events):
        with contextlib.suppress(RegistryError):
            live = set(await conn.leases())
    classify_past(events, live)
    floor = max(start - 1, read.dropped)
    return PastRead(
        events,
        start,
        end,
        compacted,
        read.complete,
        floor,
        read.dropped_count,
        read.through,
        read.stopped and read.through < end,
        read.why,
    )


async def _read_on(
    conn: EtcdConnection,
    prefix: str,
    start: int,
    end: int,
    max_events: int | None,
    max_bytes: int | None,
    idle: float | None,
) -> EventsRead:
    """:func:`read_events` from ``start`` to ``end``; with ``idle``, without a total
    timeout and again from where an unconfirmed read that made progress ended (the
    :data:`SETTLE` rule can end a replay etcd was slow to send), until it is confirmed,
    stops, or makes none."""
    if idle is None:
        return await read_events(conn, prefix, start, end, max_events, max_bytes=max_bytes)
    read = EventsRead(through=start - 1)
    while True:
        part = await read_events(
            conn, prefix, read.through + 1, end, max_events, None, max_bytes, idle
        )
        read.events.extend(part.events)
        read.dropped = max(read.dropped, part.dropped)
        read.dropped_count += part.dropped_count
        progressed = part.through > read.through
        read.through = max(read.through, part.through)
        read.complete, read.stopped, read.why = part.complete, part.stopped, part.why
        if part.complete or part.stopped or not progressed:
            break
    if max_events is not None and len(read.events) > max(1, max_events):
        extra = len(read.events) - max(1, max_events)
        read.dropped = max(read.dropped, read.events[extra - 1].revision)
        read.dropped_count += extra
        del read.events[:extra]
    return read
