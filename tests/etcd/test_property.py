"""Property tests: random put/delete/lease sequences against real etcd.

Whatever happens under the prefix, the watcher's state must converge to what etcd holds,
and so must the stream of changes the tree consumes (replayed into a mirror that refuses a
PUT of a key it holds, or an UPDATE/DELETE of one it does not: a change lost or shown
twice fails). Faults are interleaved with the operations: the watcher's connection is cut
(it resumes from its revision), or etcd is compacted past it first (it reloads the snapshot
and reports the difference as ordinary changes). One etcd serves a whole test function;
every example works under its own sub-prefix, with its own watcher (started before, during
or after the operations).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.etcdctl import Etcdctl
from support.helpers import View, conn_view, connection, describe_diff, etcdctl_view, eventually

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import LeaseNotFound
from etcd_registry_tui.registry.events import ChangeBatch
from etcd_registry_tui.registry.model import UNRECOGNISED, ChangeKind, Instance, RegistryState
from etcd_registry_tui.registry.watcher import RegistryWatcher

SHORT_TTL = 2  # etcd's minimum lease TTL with default election settings

# Keys below the example's prefix: good ones and every odd shape the model copes with.
KEYS = [
    b"Orders/a",
    b"Orders/b",
    b"Billing/a",
    b"Billing/b",
    b"Billing/\xff\xfe",  # not UTF-8
    b"deep/x/y",  # three levels
    b"toplevel",  # directly under the prefix
    b"Orders/",  # empty id
    b"/empty-service",  # empty service name
]

VALUES = st.one_of(
    st.sampled_from([b'{"Id": "a", "Address": "http://a"}', b"", b"not json", b"[1, 2]"]),
    st.builds(
        lambda i, a: json.dumps({"Id": i, "Address": a}).encode(),
        st.text(max_size=6),
        st.text(max_size=10),
    ),
    st.binary(max_size=24),
)

key_index = st.integers(0, len(KEYS) - 1)
lease_index = st.integers(0, 3)

# Without "expire" (which costs a lease TTL of waiting per example) ...
QUICK_OPERATION = st.one_of(
    st.tuples(st.just("put"), key_index, VALUES),
    st.tuples(st.just("put"), key_index, VALUES),
    st.tuples(st.just("delete"), key_index),
    st.tuples(st.just("delete_service"), st.sampled_from([b"Orders/", b"Billing/"])),
    st.tuples(st.just("grant"), st.integers(30, 90)),
    st.tuples(st.just("put_lease"), key_index, VALUES, lease_index),
    st.tuples(st.just("put_lease"), key_index, VALUES, lease_index),
    st.tuples(st.just("revoke"), lease_index),
)
# ... and with it.
OPERATION = st.one_of(QUICK_OPERATION, st.tuples(st.just("expire"), key_index, VALUES))
# Faults, interleaved with the operations once the watcher runs.
FAULT = st.one_of(st.tuples(st.just("cut")), st.tuples(st.just("compact_cut")))
WITH_FAULTS = st.one_of(QUICK_OPERATION, QUICK_OPERATION, FAULT)

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@pytest.fixture
async def conn(etcd: EmbeddedEtcd) -> AsyncIterator[EtcdConnection]:
    async with connection(etcd.endpoint) as c:
        yield c


class Runner:
    """Executes operations for one example under ``prefix``."""

    def __init__(
        self, conn: EtcdConnection, prefix: str, watcher_conn: EtcdConnection | None = None
    ) -> None:
        self.conn = conn
        self.watcher_conn = watcher_conn
        self.faults = 0
        # A burst runs its operations at once: two compactions must not race for one revision.
        self._compacting = asyncio.Lock()
        self.prefix = prefix.encode()
        self.leases: list[int] = []
        self.short_leases: list[int] = []

    def key(self, index: int) -> bytes:
        return self.prefix + KEYS[index]

    async def lease(self, index: int) -> int:
        if not self.leases:
            self.leases.append((await self.conn.grant(60))[0])
        return self.leases[index % len(self.leases)]

    async def apply(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        try:
            if kind == "put":
                await self.conn.put(self.key(op[1]), op[2])
            elif kind == "delete":
                await self.conn.delete(self.key(op[1]))
            elif kind == "delete_service":
                await self.conn.delete(self.prefix + op[1], prefix=True)
            elif kind == "grant":
                self.leases.append((await self.conn.grant(op[1]))[0])
            elif kind == "put_lease":
                await self.conn.put(self.key(op[1]), op[2], lease=await self.lease(op[3]))
            elif kind == "revoke":
                await self.conn.revoke(await self.lease(op[1]))
            elif kind in ("cut", "compact_cut"):
                if self.watcher_conn is None:
                    return  # before the watcher starts: nothing to cut
                if kind == "compact_cut":
                    # A write outside the prefix first: the revision to compact is always
                    # new (a second compaction at an already compacted one is refused).
                    async with self._compacting:
                        await self.conn.put(b"/prop-compaction-mark", b"")
                        revision = int((await self.conn.status()).header.revision)
                        await self.conn.compact(revision)
                await self.watcher_conn.close()  # its streams end; it reconnects by itself
                self.faults += 1
            elif kind == "expire":
                lease, _ = await self.conn.grant(SHORT_TTL)
                self.short_leases.append(lease)
                await self.conn.put(self.key(op[1]), op[2], lease=lease)
            else:  # pragma: no cover
                raise AssertionError(kind)
        except LeaseNotFound:
            pass  # revoked twice, or a put on a revoked lease: etcd said no, fine

    async def wait_expired(self) -> None:
        """Wait until every short lease has run out (bounded)."""
        for lease in self.short_leases:
            await eventually(
                lambda lease=lease: self._gone(lease), timeout=SHORT_TTL + 8, interval=0.1
            )

    async def _gone(self, lease: int) -> bool:
        return (await self.conn.time_to_live(lease))[0] == -1

    async def cleanup(self) -> None:
        await self.conn.delete(self.prefix, prefix=True)
        for lease in self.leases:
            with contextlib.suppress(LeaseNotFound):
                await self.conn.revoke(lease)


def check_indexes(state: RegistryState) -> None:
    """The by-lease and by-group indexes agree with the instances."""
    by_lease: dict[int, set[bytes]] = {}
    for key, inst in state.instances.items():
        if inst.lease:
            by_lease.setdefault(inst.lease, set()).add(key)
    assert state.by_lease == by_lease
    grouped = {k: g.name for g in state.groups.values() for k in g.instances}
    assert grouped == {k: i.group for k, i in state.instances.items()}
    assert all(g.instances for g in state.groups.values()), "an empty group was left behind"
    assert all(
        (i.group == UNRECOGNISED) == (i.key_error is not None) for i in state.instances.values()
    )


class Mirror:
    """The change stream replayed as the tree consumes it, checked as it goes."""

    def __init__(self) -> None:
        self.instances: dict[bytes, Instance] = {}
        self.errors: list[str] = []
        self.batches = 0

    def on_batch(self, batch: ChangeBatch) -> None:
        self.batches += 1
        for change in batch.changes:
            key, held = change.key, change.key in self.instances
            if change.kind is ChangeKind.CREATE and held:
                self.errors.append(f"PUT of {key!r}, already shown (rev {change.revision})")
            elif change.kind is not ChangeKind.CREATE and not held:
                self.errors.append(f"{change.kind} of {key!r}, never shown")
            if change.kind is ChangeKind.DELETE:
                self.instances.pop(key, None)
            else:
                self.instances[key] = change.instance

    def as_dict(self) -> View:
        return {k: (i.value, i.lease, i.mod_revision) for k, i in self.instances.items()}


@contextlib.asynccontextmanager
async def watcher_on(
    conn: EtcdConnection, prefix: str, mirror: Mirror | None = None
) -> AsyncIterator[RegistryWatcher]:
    on_batch = mirror.on_batch if mirror is not None else (lambda _: None)
    watcher = RegistryWatcher(conn, on_batch=on_batch, prefix=prefix, backoff_initial=0.05)
    task = asyncio.create_task(watcher.run())
    try:
        await watcher.wait_live(15)
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def converged(watcher: RegistryWatcher, conn: EtcdConnection, prefix: str) -> View:
    """Wait until the watcher equals a fresh Range of the prefix; return that view."""
    seen: dict[str, View] = {}

    async def equal() -> bool:
        seen["etcd"], revision = await conn_view(conn, prefix)
        seen["watcher"] = watcher.state.as_dict()
        return seen["watcher"] == seen["etcd"] and watcher.state.revision <= revision

    await eventually(
        equal,
        timeout=15,
        interval=0.05,
        message=lambda: describe_diff(seen.get("watcher", {}), seen.get("etcd", {})),
    )
    return seen["etcd"]


async def run_example(
    conn: EtcdConnection,
    etcdctl: Etcdctl,
    ops: list[tuple[Any, ...]],
    watch_from: float,
    burst: bool,
) -> None:
    prefix = f"/prop/{uuid.uuid4().hex[:10]}/"
    # The watcher has a connection of its own: a fault cuts it, not the writer's.
    watcher_conn = EtcdConnection(conn.config)
    runner = Runner(conn, prefix)
    mirror = Mirror()
    split = round(watch_from * len(ops))  # ops before the watcher starts (snapshot part)
    try:
        for op in ops[:split]:
            await runner.apply(op)
        async with watcher_on(watcher_conn, prefix, mirror) as watcher:
            runner.watcher_conn = watcher_conn
            rest = ops[split:]
            if burst:  # several writers at once: etcd orders them, the watcher must follow
                for start in range(0, len(rest), 3):
                    await asyncio.gather(*(runner.apply(op) for op in rest[start : start + 3]))
            else:
                for op in rest:
                    await runner.apply(op)
            await runner.wait_expired()
            if runner.faults:  # the cut was noticed: a reconnect, or a reload after compaction
                await eventually(
                    lambda: watcher.reconnects + watcher.snapshots_loaded > 1, timeout=15
                )
            view = await converged(watcher, conn, prefix)
            check_indexes(watcher.state)
            assert etcdctl_view(etcdctl, prefix) == view
            # The stream the tree consumes says the same, with nothing lost or doubled.
            assert mirror.errors == []
            assert mirror.as_dict() == view, describe_diff(mirror.as_dict(), view)
            for lease in runner.short_leases:
                assert lease not in watcher.state.leases()
    finally:
        await runner.cleanup()
        await watcher_conn.close()


@settings(max_examples=15, **SETTINGS)  # type: ignore[arg-type]
@given(
    ops=st.lists(QUICK_OPERATION, min_size=1, max_size=16),
    watch_from=st.floats(0, 1),
    burst=st.booleans(),
)
async def test_watcher_converges_to_etcd(
    conn: EtcdConnection,
    etcdctl: Etcdctl,
    ops: list[tuple[Any, ...]],
    watch_from: float,
    burst: bool,
) -> None:
    await run_example(conn, etcdctl, ops, watch_from, burst)


@settings(max_examples=8, **SETTINGS)  # type: ignore[arg-type]
@given(
    ops=st.lists(OPERATION, min_size=1, max_size=12),
    watch_from=st.floats(0, 1),
    burst=st.booleans(),
)
async def test_watcher_converges_to_etcd_with_expiring_leases(
    conn: EtcdConnection,
    etcdctl: Etcdctl,
    ops: list[tuple[Any, ...]],
    watch_from: float,
    burst: bool,
) -> None:
    await run_example(conn, etcdctl, ops, watch_from, burst)


async def test_many_examples_share_one_etcd_without_leaking(
    conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    # The property test cleans up after each example; a watcher on the whole /prop/ tree
    # sees what is left: nothing, once cleanup ran.
    prefix = f"/prop/{uuid.uuid4().hex[:10]}/"
    runner = Runner(conn, prefix)
    async with watcher_on(conn, "/prop/") as watcher:
        for n in range(5):
            await runner.apply(("put_lease", n, b"{}", n))
        await converged(watcher, conn, "/prop/")
        assert len(watcher.state) == 5
        await runner.cleanup()
        assert await converged(watcher, conn, "/prop/") == {}
        assert etcdctl_view(etcdctl, "/prop/") == {}


@settings(max_examples=10, **SETTINGS)  # type: ignore[arg-type]
@given(
    ops=st.lists(WITH_FAULTS, min_size=2, max_size=16),
    watch_from=st.floats(0, 0.5),
    burst=st.booleans(),
)
async def test_change_stream_survives_cuts_and_compactions(
    conn: EtcdConnection,
    etcdctl: Etcdctl,
    ops: list[tuple[Any, ...]],
    watch_from: float,
    burst: bool,
) -> None:
    await run_example(conn, etcdctl, ops, watch_from, burst)
