"""The registration side: how a Python service joins the registry.

The Python counterpart of the .NET ``ServiceRegistry``: grant a lease, put
``{"Id", "Name", "Address"}`` under ``/services/{Name}/{Id}`` bound to it, keep the
lease alive with heartbeats, and revoke it on shutdown so the key goes at once.

It never takes or removes a key that another instance holds: with a stable instance id,
a process that stalled past its TTL and comes back finds its replacement there, waits
(``"conflict"`` events) instead of overwriting it, and on shutdown deletes nothing of it.

    async with EtcdConnection(ConnectionConfig(endpoints=("127.0.0.1:2379",))) as conn:
        async with ServiceRegistration(conn, "OrderShippingService", "http://localhost:5000"):
            await serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import aetcd

from .etcd.config import ConnectionConfig
from .etcd.connection import EtcdConnection
from .etcd.errors import ConfigError, LeaseNotFound, RegistryError
from .layouts import Layout
from .layouts.registrar import Plan, check_address, plan
from .wording import lease_text

log = logging.getLogger(__name__)


class InstanceConflict(RegistryError):
    """The instance's key is held by another instance (another lease, or none)."""

    hint = "stop the other instance or wait for its lease to run out, or use another id (--id)"

    def __init__(self, key: str, holder: int, remaining: int | None = None) -> None:
        if holder:
            left = f", {remaining} s left" if remaining is not None and remaining >= 0 else ""
            owner = f"lease {lease_text(holder)}{left}"
        else:
            owner = "a key without a lease"
        super().__init__(f"{key} is held by another instance ({owner})")
        self.key = key
        self.holder = holder
        self.remaining = remaining


def validate_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ConfigError("service name is empty")
    if "/" in name:
        raise ConfigError(f"service name {name!r} must not contain '/'")
    return name


#: The largest lease TTL etcd grants (etcdserver: "too large lease TTL" above it).
MAX_TTL = 9_000_000_000


def validate_ttl(ttl: int) -> int:
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise ConfigError(f"TTL must be a positive whole number of seconds, not {ttl!r}")
    if ttl > MAX_TTL:
        raise ConfigError(f"TTL must be at most {MAX_TTL} seconds (etcd's limit), not {ttl}")
    return ttl


class ServiceRegistration:
    """Register one instance, keep it alive, unregister it.

    ``client`` is an :class:`EtcdConnection` or an already configured ``aetcd.Client``
    (its host, port and credentials are reused).
    """

    def __init__(
        self,
        client: EtcdConnection | aetcd.Client,
        name: str,
        address: str,
        ttl: int = 30,
        instance_id: str | None = None,
        prefix: str = "/services/",
        extra: dict[str, Any] | None = None,
        on_event: Callable[[str, ServiceRegistration], None] | None = None,
        layout: Layout | str = Layout.WALKTHROUGH,
    ) -> None:
        if isinstance(client, aetcd.Client):
            # aetcd keeps these private: Client._host/_port/_username/_password
            # (tests/unit/test_private_apis.py checks them)
            client = EtcdConnection(
                ConnectionConfig(
                    endpoints=(f"{client._host}:{client._port}",),
                    user=client._username,
                    password=client._password,
                    prefix=prefix,
                )
            )
        self.conn = client
        self.name = validate_name(name)
        self.address = address
        # What we ask etcd for; ``ttl`` is what etcd granted (it raises 1 s to 2 s).
        self.requested_ttl = validate_ttl(ttl)
        self.ttl = self.requested_ttl
        self.instance_id = instance_id or str(uuid.uuid4())
        if "/" in self.instance_id or not self.instance_id:
            raise ConfigError(f"instance id {self.instance_id!r} must be non-empty without '/'")
        self.prefix = prefix
        try:
            self.layout = Layout(layout)
        except ValueError:
            known = ", ".join(item.value for item in Layout)
            raise ConfigError(f"unknown layout {layout!r} (known: {known})") from None
        if self.layout is not Layout.WALKTHROUGH and extra:
            raise ConfigError("extra fields are written only in the walkthrough's layout")
        # The lease the key was made for (go-zero's key names its lease).
        self._key_lease = 0
        try:
            check_address(self.layout, address)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.extra = dict(extra or {})
        self.on_event = on_event
        self.lease_id: int | None = None
        self.last_ttl: int | None = None
        self.last_heartbeat: float | None = None
        self.registrations = 0
        self.paused = False
        # While another instance holds our key: its lease (0: a key without lease).
        self.held_by: int | None = None
        # A lease given up for lost without etcd saying so (see keep_alive): if it still
        # holds our key, it is ours to take back, not another instance's.
        self._stale_lease: int | None = None
        self._task: asyncio.Task[None] | None = None
        # Checked by the loop as well as cancelling it: Python 3.11's wait_for can swallow
        # a cancellation, and a loop that then went on would register the key again.
        self._stopping = False
        self._stream = self.conn.keepalive_stream()

    # -- the record ----------------------------------------------------------
    @property
    def key(self) -> str:
        if self.layout is not Layout.WALKTHROUGH:
            return self._plan(self._key_lease).key
        return f"{self.prefix}{self.name}/{self.instance_id}"

    def _plan(self, lease: int) -> Plan:
        return plan(self.layout, self.name, self.instance_id, self.address, lease)

    @property
    def key_names_lease(self) -> bool:
        """The key holds the lease id (go-zero's): known only once the lease is granted."""
        return self.layout is Layout.GO_ZERO

    def value(self) -> dict[str, Any]:
        return {"Id": self.instance_id, "Name": self.name, "Address": self.address, **self.extra}

    def payload(self) -> bytes:
        """The bytes stored under :attr:`key`: PascalCase JSON, as .NET writes it, or
        what the layout's framework writes."""
        if self.layout is not Layout.WALKTHROUGH:
            return self._plan(self._key_lease).value
        return json.dumps(self.value()).encode()

    async def _put_paths(self, lease_id: int) -> None:
        """The path keys the layout's framework writes beside an instance (if absent)."""
        if self.layout is Layout.WALKTHROUGH:
            return
        for key, value, leased in self._plan(lease_id).paths:
            await self.conn.put_if_absent(key.encode(), value, lease=lease_id if leased else 0)

    def _emit(self, what: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(what, self)
        except Exception:
            # A faulty callback must never cost the instance its heartbeats.
            log.exception("on_event(%r) for %s raised; carrying on", what, self.key)

    # -- register / unregister -----------------------------------------------
    async def register(self) -> int:
        """Grant a lease and put the instance bound to it; returns the lease id.

        Only if the key is free (a create-if-absent transaction): a key held by another
        instance raises :class:`InstanceConflict` and nothing is written or leaked.
        """
        for _attempt in range(3):
            # A key that names its own lease is held by no one else.
            existing = None if self.key_names_lease else await self.conn.get(self.key.encode())
            if existing is None:
                lease_id, granted = await self.conn.grant(self.requested_ttl)
                # Known at once, so an unregister() revokes it even if the put is cancelled.
                self.lease_id, self.ttl, self.last_ttl = lease_id, granted, granted
                if self.key_names_lease:
                    self._key_lease = lease_id
                key = self.key.encode()
                try:
                    await self._put_paths(lease_id)
                    created, existing = await self.conn.put_if_absent(
                        key, self.payload(), lease=lease_id
                    )
                except RegistryError:
                    self.lease_id = None
                    with contextlib.suppress(RegistryError):
                        await self.conn.revoke(lease_id)
                    raise
                if created:
                    stale, self._stale_lease = self._stale_lease, None
                    if stale is not None:  # given up for lost: make sure it is gone
                        with contextlib.suppress(RegistryError):
                            await self.conn.revoke(stale)
                    return self._registered(lease_id)
                # Taken between the read and the transaction.
                self.lease_id = None
                with contextlib.suppress(RegistryError):
                    await self.conn.revoke(lease_id)
                if existing is None:
                    continue
            holder = int(existing.lease)
            if holder and holder == self._stale_lease:
                if await self._take_back(holder):
                    return holder
                continue
            raise await self._conflict(holder)
        raise RegistryError(f"{self.key} kept changing while registering; try again")

    def _registered(self, lease_id: int) -> int:
        self.last_heartbeat = time.monotonic()
        self.registrations += 1
        self.held_by = self._stale_lease = None
        log.info("registered %s with lease %x", self.key, lease_id)
        self._emit("registered")
        return lease_id

    async def _take_back(self, lease_id: int) -> bool:
        """Our own lease, given up too early, still holds the key: keep it alive again."""
        self._stale_lease = None
        ttl = await self._stream.keepalive(lease_id)
        if ttl <= 0:
            return False
        log.info("lease %x of %s was still alive; keeping it", lease_id, self.key)
        self.lease_id, self.last_ttl, self.held_by = lease_id, ttl, None
        self.last_heartbeat = time.monotonic()
        self._emit("heartbeat")
        return True

    async def _conflict(self, holder: int) -> InstanceConflict:
        remaining: int | None = None
        if holder:
            with contextlib.suppress(RegistryError):
                remaining = (await self.conn.time_to_live(holder))[0]
        return InstanceConflict(self.key, holder, remaining)

    async def unregister(self) -> bool:
        """Stop heartbeats and revoke the lease, so the key goes at once.

        Removes only a key bound to this registration's own lease; returns whether
        there was one. A key another instance holds is left alone.
        """
        await self.stop_keepalive()
        lease_id, self.lease_id = self.lease_id, None
        stale, self._stale_lease = self._stale_lease, None
        self.held_by = None
        if stale is not None:
            with contextlib.suppress(RegistryError):
                await self.conn.revoke(stale)
        if lease_id is None:
            return False
        try:
            await self.conn.revoke(lease_id)
        except LeaseNotFound:
            # Already expired, and its keys with it. Whatever is under the key now is
            # another instance's: delete only what is still bound to our own lease.
            await self.conn.delete_if_lease(self.key.encode(), lease_id)
        log.info("unregistered %s", self.key)
        self._emit("unregistered")
        return True

    # -- heartbeats ----------------------------------------------------------
    def start_keepalive(self) -> asyncio.Task[None]:
        self._stopping = False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.keep_alive(), name=f"keepalive {self.key}")
        return self._task

    async def stop_keepalive(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        # Cancel the gRPC stream first: it unblocks a heartbeat stuck in write/read.
        self._stream.close()
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self.conn.config.command_timeout + 1)

    def pause(self) -> None:
        """Stop sending heartbeats (the lease runs out) without unregistering."""
        self.paused = True
        self._emit("paused")

    def resume(self) -> None:
        self.paused = False
        self._emit("resumed")

    async def heartbeat(self) -> bool:
        """Renew the lease once; re-register with a new lease when it was lost.

        Returns True when the lease was renewed, False when a new one was needed.
        Raises :class:`InstanceConflict` when another instance took the key meanwhile.
        """
        if self.lease_id is None:
            if not self._stopping:
                await self.register()
            return False
        ttl = await self._stream.keepalive(self.lease_id)
        if ttl <= 0:
            if self._stopping:
                return False
            log.warning("lease %x of %s was lost; registering again", self.lease_id, self.key)
            self._emit("lost")
            self.lease_id = None
            await self.register()
            return False
        self.last_ttl = ttl
        self.last_heartbeat = time.monotonic()
        self._emit("heartbeat")
        return True

    async def keep_alive(self) -> None:
        """Heartbeat every third of the TTL until cancelled; survive etcd outages.

        While another instance holds the key, try again every interval until it is free.
        """
        failures = 0
        while not self._stopping:
            interval = max(0.5, self.ttl / 3)
            if self.paused:
                await asyncio.sleep(0.2)
                continue
            try:
                if self.lease_id is not None and self._lease_certainly_gone():
                    self._stale_lease, self.lease_id = self.lease_id, None
                await self.heartbeat()
                failures = 0
            except InstanceConflict as exc:
                failures = 0
                self._note_conflict(exc)
            except RegistryError as exc:
                failures += 1
                interval = min(interval, 0.5 * 2 ** min(failures, 4))
                log.warning("heartbeat for %s failed: %s", self.key, exc)
                self._emit("error")
            except Exception:
                # A bug must not end the heartbeats silently: log it and let the task end,
                # so whoever supervises it (the dashboard's session) reports and restarts it.
                log.exception("heartbeat for %s failed unexpectedly", self.key)
                self._emit("error")
                raise
            await asyncio.sleep(interval)

    def _note_conflict(self, exc: InstanceConflict) -> None:
        if self.held_by != exc.holder:
            log.warning("%s; waiting until it is free", exc)
        self.held_by = exc.holder
        self._emit("conflict")

    def _lease_certainly_gone(self) -> bool:
        """After a long pause (a suspended process) the old lease has expired."""
        if self.last_heartbeat is None or self.last_ttl is None:
            return False
        return time.monotonic() - self.last_heartbeat > self.last_ttl + 1

    # -- context manager -----------------------------------------------------
    async def __aenter__(self) -> ServiceRegistration:
        await self.register()
        self.start_keepalive()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unregister()
