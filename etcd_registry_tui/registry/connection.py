"""The one place that talks to etcd through aetcd, and papers over its gaps.

aetcd 1.0 gives no deadline by default, never resumes a broken watch, opens only a
plain single-endpoint channel, caps messages at 4 MB and fetches its auth token once.
:class:`EtcdConnection` gives every call a deadline, builds the channel itself
(several endpoints, TLS, keepalive pings, a large receive limit), re-authenticates
once when the token went stale, and turns every failure into a
:class:`~etcd_registry_tui.registry.errors.RegistryError` that names the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aetcd
import grpc
from aetcd import rpc, utils

from .config import ConnectionConfig
from .errors import (
    ConfigError,
    EtcdAuthError,
    EtcdUnavailable,
    LeaseNotFound,
    RegistryError,
    RevisionCompacted,
    WatchRejected,
    translate,
)

T = TypeVar("T")

CHANNEL_OPTIONS: dict[str, Any] = {
    # 100,000 instances with 200-byte values are ~30 MB in one Range response.
    "grpc.max_receive_message_length": 512 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
    # HTTP/2 pings notice a frozen or black-holed etcd (etcd allows one per 5 s).
    "grpc.keepalive_time_ms": 6000,
    "grpc.keepalive_timeout_ms": 4000,
    "grpc.http2.ping_timeout_ms": 4000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.max_pings_without_data": 0,
    # Come back quickly after a restart. (Not "grpc.min_reconnect_backoff_ms": gRPC takes
    # that as the connect-attempt timeout, see _Client; 300 ms there gave up on any etcd
    # whose handshake took longer, however long the dial timeout.)
    "grpc.initial_reconnect_backoff_ms": 300,
    "grpc.max_reconnect_backoff_ms": 2000,
}


def key_range(prefix: bytes) -> tuple[bytes, bytes]:
    """(key, range_end) of every key starting with ``prefix``; ``b""`` is the whole keyspace."""
    if not prefix:
        return b"\0", b"\0"
    return prefix, utils.prefix_range_end(prefix)


class _Client(aetcd.Client):
    """aetcd's client with a channel built by us (endpoints list, TLS, options)."""

    def __init__(self, config: ConnectionConfig) -> None:
        host, port = config.hosts[0]
        super().__init__(
            host=host,
            port=port,
            username=config.user,
            password=config.password,
            timeout=config.command_timeout,  # type: ignore[arg-type]
            # gRPC's minimum connect-attempt timeout is the dial timeout.
            options={
                **CHANNEL_OPTIONS,
                "grpc.min_reconnect_backoff_ms": int(config.dial_timeout * 1000),
            },
            connect_wait_timeout=int(max(3, config.dial_timeout)),
        )
        self._config = config

    def _make_channel(self) -> grpc.aio.Channel:
        cfg = self._config
        options = list(self._options.items())
        if not cfg.tls:
            return grpc.aio.insecure_channel(cfg.grpc_target, options=options)

        def read(option: str, path: str | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ConfigError(f"cannot read {option} {path}: {exc.strerror}") from None

        creds = grpc.ssl_channel_credentials(
            root_certificates=read("--cacert", cfg.cacert),
            private_key=read("--key", cfg.key),
            certificate_chain=read("--cert", cfg.cert),
        )
        return grpc.aio.secure_channel(cfg.grpc_target, creds, options=options)

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # type: ignore[has-type]
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            channel = self._make_channel()
            metadata = None
            try:
                if self._username is not None:
                    auth_stub = rpc.AuthStub(channel)
                    resp = await auth_stub.Authenticate(
                        rpc.AuthenticateRequest(name=self._username, password=self._password),
                        timeout=self._config.dial_timeout,
                    )
                    metadata = (("token", resp.token),)
            except BaseException:
                await channel.close()
                raise
            self.channel = channel
            self.metadata = metadata
            self.kvstub = rpc.KVStub(channel)
            self.clusterstub = rpc.ClusterStub(channel)
            self.leasestub = rpc.LeaseStub(channel)
            self.maintenancestub = rpc.MaintenanceStub(channel)
            self._watcher = aetcd.client.watcher.Watcher(
                rpc.WatchStub(channel), timeout=self._timeout, metadata=metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False


class EtcdConnection:
    """A connection to one etcd cluster with deadlines and readable errors."""

    def __init__(self, config: ConnectionConfig | None = None) -> None:
        self.config = config or ConnectionConfig()
        self._client: _Client | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return self.config.label

    @property
    def client(self) -> aetcd.Client:
        """The underlying aetcd client (connected by :meth:`connect`)."""
        if self._client is None:
            self._client = _Client(self.config)
        return self._client

    async def connect(self) -> None:
        """Connect and prove etcd answers (a cheap Status call), or raise."""
        await self._call(self._status_raw)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)

    async def reconnect(self) -> None:
        """Drop the channel (and auth token); the next call opens a fresh one."""
        async with self._lock:
            await self.close()

    async def __aenter__(self) -> EtcdConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ready(self) -> _Client:
        client = self.client
        assert isinstance(client, _Client)
        if not client._connected.is_set():  # the common case costs no task
            await asyncio.wait_for(client.connect(), self.config.dial_timeout + 1)
        return client

    async def _call(self, fn: Callable[[_Client], Awaitable[T]]) -> T:
        """Run ``fn(client)``; re-authenticate once on a stale token.

        Every ``fn`` passes :meth:`_opts` to its stub call, so gRPC enforces the
        deadline itself (no extra task per call, which the lease tracker would feel).
        """
        for attempt in (1, 2):
            try:
                client = await self._ready()
                return await fn(client)
            except RegistryError:
                raise
            except asyncio.CancelledError:
                raise
            except (Exception, TimeoutError) as exc:
                err = translate(exc, self.endpoint)
                if isinstance(err, EtcdAuthError) and attempt == 1 and self.config.user:
                    if "not authenticated" in str(err) or "invalid auth token" in str(exc):
                        await self.reconnect()
                        continue
                if isinstance(err, EtcdUnavailable) and self._client is not None:
                    if not self._client._connected.is_set():
                        await self.reconnect()
                raise err from None
        raise AssertionError("unreachable")

    def _opts(self, client: _Client, timeout: float | None = None) -> dict[str, Any]:
        return {
            "timeout": timeout or self.config.command_timeout,
            "metadata": client.metadata,
        }

    # -- key/value -----------------------------------------------------------
    async def _status_raw(self, client: _Client) -> Any:
        return await client.maintenancestub.Status(
            rpc.StatusRequest(), **self._opts(client, self.config.dial_timeout)
        )

    async def status(self) -> Any:
        return await self._call(self._status_raw)

    async def get_prefix(
        self,
        prefix: bytes,
        timeout: float | None = None,
        page_size: int = 20_000,
        keys_only: bool = False,
    ) -> tuple[list[Any], int]:
        """All key-values under ``prefix`` and the revision they were read at.

        Read in pages of ``page_size`` keys, all at the revision of the first page, so
        the result is one consistent snapshot; between pages the event loop runs (a
        dashboard keeps drawing while 100,000 keys arrive) and no single response
        has to hold everything. A compaction between pages starts the read over.
        """
        prefix, end = key_range(prefix)
        deadline = timeout or max(30.0, self.config.command_timeout)
        for _attempt in range(3):
            kvs: list[Any] = []
            revision = 0
            start = prefix
            try:
                while True:
                    request = rpc.RangeRequest(
                        key=start,
                        range_end=end,
                        limit=page_size,
                        revision=revision,
                        keys_only=keys_only,
                    )

                    async def run(client: _Client, request: Any = request) -> Any:
                        return await client.kvstub.Range(request, **self._opts(client, deadline))

                    response = await self._call(run)
                    if not revision:
                        revision = int(response.header.revision)
                    kvs.extend(response.kvs)
                    if not response.more or not response.kvs:
                        return kvs, revision
                    start = response.kvs[-1].key + b"\0"
            except RegistryError as exc:
                if "compacted" not in str(exc):
                    raise
        raise RegistryError(f"etcd at {self.endpoint} kept compacting during the snapshot")

    async def get(self, key: bytes) -> Any | None:
        async def run(client: _Client) -> Any | None:
            response = await client.kvstub.Range(rpc.RangeRequest(key=key), **self._opts(client))
            return response.kvs[0] if response.kvs else None

        return await self._call(run)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        async def run(client: _Client) -> int:
            request = rpc.PutRequest(key=key, value=value, lease=lease)
            response = await client.kvstub.Put(request, **self._opts(client))
            return int(response.header.revision)

        return await self._call(run)

    async def delete(self, key: bytes, prefix: bool = False) -> int:
        """Delete a key (or a prefix); returns how many keys went."""

        async def run(client: _Client) -> int:
            range_end = utils.prefix_range_end(key) if prefix else b""
            request = rpc.DeleteRangeRequest(key=key, range_end=range_end)
            response = await client.kvstub.DeleteRange(request, **self._opts(client))
            return int(response.deleted)

        return await self._call(run)

    async def compact(self, revision: int) -> None:
        async def run(client: _Client) -> None:
            await client.kvstub.Compact(
                rpc.CompactionRequest(revision=revision, physical=True), **self._opts(client)
            )

        await self._call(run)

    async def put_if_absent(self, key: bytes, value: bytes, lease: int = 0) -> tuple[bool, Any]:
        """Put ``key`` only if it does not exist (one transaction).

        Returns ``(True, None)`` when written, else ``(False, kv)`` with the key-value
        that is there (its ``lease`` says who holds it).
        """

        async def run(client: _Client) -> tuple[bool, Any]:
            request = rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=key,
                        target=rpc.Compare.CREATE,
                        result=rpc.Compare.EQUAL,
                        create_revision=0,
                    )
                ],
                success=[
                    rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))
                ],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
            )
            response = await client.kvstub.Txn(request, **self._opts(client))
            if response.succeeded:
                return True, None
            kvs = response.responses[0].response_range.kvs
            return False, (kvs[0] if kvs else None)

        return await self._call(run)

    async def delete_if_lease(self, key: bytes, lease: int) -> bool:
        """Delete ``key`` only while it is bound to ``lease`` (one transaction)."""

        async def run(client: _Client) -> bool:
            request = rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=key, target=rpc.Compare.LEASE, result=rpc.Compare.EQUAL, lease=lease
                    )
                ],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))],
            )
            response = await client.kvstub.Txn(request, **self._opts(client))
            return bool(response.succeeded) and bool(
                response.responses[0].response_delete_range.deleted
            )

        return await self._call(run)

    # -- leases --------------------------------------------------------------
    async def grant(self, ttl: int) -> tuple[int, int]:
        """Grant a lease; returns (lease id, granted TTL)."""

        async def run(client: _Client) -> tuple[int, int]:
            response = await client.leasestub.LeaseGrant(
                rpc.LeaseGrantRequest(TTL=ttl), **self._opts(client)
            )
            if response.error:
                raise RegistryError(f"lease grant failed: {response.error}")
            return int(response.ID), int(response.TTL)

        return await self._call(run)

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease (its keys go at once). Raises :class:`LeaseNotFound`."""

        async def run(client: _Client) -> None:
            await client.leasestub.LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease_id), **self._opts(client)
            )

        await self._call(run)

    async def time_to_live(self, lease_id: int, keys: bool = False) -> tuple[int, int, list[bytes]]:
        """(remaining TTL, granted TTL, keys); remaining is -1 for an unknown lease."""

        async def run(client: _Client) -> tuple[int, int, list[bytes]]:
            response = await client.leasestub.LeaseTimeToLive(
                rpc.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), **self._opts(client)
            )
            return int(response.TTL), int(response.grantedTTL), list(response.keys)

        return await self._call(run)

    async def leases(self) -> list[int]:
        async def run(client: _Client) -> list[int]:
            response = await client.leasestub.LeaseLeases(
                rpc.LeaseLeasesRequest(), **self._opts(client)
            )
            return [int(lease.ID) for lease in response.leases]

        return await self._call(run)

    def keepalive_stream(self) -> KeepAliveStream:
        return KeepAliveStream(self)

    # -- watch ---------------------------------------------------------------
    async def watch(
        self, prefix: bytes, start_revision: int, progress_every: float | None = None
    ) -> AsyncIterator[Any]:
        """Watch ``prefix`` from ``start_revision``; yields raw ``WatchResponse`` objects.

        The first response is the creation notice (no events). With ``progress_every``,
        once the stream has been quiet that long it asks etcd for a progress
        notification (a response with no events whose header revision says how far the
        watch has come), and again after each further quiet stretch. Raises
        :class:`RevisionCompacted` when ``start_revision`` is gone,
        :class:`WatchRejected` when etcd cancels the watch, and
        :class:`EtcdUnavailable` when the stream breaks; it never ends by itself.
        """
        try:
            client = await self._ready()
        except (Exception, TimeoutError) as exc:
            raise translate(exc, self.endpoint) from None
        stub = rpc.WatchStub(client.channel)
        # "hasleader": a member cut off from its cluster cancels the watch instead of
        # silently serving a stale view; we then reconnect, possibly to another member.
        call = stub.Watch(metadata=(*(client.metadata or ()), ("hasleader", "true")))
        key, range_end = key_range(prefix)
        create = rpc.WatchCreateRequest(
            key=key,
            range_end=range_end,
            start_revision=start_revision,
            progress_notify=True,
        )
        loop = asyncio.get_running_loop()
        heard = [loop.time()]  # when the last response arrived
        asker: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(
                call.write(rpc.WatchRequest(create_request=create)), self.config.dial_timeout
            )
            created = False
            while True:
                if created:
                    response = await call.read()
                    heard[0] = loop.time()
                else:
                    response = await asyncio.wait_for(call.read(), self.config.dial_timeout + 1)
                if response is grpc.aio.EOF:
                    raise EtcdUnavailable(f"etcd at {self.endpoint} closed the watch stream")
                if response.compact_revision:
                    raise RevisionCompacted(int(response.compact_revision))
                if response.canceled or (response.created and response.watch_id < 0):
                    reason = response.cancel_reason or "watch was not created"
                    raise WatchRejected(f"etcd at {self.endpoint} cancelled the watch: {reason}")
                if not created and progress_every:
                    asker = asyncio.create_task(
                        _ask_progress(call, progress_every, heard), name="watch progress"
                    )
                created = True
                yield response
        except RegistryError:
            raise
        except (Exception, TimeoutError) as exc:
            raise translate(exc, self.endpoint) from None
        finally:
            if asker is not None:
                asker.cancel()
            call.cancel()


async def _ask_progress(call: Any, every: float, heard: list[float]) -> None:
    """Ask for a progress notification whenever the watch stream was quiet ``every`` s."""
    loop = asyncio.get_running_loop()
    request = rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())
    while True:
        quiet = loop.time() - heard[0]
        if quiet < every:
            await asyncio.sleep(every - quiet)
            continue
        try:
            await call.write(request)
        except Exception:  # the stream is ending; its reader reports why
            return
        heard[0] = loop.time()


class KeepAliveStream:
    """One streaming LeaseKeepAlive call shared by any number of leases.

    aetcd's ``refresh_lease`` opens a new stream per call; this keeps one open and
    reopens it after a failure. ``keepalive(lease)`` returns the TTL etcd granted
    (0 or less: the lease is gone).
    """

    def __init__(self, conn: EtcdConnection) -> None:
        self._conn = conn
        self._call: Any = None
        self._lock = asyncio.Lock()

    async def keepalive(self, lease_id: int) -> int:
        async with self._lock:
            try:
                if self._call is None:
                    client = await self._conn._ready()
                    self._call = client.leasestub.LeaseKeepAlive(metadata=client.metadata)
                timeout = self._conn.config.command_timeout
                await asyncio.wait_for(
                    self._call.write(rpc.LeaseKeepAliveRequest(ID=lease_id)), timeout
                )
                response = await asyncio.wait_for(self._call.read(), timeout)
                if response is grpc.aio.EOF:
                    raise EtcdUnavailable(f"etcd at {self._conn.endpoint} closed the keep-alive")
                return int(response.TTL)
            except asyncio.CancelledError:
                self.close()
                raise
            except (Exception, TimeoutError) as exc:
                self.close()
                raise translate(exc, self._conn.endpoint) from None

    def close(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()


__all__ = ["EtcdConnection", "KeepAliveStream", "LeaseNotFound"]
