"""The one place that talks to etcd, through aetcd's gRPC stubs, papering over its gaps.

aetcd 1.0 gives no deadline by default, never resumes a broken watch, opens only a
plain single-endpoint channel, caps messages at 4 MB and fetches its auth token once.
:class:`EtcdConnection` gives every call a deadline and turns every failure into a
:class:`~etcd_registry_tui.registry.etcd.errors.RegistryError` that names the endpoint.

Endpoints: one gRPC channel per endpoint (TLS checks each endpoint's certificate
against its own host; IPv4, IPv6 and names mix; gRPC resolves names off the loop).
Calls go to the current endpoint; when one fails as unavailable (refused, timed out,
frozen, no leader) the connection moves on to the next, and read-only calls are
retried there at once. A channel is never closed under a live stream: one that is
replaced is closed when its last user lets go.

Auth: the token is sent as call metadata, taken fresh for every call and every
stream (re)open. A stale token is replaced in place by authenticating again on the
live channel, by one caller at a time; concurrent callers wait for that refresh.

Cancellation: a gRPC call cancelled by someone else (a channel closed under it)
raises ``CancelledError`` in a task that was not cancelled; that is turned into
:class:`~etcd_registry_tui.registry.etcd.errors.EtcdUnavailable`, so only a real
cancellation of the caller's task ends it as cancelled.

These three decisions are made in one place, :class:`_Attempts`, for unary calls,
authentication, the watch and the keep-alive stream alike. Callers elsewhere use the
public methods (``range``, ``txn``, ``watch``, the lease calls), never the stubs.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aetcd import rpc, utils

from .aio import within
from .config import ConnectionConfig
from .errors import (
    ConfigError,
    EtcdUnavailable,
    LeaseNotFound,
    RegistryError,
    RevisionCompacted,
    WatchRejected,
    is_no_leader,
    is_stale_token,
    translate,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
#: etcd's default limit on the operations of one transaction (--max-txn-ops).
MAX_TXN_OPS = 128

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
    # that as the connect-attempt timeout, see _open; 300 ms there gave up on any etcd
    # whose handshake took longer, however long the dial timeout.)
    "grpc.initial_reconnect_backoff_ms": 300,
    "grpc.max_reconnect_backoff_ms": 2000,
    # A channel of its own connection: a fresh channel (see _Attempts._redial) dials at
    # once instead of sharing the old one's subchannel and its reconnect backoff.
    "grpc.use_local_subchannel_pool": 1,
}


def key_range(prefix: bytes) -> tuple[bytes, bytes]:
    """(key, range_end) of every key starting with ``prefix``; ``b""`` is the whole keyspace."""
    if not prefix:
        return b"\0", b"\0"
    return prefix, utils.prefix_range_end(prefix)


def _cancelled_by_us() -> bool:
    """True when the running task itself is being cancelled (not a call under it)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _cut_off(what: str, label: str) -> EtcdUnavailable:
    return EtcdUnavailable(f"{what} to etcd at {label} was cut off (its connection closed)")


class _StaleTokenRefusal(WatchRejected):
    """etcd cancelled a watch at its creation because the token was stale."""


class _Failover(enum.Enum):
    """What an operation does when its endpoint is unavailable (the next one becomes
    current in every case)."""

    #: Repeat it on the next endpoint (read-only, or safe to repeat).
    RETRY = enum.auto()
    #: Repeat it there only when it was certainly not sent (connection refused).
    RETRY_UNSENT = enum.auto()
    #: Give up at once: a stream, which its caller reopens (with a backoff).
    REPORT = enum.auto()


class _Attempts:
    """The retry policy of one operation on the connection, written once.

    A failed attempt on an endpoint is, in this order: our own cancellation (raised
    as is); a stale token (authenticated again once, then repeated); unavailable (the
    next endpoint becomes current, then :class:`_Failover` says whether to repeat);
    anything else: given up as a typed :class:`RegistryError` naming the endpoint.
    ``again`` returns to repeat and raises to give up. Unary calls use :meth:`run`;
    streams use :meth:`open`, :meth:`close` and :meth:`again` around their own reads.

    ``patience`` (seconds, 0: none) lets a unary call wait for its endpoint's channel to
    connect before it is sent, instead of failing at once while gRPC reconnects (after a
    link heals gRPC may sit in its reconnect backoff for seconds): a channel in
    TRANSIENT_FAILURE is replaced by a fresh one (which dials at once), and the call waits
    for it to be ready for at most its share of the patience (split across endpoints, so
    a dead one still fails over). Nothing is repeated for it: the call is only held back.
    """

    __slots__ = (
        "authenticated",
        "committed",
        "conn",
        "deadline",
        "failover",
        "held",
        "patience",
        "reauthenticated",
        "token",
        "tries",
        "what",
    )

    def __init__(
        self,
        conn: EtcdConnection,
        what: str,
        failover: _Failover,
        authenticated: bool = True,
        patience: float = 0.0,
    ) -> None:
        self.conn = conn
        self.patience = patience
        self.deadline = 0.0  # event-loop time the patience of this operation runs out
        self.held: _Endpoint | None = None  # the endpoint run() holds (see _ready)
        self.what = what  # "a call", "the watch": for a cut-off message
        self.failover = failover
        self.authenticated = authenticated  # calls carry the token (not Authenticate itself)
        self.token: str | None = None  # the token the last attempt was sent with
        self.begin()

    def begin(self) -> None:
        """Start a new operation: it may re-authenticate once and fail over anew."""
        self.tries = 0
        self.reauthenticated = False
        self.committed = False

    def commit(self) -> None:
        """The operation has delivered something: a stale token no longer repeats it."""
        self.committed = True

    async def open(self) -> _Endpoint:
        """The current endpoint, held (with a token first, when calls carry one)."""
        if self.authenticated:
            await self.conn._ensure_token()
        ep = self.conn._acquire()
        self.token = self.conn._token
        return ep

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata of the attempt :meth:`open` began (its token)."""
        return (("token", self.token),) if self.token else ()

    def close(self, ep: _Endpoint) -> None:
        self.conn._release(ep)

    async def run(self, fn: Callable[[_Endpoint], Awaitable[T]]) -> T:
        """``fn(endpoint)`` under the policy."""
        if self.patience > 0:
            self.deadline = asyncio.get_running_loop().time() + self.patience
        while True:
            ep = self.held = await self.open()
            try:
                if self.patience > 0:
                    await self._ready()
                    ep = self.held
                return await fn(ep)
            except (Exception, asyncio.CancelledError) as exc:
                failure: BaseException = exc
            finally:
                self.close(self.held)
                self.held = None
            await self.again(failure, ep)

    async def again(self, failure: BaseException, ep: _Endpoint | None) -> None:
        """Return to repeat the operation after ``failure`` on ``ep`` (None: it failed
        before it held an endpoint); raise to give up."""
        label = ep.label if ep is not None else self.conn.current_endpoint
        if isinstance(failure, asyncio.CancelledError):
            if _cancelled_by_us():
                raise failure
            err: RegistryError = _cut_off(self.what, label)
            stale = False
        else:
            err = translate(failure, label)
            stale = isinstance(failure, _StaleTokenRefusal) or is_stale_token(failure)
        if stale and self._may_reauthenticate():
            self.reauthenticated = True
            await self.conn._authenticate(self.token)
            return
        if isinstance(err, EtcdUnavailable) and ep is not None:
            self.conn._failed(ep, err)
            self.tries += 1
            if self.tries < len(self.conn._slots) and self._may_repeat(err):
                return
        if err is failure:
            raise err
        raise err from None

    def _redial(self) -> None:
        """Hold a fresh channel to the held endpoint's address instead of the held one
        (which sits in TRANSIENT_FAILURE: gRPC would dial again only after its backoff)."""
        ep = self.held
        assert ep is not None
        if ep.retired:
            return
        self.conn._retire(ep)
        self.held = self.conn._acquire()
        self.conn._release(ep)

    async def _ready(self) -> None:
        """Wait until the held endpoint's channel is connected, for at most this
        endpoint's share of what is left of the patience; a channel that fails to connect
        meanwhile is replaced by a fresh one (at most every 0.2 s)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + (self.deadline - loop.time()) / max(
            1, len(self.conn._slots) - self.tries
        )
        redialed = 0.0
        while (left := until - loop.time()) > 0:
            ep = self.held
            assert ep is not None
            try:
                state = ep.channel.get_state(try_to_connect=True)
            except Exception:  # a closed channel: the call reports it
                return
            if state is grpc.ChannelConnectivity.READY:
                return
            if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE and loop.time() >= redialed:
                self._redial()
                redialed = loop.time() + 0.2
                continue
            try:
                await within(ep.channel.wait_for_state_change(state), min(left, 0.2))
            except asyncio.CancelledError:
                if _cancelled_by_us():
                    raise
                return
            except Exception:  # no change within 0.2 s (or closed under us): look again
                pass

    def _may_reauthenticate(self) -> bool:
        return (
            self.authenticated
            and not self.committed
            and not self.reauthenticated
            and self.conn.config.user is not None
        )

    def _may_repeat(self, err: EtcdUnavailable) -> bool:
        if self.failover is _Failover.RETRY:
            return True
        return self.failover is _Failover.RETRY_UNSENT and "refused" in str(err)


@dataclass(slots=True, eq=False)
class _Endpoint:
    """One channel to one endpoint, with the stubs that use it.

    ``users`` counts calls and streams on the channel; a ``retired`` channel (replaced
    by a fresh one, or the connection closed) is closed when the count reaches zero.
    """

    index: int
    label: str
    channel: grpc.aio.Channel
    kvstub: Any
    leasestub: Any
    maintenancestub: Any
    watchstub: Any
    authstub: Any
    users: int = 0
    retired: bool = False
    closed: bool = False


class EtcdConnection:
    """A connection to one etcd cluster with deadlines, fail-over and readable errors."""

    def __init__(self, config: ConnectionConfig | None = None) -> None:
        self.config = config or ConnectionConfig()
        self._slots: list[_Endpoint | None] = [None] * len(self.config.hosts)
        self._current = 0
        self._retired: set[_Endpoint] = set()  # replaced, closed once unused
        self._closing: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()  # see background()
        self._credentials: grpc.ChannelCredentials | None = None
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()
        self.authentications = 0  # how often a token was fetched (tests, diagnostics)
        self.failovers = 0  # how often the current endpoint moved on

    # -- endpoints and channels ----------------------------------------------
    @property
    def endpoint(self) -> str:
        """All endpoints, for messages and the status line."""
        return self.config.label

    @property
    def current_endpoint(self) -> str:
        """The endpoint calls go to now."""
        return self.config.targets[self._current]

    def _channel_credentials(self) -> grpc.ChannelCredentials:
        if self._credentials is None:
            cfg = self.config

            def read(option: str, path: str | None) -> bytes | None:
                if path is None:
                    return None
                try:
                    return Path(path).read_bytes()
                except OSError as exc:
                    raise ConfigError(f"cannot read {option} {path}: {exc.strerror}") from None

            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=read("--cacert", cfg.cacert),
                private_key=read("--key", cfg.key),
                certificate_chain=read("--cert", cfg.cert),
            )
        return self._credentials

    def _open(self, index: int) -> _Endpoint:
        target = self.config.targets[index]
        options = list(
            {
                **CHANNEL_OPTIONS,
                # gRPC's minimum connect-attempt timeout is the dial timeout.
                "grpc.min_reconnect_backoff_ms": int(self.config.dial_timeout * 1000),
            }.items()
        )
        if self.config.tls:
            channel = grpc.aio.secure_channel(target, self._channel_credentials(), options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        return _Endpoint(
            index=index,
            label=target,
            channel=channel,
            kvstub=rpc.KVStub(channel),
            leasestub=rpc.LeaseStub(channel),
            maintenancestub=rpc.MaintenanceStub(channel),
            watchstub=rpc.WatchStub(channel),
            authstub=rpc.AuthStub(channel),
        )

    def _now(self) -> _Endpoint:
        ep = self._slots[self._current]
        if ep is None:
            ep = self._slots[self._current] = self._open(self._current)
        return ep

    def _acquire(self) -> _Endpoint:
        ep = self._now()
        ep.users += 1
        return ep

    def _release(self, ep: _Endpoint) -> None:
        ep.users -= 1
        if ep.retired and ep.users <= 0:
            self._retired.discard(ep)
            self._close_soon(ep)

    def _retire(self, ep: _Endpoint) -> None:
        """Replace ``ep``'s channel by a fresh one for new calls; close it once unused."""
        if self._slots[ep.index] is ep:
            self._slots[ep.index] = None
        ep.retired = True
        if ep.users <= 0:
            self._close_soon(ep)
        else:
            self._retired.add(ep)

    def _close_soon(self, ep: _Endpoint) -> None:
        if ep.closed:
            return
        ep.closed = True
        try:
            task = asyncio.ensure_future(ep.channel.close())
        except RuntimeError:  # no running loop (interpreter shutdown): gRPC cleans up
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _failed(self, ep: _Endpoint, err: RegistryError) -> None:
        """``ep`` failed as unavailable: later calls go to the next endpoint."""
        if len(self._slots) > 1 and ep.index == self._current:
            self._current = (self._current + 1) % len(self._slots)
            self.failovers += 1
            log.warning("%s; moving on to %s", err, self.current_endpoint)

    # -- lifecycle -----------------------------------------------------------
    async def connect(self) -> None:
        """Connect and prove etcd answers (a cheap Status call), or raise."""
        await self._call(self._status_raw, idempotent=True)

    def background(self, task: asyncio.Task[Any]) -> None:
        """Hold ``task`` (a clean-up that uses this connection after its caller has gone)
        until it ends; :meth:`close` cancels it first, so none outlives the connection
        (or reopens a channel on it)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Cancel the background clean-ups (see :meth:`background`), then close every
        channel (live streams on them end as unavailable)."""
        if self._background:
            tasks = set(self._background)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        endpoints = [ep for ep in self._slots if ep is not None] + list(self._retired)
        self._slots = [None] * len(self._slots)
        self._retired.clear()
        self._token = None
        for ep in endpoints:
            ep.retired = True
            self._close_soon(ep)
        if self._closing:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._closing), timeout=5)

    async def reconnect(self) -> None:
        """Start over on the current endpoint with a fresh channel unless its channel is
        connected. (Moving to another endpoint happens when a call fails.) Streams on
        the old channel keep it until they end; the token is kept."""
        ep = self._slots[self._current]
        if ep is not None:
            with contextlib.suppress(Exception):
                if ep.channel.get_state() is grpc.ChannelConnectivity.READY:
                    return
            self._retire(ep)

    async def __aenter__(self) -> EtcdConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- auth ----------------------------------------------------------------
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("token", self._token),) if self._token else ()

    async def _ensure_token(self) -> None:
        if self.config.user is not None and self._token is None:
            await self._authenticate(None)

    async def _authenticate(self, stale: str | None) -> None:
        """Fetch a new token unless someone already replaced ``stale`` meanwhile.

        One caller at a time: the others wait on the lock and then find the new token.
        """
        async with self._auth_lock:
            if self._token is not None and self._token != stale:
                return
            request = rpc.AuthenticateRequest(name=self.config.user, password=self.config.password)

            async def run(ep: _Endpoint) -> str:
                response = await ep.authstub.Authenticate(request, timeout=self.config.dial_timeout)
                return str(response.token)

            attempts = _Attempts(self, "authentication", _Failover.RETRY, authenticated=False)
            self._token = await attempts.run(run)
            self.authentications += 1

    # -- calls ---------------------------------------------------------------
    async def _call(
        self,
        fn: Callable[[_Endpoint], Awaitable[T]],
        idempotent: bool = False,
        patience: float = 0.0,
    ) -> T:
        """Run ``fn(endpoint)`` on the current endpoint.

        A stale token is replaced once and the call repeated. When the endpoint is
        unavailable, the next one becomes current; the call is repeated there when it
        is ``idempotent`` or was certainly not sent (connection refused). Every ``fn``
        passes :meth:`_opts` to its stub call, so gRPC enforces the deadline itself (no
        extra task per call, which the lease tracker would feel). ``patience``: see
        :class:`_Attempts` (the call waits that long for a channel that is reconnecting).
        """
        failover = _Failover.RETRY if idempotent else _Failover.RETRY_UNSENT
        return await _Attempts(self, "a call", failover, patience=patience).run(fn)

    def _opts(self, client: _Endpoint, timeout: float | None = None) -> dict[str, Any]:
        return {
            "timeout": timeout or self.config.command_timeout,
            "metadata": self._metadata(),
        }

    # -- key/value -----------------------------------------------------------
    async def _status_raw(self, client: _Endpoint) -> Any:
        return await client.maintenancestub.Status(
            rpc.StatusRequest(), **self._opts(client, self.config.dial_timeout)
        )

    async def status(self) -> Any:
        return await self._call(self._status_raw, idempotent=True)

    async def get_prefix(
        self,
        prefix: bytes,
        timeout: float | None = None,
        page_size: int = 20_000,
        keys_only: bool = False,
        revision: int = 0,
    ) -> tuple[list[Any], int]:
        """All key-values under ``prefix`` and the revision they were read at.

        With ``revision`` the keys as they were at that revision (a compacted one raises
        at once, with etcd's message).

        Read in pages of ``page_size`` keys, all at the revision of the first page, so
        the result is one consistent snapshot; between pages the event loop runs (a
        dashboard keeps drawing while 100,000 keys arrive) and no single response
        has to hold everything. A compaction between pages starts the read over.
        """
        prefix, end = key_range(prefix)
        deadline = timeout or max(30.0, self.config.command_timeout)
        at = revision
        for _attempt in range(3):
            kvs: list[Any] = []
            revision = at
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

                    async def run(client: _Endpoint, request: Any = request) -> Any:
                        return await client.kvstub.Range(request, **self._opts(client, deadline))

                    response = await self._call(run, idempotent=True)
                    if not revision:
                        revision = int(response.header.revision)
                    kvs.extend(response.kvs)
                    if not response.more or not response.kvs:
                        return kvs, revision
                    start = response.kvs[-1].key + b"\0"
            except RegistryError as exc:
                if "compacted" not in str(exc) or at:
                    raise
        raise RegistryError(f"etcd at {self.endpoint} kept compacting during the snapshot")

    async def get_prefixes(
        self, prefixes: Sequence[bytes], keys_only: bool = False
    ) -> tuple[list[Any], int]:
        """:meth:`get_prefix` of each of ``prefixes``, all at the first one's revision:
        one consistent snapshot of them all."""
        kvs: list[Any] = []
        revision = 0
        for prefix in prefixes:
            more, revision = await self.get_prefix(prefix, keys_only=keys_only, revision=revision)
            kvs.extend(more)
        return kvs, revision

    async def iter_prefix(
        self,
        prefix: bytes,
        page_size: int = 20_000,
        first_page: int = 1_000,
        timeout: float | None = None,
        revision: int = 0,
        keys_only: bool = False,
    ) -> AsyncIterator[tuple[list[Any], int, int, bool]]:
        """The key-values (``keys_only``: keys and leases) under ``prefix`` page by page, in
        key order, all read at the revision of the first page (or at ``revision``): yields
        ``(kvs, revision, total, more)``, ``total`` being how many keys the prefix held at
        that revision.

        The first page is small, so a caller can show something at once. Unlike
        :meth:`get_prefix` a compaction between pages is not retried: it raises
        :class:`RegistryError` (the caller holds part of a snapshot and knows best).
        """
        start, end = key_range(prefix)
        deadline = timeout or max(30.0, self.config.command_timeout)
        limit = first_page
        while True:
            request = rpc.RangeRequest(
                key=start, range_end=end, limit=limit, revision=revision, keys_only=keys_only
            )

            async def run(client: _Endpoint, request: Any = request) -> Any:
                return await client.kvstub.Range(request, **self._opts(client, deadline))

            response = await self._call(run, idempotent=True)
            if not revision:
                revision = int(response.header.revision)
            kvs = list(response.kvs)
            more = bool(response.more and kvs)
            # With a limit, etcd's count is every key in the range, not just this page's.
            yield kvs, revision, int(response.count), more
            if not more:
                return
            start = kvs[-1].key + b"\0"
            limit = page_size

    async def range(self, request: Any, timeout: float | None = None, patience: float = 0.0) -> Any:
        """The raw ``RangeResponse`` to ``request`` (an ``rpc.RangeRequest``); read-only,
        so repeated on the next endpoint when this one is unavailable. ``timeout``
        defaults to the command timeout; ``patience``: see :class:`_Attempts`."""

        async def run(client: _Endpoint) -> Any:
            return await client.kvstub.Range(request, **self._opts(client, timeout))

        return await self._call(run, idempotent=True, patience=patience)

    async def txn(
        self,
        compare: Sequence[Any],
        success: Sequence[Any],
        failure: Sequence[Any] = (),
        timeout: float | None = None,
        patience: float = 0.0,
    ) -> Any:
        """The raw ``TxnResponse`` of one transaction (``rpc.Compare`` and
        ``rpc.RequestOp`` lists); repeated elsewhere only when it was certainly not sent.
        ``patience``: see :class:`_Attempts`."""
        request = rpc.TxnRequest(
            compare=list(compare), success=list(success), failure=list(failure)
        )

        async def run(client: _Endpoint) -> Any:
            return await client.kvstub.Txn(request, **self._opts(client, timeout))

        return await self._call(run, patience=patience)

    async def get(self, key: bytes) -> Any | None:
        async def run(client: _Endpoint) -> Any | None:
            response = await client.kvstub.Range(rpc.RangeRequest(key=key), **self._opts(client))
            return response.kvs[0] if response.kvs else None

        return await self._call(run, idempotent=True)

    async def get_revision(self, key: bytes, revision: int) -> Any | None:
        """``key`` as it was at ``revision`` (None: absent then); a compacted revision
        raises with etcd's message."""

        async def run(client: _Endpoint) -> Any | None:
            request = rpc.RangeRequest(key=key, revision=revision)
            response = await client.kvstub.Range(request, **self._opts(client))
            return response.kvs[0] if response.kvs else None

        return await self._call(run, idempotent=True)

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        async def run(client: _Endpoint) -> int:
            request = rpc.PutRequest(key=key, value=value, lease=lease)
            response = await client.kvstub.Put(request, **self._opts(client))
            return int(response.header.revision)

        return await self._call(run)

    async def delete(self, key: bytes, prefix: bool = False) -> int:
        """Delete a key (or a prefix); returns how many keys went."""

        async def run(client: _Endpoint) -> int:
            range_end = utils.prefix_range_end(key) if prefix else b""
            request = rpc.DeleteRangeRequest(key=key, range_end=range_end)
            response = await client.kvstub.DeleteRange(request, **self._opts(client))
            return int(response.deleted)

        return await self._call(run)

    async def delete_one(self, key: bytes) -> tuple[int, int]:
        """Delete one key; returns (how many went, the revision etcd answered with: that
        of the delete when one went)."""

        async def run(client: _Endpoint) -> tuple[int, int]:
            request = rpc.DeleteRangeRequest(key=key)
            response = await client.kvstub.DeleteRange(request, **self._opts(client))
            return int(response.deleted), int(response.header.revision)

        return await self._call(run)

    async def newest_mod_revision(self, prefix: bytes, revision: int) -> int:
        """The newest ``mod_revision`` of a key under ``prefix`` as of ``revision`` (0:
        none): one key, etcd sorting them (a put there is an event a replay must bring)."""
        key, range_end = key_range(prefix)
        request = rpc.RangeRequest(
            key=key,
            range_end=range_end,
            limit=1,
            revision=revision,
            keys_only=True,
            sort_order=rpc.RangeRequest.DESCEND,
            sort_target=rpc.RangeRequest.MOD,
        )

        async def run(client: _Endpoint) -> Any:
            return await client.kvstub.Range(request, **self._opts(client))

        response = await self._call(run, idempotent=True)
        return int(response.kvs[0].mod_revision) if response.kvs else 0

    async def leases_of(self, keys: list[bytes]) -> tuple[int, dict[bytes, int]]:
        """One read of several keys (a transaction of Ranges, at most :data:`MAX_TXN_OPS`):
        (the revision it read at, the lease of each key present then)."""
        if len(keys) > MAX_TXN_OPS:
            raise ValueError(f"at most {MAX_TXN_OPS} keys in one read, not {len(keys)}")

        async def run(client: _Endpoint) -> tuple[int, dict[bytes, int]]:
            ops = [
                rpc.RequestOp(request_range=rpc.RangeRequest(key=key, keys_only=True))
                for key in keys
            ]
            response = await client.kvstub.Txn(rpc.TxnRequest(success=ops), **self._opts(client))
            found = {
                bytes(kv.key): int(kv.lease)
                for op in response.responses
                for kv in op.response_range.kvs
            }
            return int(response.header.revision), found

        return await self._call(run, idempotent=True)

    async def compact(self, revision: int) -> None:
        async def run(client: _Endpoint) -> None:
            await client.kvstub.Compact(
                rpc.CompactionRequest(revision=revision, physical=True), **self._opts(client)
            )

        await self._call(run)

    async def put_if_absent(self, key: bytes, value: bytes, lease: int = 0) -> tuple[bool, Any]:
        """Put ``key`` only if it does not exist (one transaction).

        Returns ``(True, None)`` when written, else ``(False, kv)`` with the key-value
        that is there (its ``lease`` says who holds it).
        """

        async def run(client: _Endpoint) -> tuple[bool, Any]:
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

        async def run(client: _Endpoint) -> bool:
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

        async def run(client: _Endpoint) -> tuple[int, int]:
            response = await client.leasestub.LeaseGrant(
                rpc.LeaseGrantRequest(TTL=ttl), **self._opts(client)
            )
            if response.error:
                raise RegistryError(f"lease grant failed: {response.error}")
            return int(response.ID), int(response.TTL)

        return await self._call(run)

    async def revoke(self, lease_id: int, patience: float = 0.0) -> int:
        """Revoke a lease (its keys go at once); returns the revision etcd answered with.
        Raises :class:`LeaseNotFound`. ``patience``: see :class:`_Attempts`.

        A revoke that removed keys answers with the revision of their delete (a new
        one); a revoke that removed none answers with the *current* revision, which may
        be that of someone else's delete of the lease's last key. So the answer alone
        proves nothing: compare it with a read taken just before (:meth:`leases_of`)."""

        async def run(client: _Endpoint) -> int:
            response = await client.leasestub.LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=lease_id), **self._opts(client)
            )
            return int(response.header.revision)

        return await self._call(run, patience=patience)

    async def time_to_live(
        self, lease_id: int, keys: bool = False, timeout: float | None = None
    ) -> tuple[int, int, list[bytes]]:
        """(remaining TTL, granted TTL, keys); remaining is -1 for an unknown lease.
        ``timeout`` defaults to the command timeout."""

        async def run(client: _Endpoint) -> tuple[int, int, list[bytes]]:
            response = await client.leasestub.LeaseTimeToLive(
                rpc.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), **self._opts(client, timeout)
            )
            return int(response.TTL), int(response.grantedTTL), list(response.keys)

        return await self._call(run, idempotent=True)

    async def leases(self) -> list[int]:
        async def run(client: _Endpoint) -> list[int]:
            response = await client.leasestub.LeaseLeases(
                rpc.LeaseLeasesRequest(), **self._opts(client)
            )
            return [int(lease.ID) for lease in response.leases]

        return await self._call(run, idempotent=True)

    def keepalive_stream(self) -> KeepAliveStream:
        return KeepAliveStream(self)

    # -- watch ---------------------------------------------------------------
    async def watch(
        self,
        prefix: bytes,
        start_revision: int,
        progress_every: float | None = None,
        prev_kv: bool = False,
        fragment: bool = False,
    ) -> AsyncIterator[Any]:
        """Watch ``prefix`` from ``start_revision``; yields raw ``WatchResponse`` objects.

        The first response is the creation notice (no events). With ``progress_every``,
        once the stream has been quiet that long it asks etcd for a progress
        notification (a response with no events whose header revision says how far the
        watch has come), and again after each further quiet stretch. Raises
        :class:`RevisionCompacted` when ``start_revision`` is gone,
        :class:`WatchRejected` when etcd cancels the watch, and
        :class:`EtcdUnavailable` when the stream breaks; it never ends by itself.
        The stream carries the token current when it opens; a watch refused for a
        stale token is opened again once with a fresh one. A member without a leader
        or out of reach makes the next endpoint current for the next attempt.
        """
        create = _watch_create(prefix, start_revision, prev_kv, fragment)
        attempts = _Attempts(self, "the watch", _Failover.REPORT)
        loop = asyncio.get_running_loop()
        while True:
            ep = await attempts.open()
            # "hasleader": a member cut off from its cluster cancels the watch instead of
            # silently serving a stale view; the next attempt goes to another member.
            call = ep.watchstub.Watch(metadata=(*attempts.metadata(), ("hasleader", "true")))
            heard = [loop.time()]  # when the last response arrived
            asker: asyncio.Task[None] | None = None
            try:
                response = await self._watch_created(call, create, ep.label)
                attempts.commit()
                if progress_every:
                    asker = asyncio.create_task(
                        _ask_progress(call, progress_every, heard), name="watch progress"
                    )
                while True:
                    yield response
                    response = await call.read()
                    heard[0] = loop.time()
                    _check_watch_response(response, ep.label)
            except (Exception, asyncio.CancelledError) as exc:
                failure: BaseException = exc
            finally:
                if asker is not None:
                    asker.cancel()
                call.cancel()
                attempts.close(ep)
            await attempts.again(failure, ep)

    async def _watch_created(self, call: Any, create: Any, label: str) -> Any:
        """Ask etcd to create the watch on ``call``; its first response, checked."""
        timeout = self.config.dial_timeout
        await within(call.write(rpc.WatchRequest(create_request=create)), timeout)
        response = await within(call.read(), timeout + 1)
        _check_watch_response(response, label)
        return response


def _watch_create(prefix: bytes, start_revision: int, prev_kv: bool, fragment: bool) -> Any:
    key, range_end = key_range(prefix)
    return rpc.WatchCreateRequest(
        key=key,
        range_end=range_end,
        start_revision=start_revision,
        progress_notify=True,
        prev_kv=prev_kv,
        # Large responses in pieces of etcd's request size (1.5 MB by default) rather
        # than one message holding every event since start_revision.
        fragment=fragment,
    )


def _check_watch_response(response: Any, label: str) -> None:
    """Raise what a watch response says went wrong (closed, compacted, cancelled)."""
    if response is grpc.aio.EOF:
        raise EtcdUnavailable(f"etcd at {label} closed the watch stream")
    if response.compact_revision:
        raise RevisionCompacted(int(response.compact_revision))
    if response.canceled or (response.created and response.watch_id < 0):
        reason = response.cancel_reason or "watch was not created"
        if is_no_leader(reason):
            raise EtcdUnavailable(f"etcd at {label}: {reason}")
        message = f"etcd at {label} cancelled the watch: {reason}"
        if is_stale_token(reason):  # a watch opened with a stale token is refused this way
            raise _StaleTokenRefusal(message)
        raise WatchRejected(message)


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
    reopens it after a failure (with the token and endpoint current then).
    ``keepalive(lease)`` returns the TTL etcd granted (0 or less: the lease is gone).
    """

    def __init__(self, conn: EtcdConnection) -> None:
        self._conn = conn
        self._attempts = _Attempts(conn, "the keep-alive", _Failover.REPORT)
        self._call: Any = None
        self._ep: _Endpoint | None = None
        self._lock = asyncio.Lock()

    async def keepalive(self, lease_id: int, timeout: float | None = None) -> int:
        """Renew ``lease_id`` once; ``timeout`` (default: the command timeout) bounds the
        write and the read each (a lease with a short TTL needs a shorter one)."""
        timeout = timeout or self._conn.config.command_timeout
        async with self._lock:
            self._attempts.begin()
            while True:
                try:
                    return await self._renew(lease_id, timeout)
                except (Exception, asyncio.CancelledError) as exc:
                    failure: BaseException = exc
                failed_ep = self._ep
                self.close()
                await self._attempts.again(failure, failed_ep)

    async def _renew(self, lease_id: int, timeout: float) -> int:
        if self._call is None:
            self._ep = await self._attempts.open()
            self._call = self._ep.leasestub.LeaseKeepAlive(metadata=self._attempts.metadata())
        assert self._ep is not None
        await within(self._call.write(rpc.LeaseKeepAliveRequest(ID=lease_id)), timeout)
        response = await within(self._call.read(), timeout)
        if response is grpc.aio.EOF:
            raise EtcdUnavailable(f"etcd at {self._ep.label} closed the keep-alive")
        return int(response.TTL)

    def close(self) -> None:
        call, self._call = self._call, None
        ep, self._ep = self._ep, None
        if call is not None:
            call.cancel()
        if ep is not None:
            self._attempts.close(ep)


__all__ = ["EtcdConnection", "KeepAliveStream", "LeaseNotFound"]
