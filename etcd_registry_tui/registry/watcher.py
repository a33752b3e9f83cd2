"""The live watcher: snapshot at revision R, then watch from R+1, forever.

It keeps a :class:`RegistryState` equal to what etcd holds under the prefix and
reports every change as a :class:`ChangeBatch`, plus its :class:`ConnectionStatus`.
After a broken connection it resumes from the last applied revision; when that
revision was compacted meanwhile it reloads the snapshot and reports the
difference as ordinary changes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from .connection import EtcdConnection
from .errors import RegistryError, RevisionCompacted
from .events import ChangeBatch, ConnectionStatus, ConnState
from .model import Change, Instance, RegistryState

log = logging.getLogger(__name__)

BatchCallback = Callable[[ChangeBatch], None]
StatusCallback = Callable[[ConnectionStatus], None]

_PUT = 0  # mvccpb.Event.PUT; DELETE is 1
PARSE_SLICE = 5000


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
    ) -> None:
        self.conn = conn
        self.prefix = prefix or conn.config.prefix
        self.state = state if state is not None else RegistryState(self.prefix)
        self.on_batch = on_batch
        self.on_status = on_status
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.status = ConnectionStatus(ConnState.CONNECTING, conn.endpoint)
        self.snapshots_loaded = 0
        self.reconnects = 0
        self._live = asyncio.Event()

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
        await asyncio.wait_for(self._live.wait(), timeout)

    # -- the loop ------------------------------------------------------------
    async def run(self) -> None:
        prefix = self.prefix.encode()
        need_snapshot = True
        attempt = 0
        try:
            while True:
                try:
                    if need_snapshot:
                        self._report(ConnState.LOADING if attempt == 0 else ConnState.RECONNECTING)
                        await self._load_snapshot(prefix)
                        need_snapshot = False
                    async for response in self.conn.watch(prefix, self.state.revision + 1):
                        if response.created:
                            attempt = 0
                            self._report(ConnState.LIVE)
                            continue
                        self._apply(response)
                except RevisionCompacted as exc:
                    log.info("watch revision compacted (%s); reloading snapshot", exc)
                    need_snapshot = True
                    self._report(
                        ConnState.RECONNECTING,
                        error=f"history compacted past revision {self.state.revision}; reloading",
                    )
                except RegistryError as exc:
                    attempt += 1
                    self.reconnects += 1
                    delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1))
                    delay *= random.uniform(0.8, 1.2)
                    self._report(
                        ConnState.RECONNECTING,
                        error=exc.user_message() if attempt == 1 else str(exc),
                        retry_in=delay,
                        attempt=attempt,
                    )
                    await asyncio.sleep(delay)
                    if attempt > 1:
                        await self.conn.reconnect()
        finally:
            self._report(ConnState.STOPPED)

    async def _load_snapshot(self, prefix: bytes) -> None:
        kvs, revision = await self.conn.get_prefix(prefix)
        # Parse in slices, letting the event loop breathe between them: a UI on the
        # same loop stays responsive while 100,000 instances load.
        parsed: dict[bytes, Instance] = {}
        for start in range(0, len(kvs), PARSE_SLICE):
            parsed.update(self.state.parse(kvs[start : start + PARSE_SLICE]))
            await asyncio.sleep(0)
        changes = self.state.load(kvs, revision, parsed)
        self.snapshots_loaded += 1
        self.on_batch(ChangeBatch(changes, revision, snapshot=True))

    def _apply(self, response: Any) -> None:
        state = self.state
        changes: list[Change] = []
        for event in response.events:
            kv = event.kv
            change = (
                state.apply_put(kv)
                if event.type == _PUT
                else state.apply_delete(kv.key, kv.mod_revision)
            )
            if change is not None:
                changes.append(change)
        if changes:
            self.on_batch(ChangeBatch(changes, state.revision))
