"""Reading the registry's past from etcd: the compaction point, events, keys as of a revision.

* The compaction point is not in ``Status``. A Range at revision 1 succeeds when etcd
  never compacted; otherwise a watch from revision 1 answers at once with
  ``compact_revision``.
* Events come from a watch from ``start_revision`` with ``prev_kv``, bounded: it stops at
  the revision the caller names (found by two progress notifications in a row with no
  event between, as in :mod:`.watcher`, or an event at or after it).
* "As of revision N" is a raw Range with ``revision`` (aetcd 1.0 ignores it on get).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from .aio import within
from .connection import EtcdConnection
from .errors import RegistryError, RevisionCompacted
from .history import DEFAULT_REVISIONS, HistoryEvent, classify_past, kv_of
from .model import KeyValue

_PUT = 0
#: How long a quiet watch waits before asking etcd how far it has come.
PROGRESS_EVERY = 0.05
#: etcd before 3.4.25 answers a progress request at once with its current revision, even
#: while it is still replaying older events to the watch (in steps of 1,000 revisions,
#: every 100 ms; etcd issue 15220). Such an answer (watch id -1) ends the read only after
#: the stream has been quiet this long; an answer for the watch itself ends it at once.
SETTLE = 0.4


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


async def read_events(
    conn: EtcdConnection,
    prefix: str,
    start: int,
    end: int,
    max_events: int = DEFAULT_REVISIONS,
    timeout: float = 60.0,
) -> list[HistoryEvent]:
    """Every change under ``prefix`` from revision ``start`` to ``end``, oldest first (the
    newest ``max_events`` of them). Raises :class:`RevisionCompacted` when ``start`` is."""
    events: deque[HistoryEvent] = deque(maxlen=max(1, max_events))
    if start > end:
        return []

    loop = asyncio.get_running_loop()

    async def collect() -> None:
        heard = loop.time()
        async for response in conn.watch(
            prefix.encode(), start, progress_every=PROGRESS_EVERY, prev_kv=True, fragment=True
        ):
            if response.created:
                heard = loop.time()
                continue
            if not response.events:
                if int(response.header.revision) >= end and (
                    response.watch_id >= 0 or loop.time() - heard >= SETTLE
                ):
                    return
                continue
            heard = loop.time()
            done = False
            for event in response.events:
                revision = int(event.kv.mod_revision)
                if revision > end:
                    done = True
                    break
                prev = kv_of(event.prev_kv) if event.HasField("prev_kv") else None
                if event.type == _PUT:
                    events.append(HistoryEvent.make(prefix, revision, kv_of(event.kv), prev))
                else:
                    events.append(
                        HistoryEvent.make(prefix, revision, None, prev, key=bytes(event.kv.key))
                    )
                if revision >= end:
                    done = True
            if done:
                return

    await within(collect(), timeout)
    return list(events)


@dataclass(slots=True)
class PastRead:
    """What :func:`read_past` found: events from ``start`` to ``end`` (oldest first)."""

    events: list[HistoryEvent] = field(default_factory=list)
    start: int = 0
    end: int = 0
    compacted: int = 0


async def read_past(
    conn: EtcdConnection,
    prefix: str,
    end: int,
    revisions: int = DEFAULT_REVISIONS,
    max_events: int = DEFAULT_REVISIONS,
    since: int | None = None,
) -> PastRead:
    """Up to ``revisions`` revisions before ``end`` (or from ``since``), not below the
    compaction point, with every removal classified (see :func:`classify_past`)."""
    compacted = await compaction_revision(conn, prefix)
    start = since if since is not None else end - max(0, revisions) + 1
    start = max(start, compacted, 1)
    for _attempt in range(3):
        try:
            events = await read_events(conn, prefix, start, end, max_events)
            break
        except RevisionCompacted as exc:  # compacted meanwhile: start again from there
            compacted = exc.compact_revision
            start = max(start, compacted)
    else:
        events = []
    live: set[int] | None = None
    if any(e.lease for e in events):
        with contextlib.suppress(RegistryError):
            live = set(await conn.leases())
    classify_past(events, live)
    return PastRead(events, start, end, compacted)
