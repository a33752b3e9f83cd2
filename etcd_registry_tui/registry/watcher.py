"""The live watcher: snapshot at revision R, then watch from R+1, forever.

It keeps a :class:`RegistryState` equal to what etcd holds under the prefix and
reports every change as a :class:`ChangeBatch`, plus its :class:`ConnectionStatus`.
After a broken connection it resumes from :attr:`RegistryWatcher.resume_revision`:
the last applied revision, or later when etcd's progress notifications vouch that
nothing under the prefix changed since. Only when that revision was compacted
meanwhile does it reload the snapshot and report the difference as ordinary changes.

Progress: while the stream is quiet the connection asks etcd for a progress
notification every ``progress_interval`` seconds (etcd itself sends one only every
10 minutes by default). etcd 3.4 before 3.4.25 may send the answer to such a request
ahead of events it has not delivered yet (etcd issue 15220), so a notified revision
is trusted only once a later notification arrives with no event in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .budget import default_budget_mb, estimate_mb, too_large_message
from .etcd.aio import within
from .etcd.backoff import Backoff
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


class PrefixTooLarge(RegistryError):
    """The prefix holds more than the memory budget allows (nothing was loaded)."""


def _ignore(_: Any) -> None:
    return None


class RegistryWatcher:
    """One long-lived watch of the prefix feeding a :class:`RegistryState`.

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
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        progress_interval: float | None = 10.0,
        memory_budget_mb: float | None = None,
    ) -> None:
        self.conn = conn
        self.prefix = prefix or conn.config.prefix
        self.state = state if state is not None else RegistryState(self.prefix)
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
        # Revisions vouched for by progress notifications (see the module docstring).
        self._progress_revision = 0
        self._progress_candidate = 0

    @property
    def resume_revision(self) -> int:
        """Everything under the prefix up to this revision is in the state.

        At least ``state.revision`` (the last applied change or snapshot); later when
        progress notifications showed that nothing under the prefix changed since.
        """
        return max(self.state.revision, self._progress_revision)

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
        prefix = self.prefix.encode()
        need_snapshot = True
        backoff = Backoff(self.backoff_initial, self.backoff_max)
        try:
            while True:
                try:
                    if need_snapshot:
                        self._report(
                            ConnState.LOADING if backoff.attempt == 0 else ConnState.RECONNECTING
                        )
                        await self._load_snapshot(prefix)
                        need_snapshot = False
                    # From the last revision we hold, not the one after: etcd lets a watch
                    # start *at* its compaction revision, but a delete at exactly that
                    # revision is compacted away with it (a tombstone is not kept), so
                    # resuming at R+1 after a compaction at R+1 would miss that delete.
                    # Starting at R, such a compaction is reported and the snapshot is
                    # reloaded; the events at R itself, already applied, are skipped.
                    start = max(1, self.resume_revision)
                    async for response in self.conn.watch(
                        prefix, start, progress_every=self.progress_interval
                    ):
                        if response.created:
                            # Not yet proof of health: a stream can be created and then fail.
                            self._report(ConnState.LIVE)
                            continue
                        backoff.succeeded()  # the stream delivered: it works
                        if response.events:
                            self._apply(response)
                        else:
                            self._progress(int(response.header.revision))
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
                    self._progress_candidate = 0  # only ever confirmed on the same stream
                    self._report(
                        ConnState.RECONNECTING,
                        error=exc.user_message() if backoff.attempt == 1 else str(exc),
                        retry_in=delay,
                        attempt=backoff.attempt,
                    )
                    await asyncio.sleep(delay)
                    if backoff.attempt > 1:
                        await self.conn.reconnect()
        finally:
            self._report(ConnState.STOPPED)

    def _progress(self, revision: int) -> None:
        """A progress notification: no event under the prefix up to ``revision``.

        Trusted once the next notification arrives with no event in between (see the
        module docstring); a revision that is already applied needs no trust.
        """
        self.progress_notifications += 1
        candidate, self._progress_candidate = self._progress_candidate, revision
        if candidate > self._progress_revision:
            self._progress_revision = candidate

    async def _load_snapshot(self, prefix: bytes) -> None:
        if not self.state.instances and not self.snapshots_loaded:
            try:
                await self._load_pages(prefix)
                return
            except RegistryError as exc:
                if "compacted" not in str(exc) or not self.state.instances:
                    raise
                # Compacted between pages: read it all again, keeping what was shown.
        await self._load_whole(prefix)

    async def _load_pages(self, prefix: bytes) -> None:
        """The first snapshot, page by page: each page is applied and reported (a
        ``loading`` batch) as soon as it is parsed, so the first screen shows while the
        rest arrives. All pages are read at one revision and the watch starts after it,
        as with :meth:`_load_whole`: no change is lost or reported twice."""
        state = self.state
        loaded = 0
        async for kvs, revision, total, more in self.conn.iter_prefix(prefix):
            if not loaded:
                self._check_budget(kvs, total)
            changes: list[Change] = []
            for start in range(0, len(kvs), PARSE_SLICE):
                parsed = state.parse(kvs[start : start + PARSE_SLICE])
                changes.extend(state.add(parsed.values(), revision))
                if start + PARSE_SLICE < len(kvs):
                    await asyncio.sleep(0)
            loaded += len(kvs)
            state.revision = revision
            if not more:
                self._progress_revision = self._progress_candidate = 0
                self.snapshots_loaded += 1
            else:
                self._report(ConnState.LOADING, loaded=loaded, total=max(total, loaded))
            self.on_batch(ChangeBatch(changes, revision, snapshot=True, loading=True))
            await asyncio.sleep(0)

    def _check_budget(self, sample: list[Any], total: int) -> None:
        needed = estimate_mb(sample, total)
        if needed <= self.memory_budget_mb:
            return
        narrower = self.prefix
        if sample:
            service, _, error = split_key(
                sample[0].key.decode("utf-8", "backslashreplace"), self.prefix
            )
            if service and error is None:
                narrower = safe_line(f"{self.prefix}{service}/", 200)
        raise PrefixTooLarge(
            too_large_message(self.prefix, total, needed, self.memory_budget_mb, narrower)
        )

    async def _load_whole(self, prefix: bytes) -> None:
        kvs, revision = await self.conn.get_prefix(prefix)
        # Parse in slices, letting the event loop breathe between them: a UI on the
        # same loop stays responsive while 100,000 instances load.
        parsed: dict[bytes, Instance] = {}
        for start in range(0, len(kvs), PARSE_SLICE):
            parsed.update(self.state.parse(kvs[start : start + PARSE_SLICE]))
            await asyncio.sleep(0)
        changes = self.state.load(kvs, revision, parsed)
        self._progress_revision = self._progress_candidate = 0
        self.snapshots_loaded += 1
        self.on_batch(ChangeBatch(changes, revision, snapshot=True))

    def _apply(self, response: Any) -> None:
        state = self.state
        self._progress_candidate = 0  # events after a notification: it may have run ahead
        changes: list[Change] = []
        applied = state.revision
        for event in response.events:
            kv = event.kv
            if kv.mod_revision <= applied:
                continue  # the revision the watch resumed at: already in the state
            change = (
                state.apply_put(kv)
                if event.type == _PUT
                else state.apply_delete(kv.key, kv.mod_revision)
            )
            if change is not None:
                changes.append(change)
        if changes:
            self.on_batch(ChangeBatch(changes, state.revision))
