"""The registry's past: events with revisions, why each instance left, bounded in memory.

etcd keeps every revision until compaction; :mod:`.read` reads them back and the
live session appends what it sees. Each removal carries a :class:`Reason`:

* ``DEREGISTERED``: the key was deleted and its lease lived on (or it had none);
* ``REVOKED`` / ``EXPIRED``: the lease ended and certainly took the key, seen live (the
  rules are in :mod:`.reasons`; etcd does both in the same way: every key of the lease
  deleted in one revision, no wall-clock time recorded);
* ``LEASE ENDED``: not certain: before launch, where expiry and revoke cannot be told
  apart, and live when what ended the lease, or whether the key went with it, is unproved.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ..model import KeyValue, decode_key, parse_value, split_key
from ..wording import lease_text

#: How many events the dashboard keeps by default.
DEFAULT_MAX_ENTRIES = 10_000
#: How many revisions are read back at start by default.
DEFAULT_REVISIONS = 10_000
#: A value longer than this is not kept in the history: only its size and digest are
#: (:class:`HeldValue`); it is read from etcd again when shown, while etcd still has it.
LARGE_VALUE = 8 * 1024
#: The most the held events may weigh (keys, values kept and the objects around them);
#: the oldest go first past it, as past :data:`DEFAULT_MAX_ENTRIES`.
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: What one event costs besides its key and values (the objects; measured roughly).
EVENT_OVERHEAD = 600


class Reason(StrEnum):
    DEREGISTERED = "DEREGISTERED"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    LEASE_ENDED = "LEASE ENDED"


class EventKind(StrEnum):
    PUT = "PUT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


def kv_of(raw: Any) -> KeyValue:
    """A gRPC ``KeyValue`` (or anything alike) as a plain :class:`KeyValue`."""
    return KeyValue(
        key=bytes(raw.key),
        value=bytes(raw.value),
        create_revision=int(raw.create_revision),
        mod_revision=int(raw.mod_revision),
        version=int(raw.version),
        lease=int(raw.lease),
    )


@dataclass(frozen=True, slots=True)
class HeldValue:
    """A value the history did not keep: its length and the start of its SHA-256."""

    size: int
    digest: str

    @classmethod
    def of(cls, value: bytes) -> HeldValue:
        return cls(len(value), hashlib.sha256(value).hexdigest()[:16])

    def describe(self) -> str:
        return f"{_size_text(self.size)}, sha256 {self.digest}…"


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    return f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} bytes"


@dataclass(slots=True, eq=False)
class HistoryEvent:
    """One change of one key. ``kv`` is the key after it (``None`` for a DELETE),
    ``prev`` before it (``None`` for a first PUT, or when etcd no longer had it)."""

    revision: int
    kind: EventKind
    key: bytes
    service: str
    instance_id: str
    kv: KeyValue | None
    prev: KeyValue | None
    reason: Reason | None = None
    detail: str = ""
    #: Wall-clock time, for events seen live (etcd records none).
    at: float | None = None
    #: Set when the value after (``kv``) or before (``prev``) the change was too large to
    #: keep: ``kv.value`` / ``prev.value`` is then empty (see :meth:`slim`).
    kv_held: HeldValue | None = None
    prev_held: HeldValue | None = None
    #: Seen live: the key's lease ended once its countdown had run out, as far as the
    #: dashboard can tell, or with its countdown never read (``EXPIRED``, or ``LEASE
    #: ENDED`` where an expiry is possible but not certain). Not set where the lease may
    #: have been revoked with time left (certainly, or across an outage or a slow link).
    ran_out: bool = False

    @classmethod
    def make(
        cls,
        prefix: str | tuple[str, ...],
        revision: int,
        kv: KeyValue | None,
        prev: KeyValue | None,
        key: bytes | None = None,
        at: float | None = None,
    ) -> HistoryEvent:
        raw_key = kv.key if kv is not None else (key if key is not None else prev.key)  # type: ignore[union-attr]
        if kv is None:
            kind = EventKind.DELETE
        elif kv.version == 1 or prev is None:
            kind = EventKind.PUT
        else:
            kind = EventKind.UPDATE
        text, _ = decode_key(raw_key)
        service, instance_id, _ = split_key(text, prefix)
        return cls(revision, kind, raw_key, service, instance_id, kv, prev, at=at)

    def slim(self, limit: int = LARGE_VALUE) -> HistoryEvent:
        """Keep values longer than ``limit`` only as size and digest; returns ``self``."""
        if self.kv is not None and len(self.kv.value) > limit:
            self.kv_held = HeldValue.of(self.kv.value)
            self.kv = replace(self.kv, value=b"")
        if self.prev is not None and len(self.prev.value) > limit:
            self.prev_held = HeldValue.of(self.prev.value)
            self.prev = replace(self.prev, value=b"")
        return self

    @property
    def weight(self) -> int:
        """Roughly what the event costs in memory, in bytes."""
        size = EVENT_OVERHEAD + len(self.key)
        for held in (self.kv, self.prev):
            if held is not None:
                size += len(held.key) + len(held.value)
        return size

    @property
    def lease(self) -> int:
        """The lease the key had (after a put, or when it was deleted)."""
        held = self.kv if self.kv is not None else self.prev
        return held.lease if held is not None else 0

    @property
    def key_text(self) -> str:
        return decode_key(self.key)[0]

    def address(self) -> str | None:
        """The address in the value put (or held when deleted), if any."""
        held = self.kv if self.kv is not None else self.prev
        if held is None:
            return None
        fields, _ = parse_value(held.value)
        if fields is None:
            return None
        for alias in ("Address", "address", "url", "Url", "URL"):
            value = fields.get(alias)
            if isinstance(value, str):
                return value
        return None

    @property
    def label(self) -> str:
        """What the event log and ``history`` show: the kind, or the removal's reason."""
        if self.kind is EventKind.DELETE and self.reason is not None:
            return self.reason.value
        return self.kind.value

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "kind": self.kind.value,
            "key": self.key_text,
            "key_b64": base64.b64encode(self.key).decode("ascii"),  # the exact bytes
            "service": self.service,
            "id": self.instance_id,
            "reason": self.reason.value if self.reason is not None else None,
        }


def classify_past(events: Iterable[HistoryEvent], live_leases: set[int] | None) -> None:
    """Give every removal in ``events`` (read back from etcd) a reason.

    ``live_leases``: the leases that exist now (``None`` when unknown). A key with no lease,
    or that went alone while another key put on its lease before it stayed on after it
    (a lease that ends takes all its keys in one revision), was deleted: DEREGISTERED. A
    key whose lease exists now was deleted too, unless the lease ended and was granted
    again with the same id (clients may choose the id): the detail says so. Otherwise its
    lease ended (expiry or revoke, which etcd's history cannot tell apart): LEASE ENDED.
    Without ``live_leases``, several keys of one lease gone in one revision are taken as
    the lease ending.
    """
    events = list(events)
    deletes = [e for e in events if e.kind is EventKind.DELETE and e.reason is None]
    together: dict[tuple[int, int], int] = {}
    for e in deletes:
        if e.lease:
            together[(e.revision, e.lease)] = together.get((e.revision, e.lease), 0) + 1
    # For each lease, when each key was put on it and when it left it (its delete, or
    # never: still there at the end of what was read).
    last: dict[bytes, HistoryEvent] = {}
    for e in events:
        last[e.key] = e
    spans: dict[int, list[tuple[int, int]]] = {}
    for e in events:
        if e.kind is EventKind.DELETE and e.lease and e.prev is not None:
            spans.setdefault(e.lease, []).append((e.prev.mod_revision, e.revision))
    for e in last.values():
        if e.kv is not None and e.kv.lease:
            spans.setdefault(e.kv.lease, []).append((e.kv.mod_revision, _FOREVER))
    held = {lease: _Spans(found) for lease, found in spans.items()}
    for e in deletes:
        lease = e.lease
        across = bool(lease) and lease in held and held[lease].across(e.revision)
        e.reason, e.detail = removal_reason(
            lease, live_leases, across, together.get((e.revision, lease), 0)
        )


def removal_reason(
    lease: int, live_leases: set[int] | None, across: bool, together: int
) -> tuple[Reason, str]:
    """:func:`classify_past`'s rules for one removal read back: the key's ``lease`` (0:
    none), the leases that exist now, whether another key put on its lease before it
    stayed on it after (``across``: the lease certainly lived on), and how many keys of
    its lease went in its revision (itself included)."""
    hex_lease = lease_text(lease)
    if not lease:
        return Reason.DEREGISTERED, "key deleted (no lease)"
    if across:
        return Reason.DEREGISTERED, f"key deleted, lease {hex_lease} lived on"
    if live_leases is not None and lease in live_leases:
        return Reason.DEREGISTERED, (
            f"key deleted, lease {hex_lease} lived on"
            " (unless it ended and was granted again with the same id: it exists now)"
        )
    if live_leases is None and together < 2:
        return Reason.DEREGISTERED, "key deleted"
    keys = f", {together} keys with it" if together > 1 else ""
    return Reason.LEASE_ENDED, f"lease {hex_lease} ended (expired or revoked){keys}"


_FOREVER = 1 << 62


class _Spans:
    """When keys were on one lease: (put at, gone at) revisions."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        spans.sort(key=lambda span: span[1])
        self._gone = [gone for _, gone in spans]
        # _first_put[i]: the earliest put of the keys gone at _gone[i] or later.
        self._first_put = [put for put, _ in spans]
        for i in range(len(spans) - 2, -1, -1):
            self._first_put[i] = min(self._first_put[i], self._first_put[i + 1])

    def across(self, revision: int) -> bool:
        """A key was put on the lease before ``revision`` and left it after: the lease
        did not end at ``revision``."""
        i = bisect.bisect_right(self._gone, revision)
        return i < len(self._gone) and self._first_put[i] < revision


class History:
    """The events the dashboard knows, oldest first, at most ``max_entries`` of them.

    ``floor``: the registry can be rebuilt as it was at any revision from ``floor`` to the
    newest held (every event after ``floor`` is held). ``compacted``: etcd's compaction
    revision when the history was read (0: never compacted); ``start``: the first revision
    read back.
    """

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_entries = max(1, max_entries)
        self.max_bytes = max(1, max_bytes)
        self.events: deque[HistoryEvent] = deque()
        #: What the held events weigh (:attr:`HistoryEvent.weight`).
        self.bytes = 0
        self.floor = 0
        self.start = 0
        self.compacted = 0
        self.loaded = False
        #: etcd confirmed the history read back holds every event from ``start`` on
        #: (False until read, or when the read could not be confirmed).
        self.complete = False

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[HistoryEvent]:
        return iter(self.events)

    def _drop_oldest(self) -> None:
        held = self.events
        while held and (len(held) > self.max_entries or self.bytes > self.max_bytes):
            gone = held.popleft()
            self.bytes -= gone.weight
            self.floor = max(self.floor, gone.revision)

    def append(self, events: Iterable[HistoryEvent]) -> None:
        """Hold ``events``, large values slimmed; the oldest go past ``max_entries`` events
        or ``max_bytes``. They are usually newer than any held; one older than the newest
        held (another prefix's watch was behind: several ``--prefix``) goes in its place
        by revision, so the history stays in etcd's order."""
        held = self.events
        for event in events:
            event.slim()
            if held and event.revision < held[-1].revision:
                at = len(held) - 1
                while at > 0 and held[at - 1].revision > event.revision:
                    at -= 1
                held.insert(at, event)
            else:
                held.append(event)
            self.bytes += event.weight
        self._drop_oldest()

    def load_past(
        self,
        events: list[HistoryEvent],
        start: int,
        compacted: int,
        floor: int,
        complete: bool = True,
    ) -> list[HistoryEvent]:
        """Put ``events`` (read back, oldest first, all older than any held) before what is
        held; returns those kept (the newest ``max_entries`` of all). ``complete``: etcd
        confirmed nothing from ``start`` on is missing."""
        for event in events:
            event.slim()
        held = len(self.events)
        self.events = deque(events + list(self.events))
        self.bytes = sum(e.weight for e in self.events)
        self.floor = max(self.floor, floor)
        self._drop_oldest()
        self.start, self.compacted, self.loaded = start, compacted, True
        self.complete = complete
        kept = len(self.events) - held
        return events[len(events) - kept :] if kept > 0 else []

    def restart_at(self, revision: int) -> None:
        """A snapshot was reloaded (the watch fell behind a compaction): nothing before
        ``revision`` can be rebuilt exactly any more."""
        self.floor = max(self.floor, revision)

    def of_key(self, raw_key: bytes) -> list[HistoryEvent]:
        return [e for e in self.events if e.key == raw_key]

    def of_service(self, service: str) -> list[HistoryEvent]:
        return [e for e in self.events if e.service == service]

    def note_compacted(self, revision: int) -> bool:
        """etcd was compacted at ``revision`` (found later); True if that is news."""
        if revision <= self.compacted:
            return False
        self.compacted = revision
        return True

    @property
    def reach(self) -> int:
        """The oldest revision the registry can be rebuilt at from what is held."""
        return max(self.start, self.floor, 1)

    def describe_reach(self) -> str:
        """For the status line: how far back the history held reaches, and etcd's own
        compaction revision when etcd keeps less than that."""
        if not self.loaded:
            return ""
        reach = self.reach
        if self.compacted and reach in (self.compacted, self.compacted + 1):
            # The read stopped at the compaction point (it starts just after it: etcd
            # keeps the compaction revision's PUTs but not its deletes).
            text = f"compacted at rev {self.compacted:,}"
        else:
            text = f"history from rev {reach:,}"
            if self.compacted > reach:
                text += f", etcd compacted at rev {self.compacted:,}"
        return text if self.complete else f"{text} (incomplete)"
