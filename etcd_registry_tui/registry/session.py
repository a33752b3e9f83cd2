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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .config import ConnectionConfig
from .connection import EtcdConnection
from .errors import LeaseNotFound, RegistryError
from .events import ChangeBatch, ConnectionStatus
from .leases import LeaseTracker
from .model import ChangeKind, Instance, RegistryState
from .registration import ServiceRegistration
from .supervisor import Supervisor, TaskFailure
from .watcher import RegistryWatcher

#: How long a delete done from the dashboard labels the key's DELETE entry as such.
DELETE_LABEL_FOR = 30.0


class LogKind(StrEnum):
    PUT = "PUT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    LEADER = "LEADER"
    INFO = "INFO"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class LogEntry:
    kind: LogKind
    key: str
    detail: str = ""
    at: float = field(default_factory=time.time)


BatchListener = Callable[[ChangeBatch, list[LogEntry]], None]
StatusListener = Callable[[ConnectionStatus], None]
FailureListener = Callable[[TaskFailure], None]


def _noop(*_: Any) -> None:
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
    ) -> None:
        self.config = config
        self.read_only = read_only
        self.conn = EtcdConnection(config)
        self.state = RegistryState(config.prefix)
        self.on_batch = on_batch
        self.on_status = on_status
        self.on_failure = on_failure
        self.supervisor = Supervisor(self._task_failed)
        self.watcher = RegistryWatcher(
            self.conn, self._batch, self._status, state=self.state, prefix=config.prefix
        )
        self.tracker = LeaseTracker(self.conn, clock=clock)
        self.own: dict[bytes, ServiceRegistration] = {}
        self._revoked_leases: set[int] = set()
        # Keys deleted from the dashboard -> until when their DELETE is labelled so.
        self._deleted_keys: dict[bytes, float] = {}

    # -- running -------------------------------------------------------------
    @property
    def status(self) -> ConnectionStatus:
        return self.watcher.status

    async def run(self) -> None:
        """Watch and track leases until cancelled; both restarted whenever they die."""
        tasks = [
            self.supervisor.start("registry watcher", self.watcher.run),
            self.supervisor.start("lease tracker", self.tracker.run),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def shutdown(self, timeout: float = 3.0) -> None:
        """Unregister the dashboard's own instances, then close the connection."""
        regs = list(self.own.values())
        self.own.clear()
        if regs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*(r.unregister() for r in regs), return_exceptions=True),
                    timeout,
                )
        await self.supervisor.stop()
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
        self.on_status(status)

    def _batch(self, batch: ChangeBatch) -> None:
        entries: list[LogEntry] = []
        if not batch.snapshot or self.watcher.snapshots_loaded > 1:
            entries = [self._log_entry(change.kind, change.instance) for change in batch.changes]
        # Only now: the log asks the tracker how much time a deleted key's lease had left.
        self._follow_leases(batch)
        deleted_leases: set[int] = set()
        for change in batch.changes:
            if change.kind is ChangeKind.DELETE:
                self._deleted_keys.pop(change.key, None)
                deleted_leases.add(change.instance.lease)
        by_lease = self.state.by_lease
        self._revoked_leases = {
            lease for lease in self._revoked_leases if lease in by_lease or lease in deleted_leases
        }
        self.on_batch(batch, entries)

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

    def _log_entry(self, kind: ChangeKind, inst: Instance) -> LogEntry:
        if kind is ChangeKind.CREATE:
            return LogEntry(LogKind.PUT, inst.key, inst.address or "")
        if kind is ChangeKind.UPDATE:
            return LogEntry(LogKind.UPDATE, inst.key, f"version {inst.version}")
        if inst.lease and inst.lease in self._revoked_leases:
            return LogEntry(LogKind.REVOKED, inst.key, f"lease {inst.lease_hex} revoked")
        if self._deleted_keys.get(inst.raw_key, 0.0) >= time.monotonic():
            return LogEntry(LogKind.DELETE, inst.key, "deleted from the dashboard")
        if inst.lease:
            remaining = self.tracker.remaining(inst.lease)
            if remaining is not None and remaining <= 1.5:
                return LogEntry(LogKind.EXPIRED, inst.key, f"lease {inst.lease_hex} expired")
        return LogEntry(LogKind.DELETE, inst.key)

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
        self, name: str, address: str, ttl: int = 30, extra: dict[str, Any] | None = None
    ) -> ServiceRegistration:
        self._check_writable()
        reg = ServiceRegistration(
            self.conn, name, address, ttl=ttl, prefix=self.config.prefix, extra=extra
        )
        await reg.register()
        assert reg.lease_id is not None
        # The TTL etcd granted (it raises 1 s to its minimum), not the one asked for.
        self.tracker.note(reg.lease_id, reg.ttl, reg.ttl)
        self.own[reg.key.encode()] = reg
        self._start_keepalive(reg)
        return reg

    async def revoke(self, lease_id: int) -> int:
        """Revoke a lease; returns how many keys went with it. LeaseNotFound if gone.

        Our own instances on it stop their heartbeats first: a heartbeat that saw the
        lease gone would register the instance again on a new lease. They stay
        stopped even if the revoke fails: their lease then runs out by itself.
        """
        self._check_writable()
        # A copy: the state's own set empties as the watch reports the keys gone.
        keys = set(self.state.keys_on_lease(lease_id))
        own = [
            (key, reg)
            for key, reg in self.own.items()
            if key in keys or (reg.lease_id is not None and reg.lease_id == lease_id)
        ]
        for key, reg in own:
            del self.own[key]
            await reg.stop_keepalive()
        self._revoked_leases.add(lease_id)
        try:
            await self.conn.revoke(lease_id)
        except LeaseNotFound:
            self._revoked_leases.discard(lease_id)
            raise
        finally:
            # A re-registration cut short by stop_keepalive may have left a new lease.
            for _key, reg in own:
                if reg.lease_id is not None and reg.lease_id != lease_id:
                    with contextlib.suppress(RegistryError):
                        await self.conn.revoke(reg.lease_id)
                reg.lease_id = None
        return len(keys)

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
        now = time.monotonic()
        self._deleted_keys = {k: t for k, t in self._deleted_keys.items() if t >= now}
        self._deleted_keys[raw_key] = now + DELETE_LABEL_FOR
        try:
            reg = self.own.pop(raw_key, None)
            if reg is not None:
                await reg.stop_keepalive()
                if reg.lease_id is not None:
                    with contextlib.suppress(RegistryError):
                        await self.conn.revoke(reg.lease_id)
            deleted = await self.conn.delete(raw_key) > 0 or reg is not None
        except BaseException:
            # Not deleted by us (as far as we know): a later delete or expiry of this
            # key must not be labelled as the dashboard's.
            self._deleted_keys.pop(raw_key, None)
            raise
        if not deleted:
            self._deleted_keys.pop(raw_key, None)
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
