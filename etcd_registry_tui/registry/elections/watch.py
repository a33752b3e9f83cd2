"""Follow every election and lock live: a revision-exact snapshot, then one watch.

Discovery needs keys and leases only: the snapshot is read ``keys_only``, and values
are fetched just for the candidate keys found (at the same revision). One watch covers
the smallest key range holding every ``--elections-prefix`` (the whole keyspace when
none is given); events outside the prefixes are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from aetcd import rpc

from ..etcd.connection import EtcdConnection, key_range
from ..etcd.errors import RegistryError, RevisionCompacted
from .state import ElectionState, LeaderChange, name_bytes

log = logging.getLogger(__name__)

_PUT = 0
MAX_SCAN_KEYS = 200_000


class KeyspaceTooLarge(RegistryError):
    hint = "narrow the search with --elections-prefix P (repeatable)"


def covering_range(prefixes: Sequence[str]) -> tuple[bytes, bytes]:
    """One (key, range_end) that holds every prefix (the whole keyspace for none)."""
    if not prefixes:
        return key_range(b"")
    ranges = [key_range(p.encode()) for p in prefixes]
    start = min(r[0] for r in ranges)
    ends = [r[1] for r in ranges]
    end = b"\0" if b"\0" in ends else max(ends)
    return start, end


def merge_changes(first: list[LeaderChange], then: list[LeaderChange]) -> list[LeaderChange]:
    """One change per election for two steps: from the first step's old to the last new."""
    merged = {c.name: c for c in first}
    for change in then:
        earlier = merged.get(change.name)
        if earlier is None:
            merged[change.name] = change
        elif (earlier.old.key if earlier.old else None) == (change.new.key if change.new else None):
            del merged[change.name]  # back where it was
        else:
            merged[change.name] = LeaderChange(
                change.name, earlier.old, change.new, change.revision, change.snapshot
            )
    return list(merged.values())


class ElectionWatcher:
    """Keeps an :class:`ElectionState` equal to etcd and reports leadership changes."""

    def __init__(
        self,
        conn: EtcdConnection,
        prefixes: Sequence[str] = (),
        on_change: Callable[[list[LeaderChange]], None] = lambda _: None,
        on_error: Callable[[str | None], None] = lambda _: None,
        max_keys: int = MAX_SCAN_KEYS,
        backoff_max: float = 10.0,
        instances_prefix: str | None = None,
    ) -> None:
        self.conn = conn
        self.prefixes = tuple(prefixes)
        #: Keys under the registry's prefix (``--prefix``) are instances, not candidates.
        if instances_prefix is None:
            instances_prefix = conn.config.prefix
        self.state = ElectionState(self.prefixes, instances_prefix or None)
        self.on_change = on_change
        self.on_error = on_error
        self.max_keys = max_keys
        self.backoff_max = backoff_max
        self.snapshots_loaded = 0
        self.live = asyncio.Event()
        self.error: str | None = None

    def _set_error(self, error: str | None) -> None:
        self.error = error
        self.on_error(error)

    async def _range(self, request: Any) -> Any:
        return await self.conn.range(request)

    async def load_snapshot(self) -> None:
        start, end = covering_range(self.prefixes)
        counted = await self._range(rpc.RangeRequest(key=start, range_end=end, count_only=True))
        if counted.count > self.max_keys:
            raise KeyspaceTooLarge(
                f"{counted.count:,} keys to scan for elections (more than {self.max_keys:,})"
            )
        revision = int(counted.header.revision)
        kvs: list[Any] = []
        names: set[str] = set()
        page_start = start
        while True:  # keys only, in pages, at one revision
            response = await self._range(
                rpc.RangeRequest(
                    key=page_start,
                    range_end=end,
                    revision=revision,
                    keys_only=True,
                    limit=20_000,
                )
            )
            for kv in response.kvs:
                if parsed := self.state.candidate_name(kv.key, kv.lease):
                    names.add(parsed.name)
            if not response.more or not response.kvs:
                break
            page_start = response.kvs[-1].key + b"\0"
            await asyncio.sleep(0)
        outer: list[str] = []  # every key under NAME/, once: nested names are read with theirs
        for name in sorted(names):
            if not outer or not name.startswith(outer[-1] + "/"):
                outer.append(name)
        for name in outer:
            kvs.extend(await self._read_queue(name, revision))
        changes = self.state.load(kvs, revision)
        self.snapshots_loaded += 1
        self.on_change(changes)

    async def _read_queue(self, name: str, revision: int) -> list[Any]:
        """Every key under ``NAME/`` at ``revision`` (clientv3's queue is all of them)."""
        prefix, prefix_end = key_range(name_bytes(name) + b"/")
        response = await self._range(
            rpc.RangeRequest(key=prefix, range_end=prefix_end, revision=revision)
        )
        return list(response.kvs)

    async def _adopt(self) -> list[LeaderChange]:
        """Read the queues of the elections the watch found (their older keys)."""
        changes: list[LeaderChange] = []
        while self.state.unloaded:
            name = min(self.state.unloaded)
            kvs = await self._read_queue(name, self.state.revision)
            changes.extend(self.state.adopt(name, kvs))
        return changes

    async def run(self) -> None:
        need_snapshot = True
        attempt = 0
        while True:
            try:
                if need_snapshot or self.state.unloaded:
                    # (Cut off while reading a new election's queue: read everything again.)
                    await self.load_snapshot()
                    need_snapshot = False
                first_key, _ = covering_range(self.prefixes)
                watch_prefix = b"" if first_key == b"\0" else first_key
                if len(self.prefixes) > 1:
                    watch_prefix = b""  # one stream over everything; filtered below
                # From the revision held, not the next: a delete at exactly a compaction
                # revision is compacted away, so resuming there must be reported as
                # compacted (see RegistryWatcher.run); events already held are skipped.
                from_revision = max(1, self.state.revision)
                async for response in self.conn.watch(watch_prefix, from_revision):
                    if response.created:
                        self.live.set()
                        if self.error:
                            self._set_error(None)
                        continue
                    attempt = 0
                    held = self.state.revision
                    events = [
                        (e.type == _PUT, e.kv) for e in response.events if e.kv.mod_revision > held
                    ]
                    if not events:
                        continue
                    # Held up to the last event applied, not the header's revision: a
                    # catch-up after a reconnect comes in several responses, each headed
                    # with etcd's current revision (resuming there would skip the rest).
                    applied = max(int(kv.mod_revision) for _, kv in events)
                    changes = self.state.apply(events, applied)
                    if self.state.unloaded:
                        touched = self.state.touched
                        changes = merge_changes(changes, await self._adopt())
                        self.state.touched |= touched
                    if changes or self.state.touched:
                        self.on_change(changes)
            except KeyspaceTooLarge as exc:
                self.live.clear()
                self._set_error(exc.user_message())
                return
            except RevisionCompacted:
                need_snapshot = True
            except RegistryError as exc:
                self.live.clear()
                attempt += 1
                self._set_error(exc.user_message())
                delay = min(self.backoff_max, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                await asyncio.sleep(delay)
