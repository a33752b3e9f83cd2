"""Campaign in an etcd election the way Go's ``concurrency.Election`` and ``etcdctl elect`` do.

The candidate key is ``NAME/<lease id in %x>`` bound to the candidate's lease and put
only if absent; the candidate leads once every key under ``NAME/`` with a lower
CreateRevision is gone. So a Python service, an ``etcdctl elect`` and a Go program can
stand in the same election::

    election = Election(conn, "/elections/migrations")
    async with election.campaign("instance-1") as leadership:
        await run_migrations(stop=leadership.lost)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aetcd import rpc, utils

from .connection import EtcdConnection
from .errors import RegistryError

log = logging.getLogger(__name__)

_DELETE = 1  # mvccpb.Event.DELETE


class LeadershipLost(RegistryError):
    hint = "the candidate's lease ended or its key was deleted"


class Leadership:
    """Held while leading: ``lost`` is set when the lease ends or the key goes."""

    def __init__(self, election: Election, key: bytes, lease: int, create_revision: int) -> None:
        self.election = election
        self.key = key
        self.lease = lease
        self.create_revision = create_revision
        self.lost = asyncio.Event()
        self.reason: str | None = None

    @property
    def is_leader(self) -> bool:
        return not self.lost.is_set()

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            log.info("leadership of %s lost: %s", self.election.name, reason)
            self.lost.set()

    async def proclaim(self, value: str | bytes) -> None:
        """Change the leader's value, guarded on still being the same candidate key."""
        data = value.encode() if isinstance(value, str) else value
        ok = await self.election._txn(
            [_compare_create(self.key, self.create_revision)],
            [rpc.RequestOp(request_put=rpc.PutRequest(key=self.key, value=data, lease=self.lease))],
        )
        if not ok:
            self._lose("the candidate key was replaced or deleted")
            raise LeadershipLost(f"cannot proclaim in {self.election.name}: no longer the leader")


def _compare_create(key: bytes, create_revision: int) -> Any:
    return rpc.Compare(
        key=key,
        target=rpc.Compare.CREATE,
        result=rpc.Compare.EQUAL,
        create_revision=create_revision,
    )


class Election:
    """One election (or lock) named ``name``; see the module docstring."""

    def __init__(self, conn: EtcdConnection, name: str) -> None:
        if not name or name.endswith("/"):
            raise RegistryError(f"election name {name!r} must be non-empty and not end in '/'")
        self.conn = conn
        self.name = name
        self.prefix = name.encode() + b"/"

    def key_for(self, lease: int) -> bytes:
        return self.prefix + format(lease, "x").encode()

    # -- raw operations ---------------------------------------------------------
    async def _txn(self, compare: list[Any], success: list[Any], failure: list[Any] = ()) -> bool:  # type: ignore[assignment]
        return bool((await self._txn_raw(compare, success, list(failure))).succeeded)

    async def _txn_raw(self, compare: list[Any], success: list[Any], failure: list[Any]) -> Any:
        request = rpc.TxnRequest(compare=compare, success=success, failure=failure)

        async def run(client: Any) -> Any:
            return await client.kvstub.Txn(request, **self.conn._opts(client))

        return await self.conn._call(run)

    async def _range(self, **kwargs: Any) -> Any:
        request = rpc.RangeRequest(**kwargs)

        async def run(client: Any) -> Any:
            return await client.kvstub.Range(request, **self.conn._opts(client))

        return await self.conn._call(run)

    async def candidates(self) -> list[Any]:
        """The raw key-values under ``NAME/`` in queue order (the leader first)."""
        response = await self._range(
            key=self.prefix,
            range_end=utils.prefix_range_end(self.prefix),
            sort_order=rpc.RangeRequest.ASCEND,
            sort_target=rpc.RangeRequest.CREATE,
        )
        return list(response.kvs)

    async def leader(self) -> Any | None:
        kvs = await self.candidates()
        return kvs[0] if kvs else None

    # -- campaigning --------------------------------------------------------------
    async def _enter(self, value: bytes, lease: int) -> tuple[bytes, int]:
        """Put our key if absent; returns (key, its CreateRevision)."""
        key = self.key_for(lease)
        response = await self._txn_raw(
            [_compare_create(key, 0)],
            [rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))],
            [rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        )
        if response.succeeded:
            return key, int(response.header.revision)
        kv = response.responses[0].response_range.kvs[0]
        if kv.value != value:
            await self._txn(
                [_compare_create(key, kv.create_revision)],
                [rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))],
            )
        return key, int(kv.create_revision)

    async def _wait_deletes(self, create_revision: int) -> None:
        """Wait until no key under the prefix was created before ``create_revision``."""
        while True:
            response = await self._range(
                key=self.prefix,
                range_end=utils.prefix_range_end(self.prefix),
                max_create_revision=create_revision - 1,
                sort_order=rpc.RangeRequest.DESCEND,
                sort_target=rpc.RangeRequest.CREATE,
                limit=1,
            )
            if not response.kvs:
                return
            await self._wait_delete(response.kvs[0].key, int(response.header.revision))

    async def _wait_delete(self, key: bytes, revision: int) -> None:
        async for response in self.conn.watch(key, revision + 1):
            for event in response.events:
                if event.type == _DELETE and event.kv.key == key:
                    return

    @contextlib.asynccontextmanager
    async def campaign(
        self, value: str | bytes, ttl: int = 60, resign_on_exit: bool = True
    ) -> AsyncIterator[Leadership]:
        """Wait until elected; keep the lease alive while leading; resign on exit.

        Etcd trouble while waiting is retried; the lease is revoked on every way out.
        """
        data = value.encode() if isinstance(value, str) else value
        lease, granted = await self.conn.grant(ttl)
        stream = self.conn.keepalive_stream()
        leadership: Leadership | None = None
        keeper = asyncio.create_task(
            self._keep_alive(stream, lease, granted, lambda: leadership),
            name=f"election keep-alive {self.name}",
        )
        watcher: asyncio.Task[None] | None = None
        try:
            key, create_revision = await self._enter(data, lease)
            await self._wait_deletes(create_revision)
            kv = (await self._range(key=key)).kvs
            if not kv or kv[0].create_revision != create_revision:
                raise LeadershipLost(f"lost the campaign in {self.name}: the candidate key went")
            leadership = Leadership(self, key, lease, create_revision)
            if keeper.done():
                leadership._lose("the lease ended while campaigning")
            watcher = asyncio.create_task(self._watch_own(leadership), name=f"leader {self.name}")
            yield leadership
        finally:
            for task in (keeper, watcher):
                if task is not None:
                    task.cancel()
            stream.close()
            await asyncio.gather(*(t for t in (keeper, watcher) if t), return_exceptions=True)
            if resign_on_exit:
                await self._resign(lease, leadership)

    async def _resign(self, lease: int, leadership: Leadership | None) -> None:
        """Delete our key (guarded on its CreateRevision), then revoke the lease."""
        with contextlib.suppress(RegistryError):
            if leadership is not None:
                await self._txn(
                    [_compare_create(leadership.key, leadership.create_revision)],
                    [
                        rpc.RequestOp(
                            request_delete_range=rpc.DeleteRangeRequest(key=leadership.key)
                        )
                    ],
                )
        with contextlib.suppress(RegistryError):
            await self.conn.revoke(lease)

    async def _keep_alive(
        self, stream: Any, lease: int, granted: int, current: Any, failures: int = 0
    ) -> None:
        interval = max(0.5, granted / 3)
        while True:
            try:
                ttl = await stream.keepalive(lease)
            except RegistryError as exc:
                failures += 1
                log.warning("keep-alive of election %s failed: %s", self.name, exc)
                await asyncio.sleep(min(interval, 0.5 * 2 ** min(failures, 4)))
                continue
            if ttl <= 0:
                leadership = current()
                if leadership is not None:
                    leadership._lose("the lease ended")
                return
            failures = 0
            await asyncio.sleep(interval)

    async def _watch_own(self, leadership: Leadership) -> None:
        while not leadership.lost.is_set():
            try:
                kvs = (await self._range(key=leadership.key)).kvs
                if not kvs or kvs[0].create_revision != leadership.create_revision:
                    leadership._lose("the candidate key was deleted")
                    return
                revision = int(kvs[0].mod_revision)
                async for response in self.conn.watch(leadership.key, revision + 1):
                    for event in response.events:
                        if event.kv.key == leadership.key and event.type == _DELETE:
                            leadership._lose("the candidate key was deleted")
                            return
            except RegistryError as exc:
                log.info("watching own key of %s: %s", self.name, exc)
                await asyncio.sleep(1.0)
