"""The past of several prefixes (``--prefix`` given more than once), as one read.

Each prefix is read on its own (:func:`~.read.read_past`, the same revision window and
``end``) and the reads are merged in revision order. The merged read claims only what
every read can vouch for: it starts where the latest of them starts, is complete only
when each is, and reaches only as far as the least of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..etcd.connection import EtcdConnection
from .read import HistoryRead, read_past
from .store import DEFAULT_REVISIONS


async def read_past_prefixes(
    conn: EtcdConnection,
    prefixes: Sequence[str],
    end: int,
    revisions: int = DEFAULT_REVISIONS,
    max_events: int | None = DEFAULT_REVISIONS,
    max_bytes: int | None = None,
) -> HistoryRead:
    """:func:`read_past` of each of ``prefixes`` (which must not lie under each other),
    merged; one prefix is simply its read."""
    reads: list[HistoryRead] = []
    left = max_bytes  # one budget for them all: what one read holds, the next may not
    for prefix in prefixes:
        read = await read_past(
            conn, prefix, end, revisions=revisions, max_events=max_events, max_bytes=left
        )
        reads.append(read)
        if left is not None:
            left = max(1, left - sum(e.weight for e in read.events))
    return merge_reads(reads, max_events)


def merge_reads(reads: Sequence[HistoryRead], max_events: int | None = None) -> HistoryRead:
    """One read from the reads of disjoint prefixes over the same ``end``: their events
    in revision order (each revision's events together, as each read keeps them), from the
    latest start on, the newest ``max_events`` of them."""
    if len(reads) == 1:
        return reads[0]
    start = max(r.start for r in reads)
    merged = HistoryRead(
        start=start,
        end=max(r.end for r in reads),
        compacted=max(r.compacted for r in reads),
        complete=all(r.complete for r in reads),
        floor=max(r.floor for r in reads),
        dropped=sum(r.dropped for r in reads),
        dropped_to=max(r.dropped_to for r in reads),
        through=min(r.through for r in reads),
        stopped=any(r.stopped for r in reads),
        why="; ".join(r.why for r in reads if r.why),
    )
    events = sorted(
        (e for r in reads for e in r.events if e.revision >= start), key=lambda e: e.revision
    )
    if max_events is not None and len(events) > max_events:
        cut = len(events) - max_events
        # Never half a revision: drop the rest of the revision the cut falls in, too.
        while cut < len(events) and events[cut].revision == events[cut - 1].revision:
            cut += 1
        merged.dropped += cut
        merged.dropped_to = max(merged.dropped_to, events[cut - 1].revision)
        merged.floor = max(merged.floor, merged.dropped_to)
        events = events[cut:]
    merged.events = events
    return merged
