"""The live watcher: snapshot at revision R, then watch from R+1, forever.

It keeps a :class:`RegistryState` equal to what etcd holds under the prefix and
reports every change as a :class:`ChangeBatch`, plus its :class:`ConnectionStatus`.
After a broken connection it resumes from :attr:`RegistryWatcher.resume_revision`:
the last applied revision, or later when etcd's progress notifications vouch that
nothing under the prefix changed since. Only when that revision was compacted
meanwhile does it reload the snapshot and report the difference as ordinary changes.

Several prefixes (``--prefix`` given more than once) are one watch each, a *lane*: the
snapshot reads every prefix at one revision R, each lane watches from R, and each keeps
its own applied and vouched revisions, so each prefix has these same semantics. A key
lives under exactly one watched prefix (prefixes under another are watched by that
one), so each key's changes still arrive in etcd's order; changes under different
prefixes may arrive in a different order than etcd made them. A lane that fails stops
them all; they resume together, each from its own revision.

Progress: while the stream is quiet the connection asks etcd for a progress
notification every ``progress_interval`` seconds (etcd itself sends one only every
10 minutes by default). etcd 3.4 before 3.4.25 may send the answer to such a request
ahead of events it has not delivered yet (etcd issue 15220), so a notified revision
is trusted only once a later notification arrives with no event in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .budget import default_budget_mb, estimate_mb, too_large_message
from .etcd.aio import within
from .etcd.backoff import Backoff
from .etcd.config import watched_prefixes
from .etcd.connection import EtcdConnection
from .etcd.errors import RegistryError, RevisionCompacted
from .events import ChangeBatch, ConnectionStatus, ConnState
from .model import Change, Instance, RegistryState, split_key
from .sanitize import safe_line

log = logging.getLogger(__name__)

BatchCallback = Callable[[ChangeBatch], None]
StatusCallback = Callable[[ConnectionStatus], None]

_PUT = 0  # mvccpb.Event.PUT; DELETE is 1
PARSE_SLICE = 5000
#: A prefix over the memory budget is counted again this often (it may have shrunk).
TOO_LARGE_RETRY = 30.0
#: Responses of several lanes waiting for the loop (a lane waits while it is full).
LANE_QUEUE = 64


class PrefixTooLarge(RegistryError):
    """The prefix holds more than the memory budget allows (nothing was loaded)."""


def _ignore(_: Any) -> None:
    return None


@dataclass(slots=True)
class Lane:
    """One watched prefix: how far its changes are known to be in the state."""

    prefix: bytes
    #: The snapshot's revision, then the newest revision of an event this lane delivered.
    applied: int = 0
    #: Vouched for by progress notifications (see the module docstring).
    progress: int = 0
    candidate: int = 0

    @property
    def resume(self) -> int:
        """Everything under this prefix up to here is in the state."""
        return max(self.applied, self.progress)

    def loaded(self, revision: int) -> None:
        """A snapshot at ``revision`` holds this prefix."""
        self.applied = revision
        self.progress = self.candidate = 0

    def notified(self, revision: int) -> None:
        """A progress notification: trusted once the next one comes with no event between."""
        candidate, self.candidate = self.candidate, revision
        if candidate > self.progress:
            self.progress = candidate


def _tag(exc: RegistryError, lane: Lane) -> RegistryError:
    """Say which prefix ``exc`` came from (read by :meth:`RegistryWatcher.run`)."""
    exc.lane = lane.prefix  # type: ignore[attr-defined]
    return exc


async def _tagged(pages: AsyncIterator[Any], lane: Lane) -> AsyncIterator[Any]:
    """``pages`` with a failure tagged with the lane's prefix (:func:`_tag`)."""
    try:
        async for page in pages:
            yield page
    except RegistryError as exc:
        _tag(exc, lane)
        raise


class RegistryWatcher:
    """One long-lived watch of each prefix feeding a :class:`RegistryState`.

    ``run()`` loops until cancelled; it never raises for etcd trouble, it reports it.
    Callbacks are plain functions called on the event loop; keep them quick.
    """

    def __init__(
        self,
        conn: EtcdConnection,
        on_batch: BatchCallback = _ignore,
        on_status: StatusCallback = _ignore,
        state: RegistryState | None = None,
        prefix: str | None = None,
        prefixes: Sequence[str] | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        progress_interval: float | None = 10.0,
        memory_budget_mb: float | None = None,
    ) -> None:
        self.conn = conn
        given = tuple(prefixes) if prefixes else (prefix,) if prefix else conn.config.prefixes
        #: Every prefix given (keys split on the longest that fits), the first one primary.
        self.prefixes = given
        self.prefix = given[0]
        self.state = state if state is not None else RegistryState(given)
        self.lanes = [Lane(p.encode()) for p in watched_prefixes(given)]
        self.on_batch = on_batch
        self.on_status = on_status
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.progress_interval = progress_interval
        budget = memory_budget_mb or getattr(conn.config, "memory_budget_mb", None)
        self.memory_budget_mb = budget or default_budget_mb()
        self.status = ConnectionStatus(ConnState.CONNECTING, conn.endpoint)
        self.snapshots_loaded = 0
        self.reconnects = 0
        self.progress_notifications = 0
        self._live = asyncio.Event()

    @property
    def watched(self) -> tuple[str, ...]:
        """The prefixes watched, one watch each (those under another are left out)."""
        return tuple(lane.prefix.decode("utf-8", "surrogateescape") for lane in self.lanes)

    @property
    def resume_revision(self) -> int:
        """Everything under every prefix up to this revision is in the state.

        The least of the lanes' :attr:`Lane.resume`: the last change or snapshot each
        applied, or later when progress notifications showed that nothing under its
        prefix changed since.
        """
        return min(lane.resume for lane in self.lanes)

    # -- reporting -----------------------------------------------------------
    def _report(self, state: ConnState, **kwargs: Any) -> None:
        self.status = ConnectionStatus(
            state, self.conn.endpoint, revision=self.state.revision, **kwargs
        )
        if state is ConnState.LIVE:
            self._live.set()
        else:
            self._live.clear()
        self.on_status(self.status)

    async def wait_live(self, timeout: float | None = None) -> None:
        """Wait until the watch is established and the state is current."""
        await within(self._live.wait(), timeout)

    # -- the loop ------------------------------------------------------------
    async def run(self) -> None:
        need_snapshot = True
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        try:
            while True:
                try:
                    if need_snapshot:
                        self._report(
                            ConnState.LOADING if backoff.attempt == 0 else ConnState.RECONNECTING
                        )
                        await self._load_snapshot()
                        need_snapshot = False
                    # From the last revision we hold, not the one after: etcd lets a watch
                    # start *at* its compaction revision, but a delete at exactly that
                    # revision is compacted away with it (a tombstone is not kept), so
                    # resuming at R+1 after a compaction at R+1 would miss that delete.
                    # Starting at R, such a compaction is reported and the snapshot is
                    # reloaded; the events at R itself, already applied, are skipped.
                    created: set[int] = set()
                    delivered: set[int] = set()
                    async for index, response in self._responses():
                        lane = self.lanes[index]
                        if response.created:
                            # Not yet proof of health: a stream can be created and then fail.
                            created.add(index)
                            if len(created) == len(self.lanes):
                                self._report(ConnState.LIVE)
                            continue
                        if len(delivered) < len(self.lanes):
                            delivered.add(index)
                            if len(delivered) == len(self.lanes):
                                # Every stream delivered (events or a progress answer): they
                                # work. Not one alone: a healthy prefix's events must not
                                # reset the backoff of another one's failing watch.
                                backoff.succeeded()
                        if response.events:
                            self._apply(lane, response)
                        else:
                            self._progress(lane, int(response.header.revision))
                except PrefixTooLarge as exc:
                    self._report(ConnState.TOO_LARGE, error=str(exc))
                    await asyncio.sleep(TOO_LARGE_RETRY)
                except RevisionCompacted as exc:
                    log.info("watch revision compacted (%s); reloading snapshot", exc)
                    need_snapshot = True
                    self._report(
                        ConnState.RECONNECTING,
                        error=f"history compacted past revision {self.resume_revision};"
                        " reloading the snapshot",
                    )
                except RegistryError as exc:
                    delay = backoff.failed()
                    self.reconnects += 1
                    for lane in self.lanes:
                        lane.candidate = 0  # only ever confirmed on the same stream
                    said = exc.user_message() if backoff.attempt == 1 else str(exc)
                    lane_prefix = getattr(exc, "lane", None)
                    if isinstance(lane_prefix, bytes) and len(self.lanes) > 1:
                        shown = safe_line(lane_prefix.decode("utf-8", "backslashreplace"), 80)
                        said = f"under {shown}: {said}"
                    self._report(
                        ConnState.RECONNECTING,
                        error=said,
                        retry_in=delay,
                        attempt=backoff.attempt,
                    )
                    await asyncio.sleep(delay)
                    if backoff.attempt > 1:
                        await self.conn.reconnect()
        finally:
            self._report(ConnState.STOPPED)

    def _watch(self, lane: Lane) -> AsyncIterator[Any]:
        start = max(1, lane.resume)
        return self.conn.watch(lane.prefix, start, progress_every=self.progress_interval)

    async def _responses(self) -> AsyncIterator[tuple[int, Any]]:
        """Every lane's watch responses as they come, each with its lane's index. The
        first lane to fail ends them all (its error is raised here)."""
        if len(self.lanes) == 1:
            async for response in self._watch(self.lanes[0]):
                yield 0, response
            return
        queue: asyncio.Queue[tuple[int, Any, BaseException | None]] = asyncio.Queue(
            maxsize=LANE_QUEUE
        )

        async def pump(index: int) -> None:
            try:
                async for response in self._watch(self.lanes[index]):
                    await queue.put((index, response, None))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the loop, which decides
                if isinstance(exc, RegistryError):
                    _tag(exc, self.lanes[index])
                await queue.put((index, None, exc))
                return
            await queue.put((index, None, RegistryError("a watch ended by itself")))

        pumps = [
            asyncio.create_task(pump(i), name=f"watch of {safe_line(repr(lane.prefix), 80)}")
            for i, lane in enumerate(self.lanes)
        ]
        try:
            while True:
                index, response, error = await queue.get()
                if error is not None:
                    raise error
                yield index, response
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(BaseException):
                    await task

    def _progress(self, lane: Lane, revision: int) -> None:
        """A progress notification: no event under the lane's prefix up to ``revision``.

        Trusted once the next notification arrives with no event in between (see the
        module docstring); a revision that is already applied needs no trust.
        """
        self.progress_notifications += 1
        lane.notified(revision)

    async def _load_snapshot(self) -> None:
        if not self.state.instances and not self.snapshots_loaded:
            try:
                await self._load_pages()
                return
            except RegistryError as exc:
                if "compacted" not in str(exc) or not self.state.instances:
                    raise
                # Compacted between pages: read it all again, keeping what was shown.
        await self._load_whole()

    async def _load_pages(self) -> None:
        """The first snapshot, page by page: each page is applied and reported (a
        ``loading`` batch) as soon as it is parsed, so the first screen shows while the
        rest arrives. All pages of every prefix are read at one revision (the first
        page's) and the watches start after it, as with :meth:`_load_whole`: no change is
        lost or reported twice."""
        state = self.state
        loaded = before = 0  # keys read; keys of the prefixes read before this one
        at = 0
        needed = 0.0  # MB the prefixes read so far will need, all of them
        for number, lane in enumerate(self.lanes):
            last = number == len(self.lanes) - 1
            first = True
            pages = self.conn.iter_prefix(lane.prefix, revision=at)
            async for kvs, revision, total, more in _tagged(pages, lane):
                at = revision
                if first:  # each prefix's first page: the whole snapshot counts
                    first = False
                    needed += estimate_mb(kvs, total)
                    self._check_budget(lane, kvs, total, needed)
                changes: list[Change] = []
                for start in range(0, len(kvs), PARSE_SLICE):
                    parsed = state.parse(kvs[start : start + PARSE_SLICE])
                    changes.extend(state.add(parsed.values(), revision))
                    if start + PARSE_SLICE < len(kvs):
                        await asyncio.sleep(0)
                loaded += len(kvs)
                state.revision = revision
                if not more and last:
                    for each in self.lanes:
                        each.loaded(revision)
                    self.snapshots_loaded += 1
                else:
                    whole = max(before + total, loaded)
                    self._report(ConnState.LOADING, loaded=loaded, total=whole)
                self.on_batch(ChangeBatch(changes, revision, snapshot=True, loading=True))
                await asyncio.sleep(0)
            before = loaded

    def _check_budget(self, lane: Lane, sample: list[Any], total: int, needed: float) -> None:
        """Refuse a snapshot whose prefixes together need more than the budget (named:
        the prefix whose keys went over it)."""
        if needed <= self.memory_budget_mb:
            return
        prefix = lane.prefix.decode("utf-8", "backslashreplace")
        narrower = prefix
        if sample:
            service, _, error = split_key(sample[0].key.decode("utf-8", "backslashreplace"), prefix)
            if service and error is None:
                narrower = safe_line(f"{prefix}{service}/", 200)
        raise PrefixTooLarge(
            too_large_message(prefix, total, needed, self.memory_budget_mb, narrower)
        )

    async def _load_whole(self) -> None:
        kvs: list[Any] = []
        revision = 0
        for lane in self.lanes:
            try:
                more, revision = await self.conn.get_prefix(lane.prefix, revision=revision)
            except RegistryError as exc:
                _tag(exc, lane)
                raise
            kvs.extend(more)
        # Parse in slices, letting the event loop breathe between them: a UI on the
        # same loop stays responsive while 100,000 instances load.
        parsed: dict[bytes, Instance] = {}
        for start in range(0, len(kvs), PARSE_SLICE):
            parsed.update(self.state.parse(kvs[start : start + PARSE_SLICE]))
            await asyncio.sleep(0)
        changes = self.state.load(kvs, revision, parsed)
        for lane in self.lanes:
            lane.loaded(revision)
        self.snapshots_loaded += 1
        self.on_batch(ChangeBatch(changes, revision, snapshot=True))

    def _apply(self, lane: Lane, response: Any) -> None:
        state = self.state
        lane.candidate = 0  # events after a notification: it may have run ahead
        changes: list[Change] = []
        # This lane's own revision: another lane may have gone further.
        applied = lane.applied
        newest = applied
        for event in response.events:
            kv = event.kv
            if kv.mod_revision <= applied:
                continue  # the revision the watch resumed at: already in the state
            newest = max(newest, kv.mod_revision)
            change = (
                state.apply_put(kv)
                if event.type == _PUT
                else state.apply_delete(kv.key, kv.mod_revision)
            )
            if change is not None:
                changes.append(change)
        lane.applied = newest
        if changes:
            self.on_batch(ChangeBatch(changes, state.revision))
