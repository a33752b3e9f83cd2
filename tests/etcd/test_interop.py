"""Interop with etcdctl both ways: what the library writes, etcdctl reads, and vice versa.

Every test runs a real etcd; a RegistryWatcher (and where leases matter a LeaseTracker)
follows the prefix, and each test ends with the watcher's state equal to etcdctl's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator

import aetcd
import pytest
from support.etcdctl import Etcdctl
from support.helpers import (
    WatcherRun,
    assert_matches_etcdctl,
    connection,
    eventually,
    running_watcher,
)

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.leases import LeaseTracker
from etcd_registry_tui.registry.model import ChangeKind
from etcd_registry_tui.registry.registration import ServiceRegistration

PREFIX = "/services/"


@pytest.fixture
async def conn(etcd: EmbeddedEtcd) -> AsyncIterator[EtcdConnection]:
    async with connection(etcd.endpoint) as c:
        yield c


@pytest.fixture
async def watch(conn: EtcdConnection) -> AsyncIterator[WatcherRun]:
    async with running_watcher(conn) as run:
        yield run


@pytest.fixture
async def tracker(conn: EtcdConnection) -> AsyncIterator[LeaseTracker]:
    t = LeaseTracker(conn)
    task = asyncio.create_task(t.run(), name="lease tracker")
    try:
        yield t
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def etcdctl_ttl(etcdctl: Etcdctl, lease: int) -> tuple[int, int]:
    return await asyncio.to_thread(etcdctl.lease_timetolive, lease)


async def tracker_close_to_etcdctl(
    tracker: LeaseTracker, etcdctl: Etcdctl, lease: int, tolerance: float = 1.5
) -> bool:
    """One comparison of the tracker's countdown against ``etcdctl lease timetolive``."""
    ttl, granted = await etcdctl_ttl(etcdctl, lease)
    remaining = tracker.remaining(lease)
    assert remaining is not None, "tracker has no TTL yet"
    assert tracker.granted(lease) == granted
    assert abs(remaining - ttl) <= tolerance, f"tracker {remaining:.2f}s, etcdctl {ttl}s"
    return True


# --------------------------------------------------------------------------------------------
# library -> etcdctl


async def test_registration_is_what_etcdctl_and_dotnet_expect(
    conn: EtcdConnection, watch: WatcherRun, etcdctl: Etcdctl
) -> None:
    reg = ServiceRegistration(
        conn, "OrderShippingService", "http://localhost:5000", ttl=15, instance_id="inst-1"
    )
    async with reg:
        key = b"/services/OrderShippingService/inst-1"
        kvs, _ = etcdctl.get_prefix(PREFIX)
        assert set(kvs) == {key}
        stored = json.loads(kvs[key].value)
        assert stored == {
            "Id": "inst-1",
            "Name": "OrderShippingService",
            "Address": "http://localhost:5000",
        }
        assert list(stored) == ["Id", "Name", "Address"]  # PascalCase, in .NET's order
        assert kvs[key].lease == reg.lease_id != 0

        ttl, granted = etcdctl.lease_timetolive(reg.lease_id)
        assert granted == 15 and 0 < ttl <= 15
        detail = etcdctl.run("lease", "timetolive", "--keys", f"{reg.lease_id:x}")
        assert "OrderShippingService/inst-1" in detail and "granted with TTL(15s)" in detail

        await eventually(lambda: key in watch.state)
        inst = watch.state.get(key)
        assert inst.name == "OrderShippingService" and inst.address == "http://localhost:5000"
        assert inst.declared_id == "inst-1" and not inst.has_problem
        await assert_matches_etcdctl(watch.watcher, etcdctl)
        lease = reg.lease_id

    # unregister: the key goes at once and the lease is revoked
    assert etcdctl.get_prefix(PREFIX).kvs == {}
    assert etcdctl.lease_timetolive(lease) == (-1, 0)
    assert reg.lease_id is None
    await eventually(lambda: key not in watch.state, timeout=5)
    assert watch.state.by_lease == {}
    await assert_matches_etcdctl(watch.watcher, etcdctl)


async def test_registration_through_a_plain_aetcd_client(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    host, port = etcd.endpoint.split(":")
    client = aetcd.Client(host=host, port=int(port))
    reg = ServiceRegistration(
        client, "PaymentService", "http://10.0.0.2:80", ttl=10, extra={"Version": "2.1"}
    )
    try:
        async with reg:
            value = json.loads(etcdctl.get(reg.key) or b"null")
            assert value == {
                "Id": reg.instance_id,
                "Name": "PaymentService",
                "Address": "http://10.0.0.2:80",
                "Version": "2.1",
            }
        assert etcdctl.get(reg.key) is None
    finally:
        await reg.conn.close()
        await client.close()


# --------------------------------------------------------------------------------------------
# etcdctl -> library


async def test_etcdctl_lease_and_put_are_seen_by_watcher_and_tracker(
    watch: WatcherRun, tracker: LeaseTracker, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(40)
    etcdctl.put("/services/Billing/b-1", '{"id": "b-1", "address": "http://b1"}', lease=lease)
    await eventually(lambda: b"/services/Billing/b-1" in watch.state)
    inst = watch.state.get(b"/services/Billing/b-1")
    assert inst.lease == lease and inst.lease_hex == f"{lease:016x}" and inst.address == "http://b1"
    assert watch.state.keys_on_lease(lease) == {b"/services/Billing/b-1"}

    tracker.track(watch.state.leases())
    await eventually(lambda: tracker.remaining(lease) is not None, timeout=5)
    assert tracker.granted(lease) == 40
    await eventually(lambda: tracker_close_to_etcdctl(tracker, etcdctl, lease), timeout=5)
    await assert_matches_etcdctl(watch.watcher, etcdctl)


async def test_etcdctl_keepalive_once_is_seen_by_the_tracker(
    watch: WatcherRun, tracker: LeaseTracker, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(30)
    etcdctl.put("/services/Billing/b-1", "{}", lease=lease)
    await eventually(lambda: lease in watch.state.leases())
    tracker.track(watch.state.leases())
    await eventually(lambda: tracker.remaining(lease) is not None, timeout=5)
    # let the lease run down a little, so a renewal is visible
    await eventually(lambda: tracker.remaining(lease) < 26.5, timeout=10, interval=0.2)
    calls_before = tracker.calls
    old_deadline = tracker.leases[lease].deadline
    assert old_deadline is not None
    ttl_before, _ = etcdctl.lease_timetolive(lease)
    assert ttl_before <= 27

    etcdctl.lease_keepalive_once(lease)
    ttl_after, _ = etcdctl.lease_timetolive(lease)
    assert ttl_after >= 29
    # nobody told the tracker: it must notice by itself within a few seconds (its
    # countdown moves ~3.5 s later, to where etcd's renewed lease now runs out)
    await eventually(
        lambda: tracker.leases[lease].deadline > old_deadline + 2.5,  # type: ignore[operator]
        timeout=8,
        interval=0.1,
    )
    assert tracker.calls > calls_before
    await eventually(lambda: tracker_close_to_etcdctl(tracker, etcdctl, lease), timeout=5)
    await assert_matches_etcdctl(watch.watcher, etcdctl)


async def test_etcdctl_lease_revoke_removes_all_its_keys_together(
    watch: WatcherRun, tracker: LeaseTracker, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    other = etcdctl.lease_grant(60)
    keys = [b"/services/A/1", b"/services/A/2", b"/services/B/1"]
    for key in keys:
        etcdctl.put(key, '{"Id": "x"}', lease=lease)
    etcdctl.put("/services/B/2", '{"Id": "y"}', lease=other)
    etcdctl.put("/services/C/static", '{"Id": "z"}')
    await eventually(lambda: len(watch.state) == 5)
    assert watch.state.keys_on_lease(lease) == set(keys)
    tracker.track(watch.state.leases())
    await eventually(lambda: tracker.remaining(lease) is not None, timeout=5)

    batches_before = len(watch.batches)
    etcdctl.lease_revoke(lease)
    await eventually(lambda: all(k not in watch.state for k in keys), timeout=5)
    assert lease not in watch.state.leases()
    assert set(watch.state.groups) == {"B", "C"}  # group A went with its last key
    # the revocation deletes the keys in one revision and is reported as one batch
    new_batches = watch.batches[batches_before:]
    deletes = [b for b in new_batches if any(c.kind is ChangeKind.DELETE for c in b.changes)]
    assert len(deletes) == 1
    assert sorted(c.key for c in deletes[0].changes) == sorted(keys)
    assert all(c.kind is ChangeKind.DELETE for c in deletes[0].changes)
    assert len({c.revision for c in deletes[0].changes}) == 1

    # the tracker learns the lease is gone
    await eventually(lambda: tracker.remaining(lease) == 0, timeout=10, interval=0.1)
    assert not tracker.leases[lease].exists
    assert tracker.remaining(other) and tracker.remaining(other) > 50  # type: ignore[operator]
    await assert_matches_etcdctl(watch.watcher, etcdctl)


async def test_lease_expiring_without_keepalive(
    watch: WatcherRun, tracker: LeaseTracker, etcdctl: Etcdctl
) -> None:
    ttl = 5  # room for etcdctl, the watcher and the first reading before it runs out
    lease = etcdctl.lease_grant(ttl)
    etcdctl.put("/services/Shortlived/s-1", '{"Id": "s-1"}', lease=lease)
    await eventually(lambda: b"/services/Shortlived/s-1" in watch.state, timeout=ttl)
    tracker.track([lease])
    await eventually(lambda: tracker.remaining(lease) is not None, timeout=ttl)
    assert tracker.granted(lease) == ttl
    await eventually(lambda: b"/services/Shortlived/s-1" not in watch.state, timeout=ttl + 10)
    gone_at = tracker.clock()
    assert watch.state.by_lease == {} and "Shortlived" not in watch.state.groups
    # etcd deletes the keys only after the lease ran out, so the tracker's window for the
    # deadline cannot lie after that moment (it is bounded by whole seconds, not guessed)
    info = tracker.leases[lease]
    assert info.lo is not None and info.lo <= gone_at, (info.lo, info.hi, gone_at)
    # the countdown then reaches 0 (by itself or from a reading), and a reading confirms it:
    # etcd truncates TTLs and expires leases in a 500 ms loop, so allow whole TTLs, not ms
    await eventually(lambda: tracker.remaining(lease) == 0, timeout=ttl + 5)
    await eventually(lambda: not tracker.leases[lease].exists, timeout=ttl + 10)
    assert tracker.ttl(lease) == (0.0, ttl)
    assert etcdctl.lease_timetolive(lease) == (-1, 0)
    await assert_matches_etcdctl(watch.watcher, etcdctl)


# --------------------------------------------------------------------------------------------
# ServiceRegistration heartbeats


class StallWatch:
    """The longest time this process went unscheduled (a thread's oversleep).

    A thread, not a task: it measures a busy machine, not code blocking the event loop.
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._stop.wait(0.05)
            self.worst = max(self.worst, time.monotonic() - started - 0.05)

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_keepalive_keeps_a_short_ttl_alive(
    conn: EtcdConnection, watch: WatcherRun, etcdctl: Etcdctl
) -> None:
    events: list[str] = []
    ttl = 3
    reg = ServiceRegistration(
        conn, "Heartbeat", "http://hb", ttl=ttl, on_event=lambda what, _: events.append(what)
    )
    with StallWatch() as stalls:
        async with reg:
            lease = reg.lease_id
            key = reg.key.encode()
            created = etcdctl.get_prefix(PREFIX).kvs[key].create_revision
            await asyncio.sleep(2.5 * ttl)  # well past two TTLs
            kv = etcdctl.get_prefix(PREFIX).kvs.get(key)
            remaining, granted = await etcdctl_ttl(etcdctl, lease)  # type: ignore[arg-type]
            # Never deleted in between, by etcd's own history: a key that expired and was
            # registered again would have a later create revision (and a delete event).
            deleted = [
                c.revision
                for b in watch.batches
                for c in b.changes
                if c.key == key and c.kind is ChangeKind.DELETE
            ]
            kept = kv is not None and kv.create_revision == created and not deleted
            if not kept and stalls.worst > ttl - ttl / 3 - 0.5:
                pytest.skip(f"this process stalled {stalls.worst:.1f} s: no heartbeat could run")
            assert kv is not None and kv.create_revision == created, (kv, created)
            assert deleted == [], f"the key was deleted at revisions {deleted}"
            assert kv.lease == lease and kv.version == 1
            assert granted == ttl and remaining > 0
            assert reg.lease_id == lease and reg.registrations == 1  # renewed, never replaced
            assert events.count("heartbeat") >= 4 and "lost" not in events
            assert watch.state.get(key).lease == lease  # type: ignore[union-attr]
            await assert_matches_etcdctl(watch.watcher, etcdctl)
    await eventually(lambda: key not in watch.state, timeout=5)
    await assert_matches_etcdctl(watch.watcher, etcdctl)


async def test_paused_heartbeats_let_the_key_expire_and_resume_registers_again(
    conn: EtcdConnection, watch: WatcherRun, etcdctl: Etcdctl
) -> None:
    reg = ServiceRegistration(conn, "Pausable", "http://p", ttl=3)
    async with reg:
        key = reg.key.encode()
        old_lease = reg.lease_id
        await eventually(lambda: key in watch.state, timeout=3)
        reg.pause()
        await eventually(lambda: key not in watch.state, timeout=10, interval=0.1)
        assert etcdctl.get(reg.key) is None
        assert etcdctl.lease_timetolive(old_lease) == (-1, 0)  # type: ignore[arg-type]

        reg.resume()
        await eventually(lambda: key in watch.state, timeout=10, interval=0.1)
        assert reg.lease_id not in (None, old_lease)
        assert watch.state.get(key).lease == reg.lease_id  # type: ignore[union-attr]
        assert reg.registrations == 2
        await assert_matches_etcdctl(watch.watcher, etcdctl)
    assert etcdctl.get(reg.key) is None


async def test_lease_revoked_behind_its_back_is_replaced(
    conn: EtcdConnection, watch: WatcherRun, etcdctl: Etcdctl
) -> None:
    events: list[str] = []
    reg = ServiceRegistration(
        conn, "Resilient", "http://r", ttl=3, on_event=lambda what, _: events.append(what)
    )
    async with reg:
        key = reg.key.encode()
        old_lease = reg.lease_id
        assert old_lease is not None
        await eventually(lambda: key in watch.state, timeout=3)
        etcdctl.lease_revoke(old_lease)
        # the key goes with the lease, then the keep-alive loop puts it back on a new one
        await eventually(lambda: reg.registrations == 2, timeout=10, interval=0.05)
        await eventually(
            lambda: key in watch.state and watch.state.get(key).lease not in (0, old_lease),
            timeout=5,
        )
        assert "lost" in events
        new_lease = reg.lease_id
        assert new_lease is not None and new_lease != old_lease
        kvs, _ = etcdctl.get_prefix(PREFIX)
        assert kvs[key].lease == new_lease
        assert json.loads(kvs[key].value)["Address"] == "http://r"
        assert etcdctl.lease_timetolive(new_lease)[1] == 3
        # the revocation was seen as a delete followed by a fresh create
        kinds = [c.kind for b in watch.batches for c in b.changes if c.key == key]
        assert kinds[-2:] == [ChangeKind.DELETE, ChangeKind.CREATE]
        await assert_matches_etcdctl(watch.watcher, etcdctl)
    assert etcdctl.get(reg.key) is None
    assert etcdctl.lease_timetolive(new_lease) == (-1, 0)


async def test_overloaded_tracker_still_syncs_new_and_expiring_leases_first(
    conn: EtcdConnection, watch: WatcherRun, etcdctl: Etcdctl
) -> None:
    # More leases than the rate allows re-syncing every healthy_interval (a 120-lease
    # round at 20 calls/s takes ~6 s, re-syncs are wanted every second): a lease that
    # appears meanwhile must still get its TTL soon, not after the backlog of healthy ones.
    leases = [lease for lease, _ in await asyncio.gather(*(conn.grant(300) for _ in range(120)))]
    tracker = LeaseTracker(conn, max_rate=20, healthy_interval=1.0)
    task = asyncio.create_task(tracker.run())
    try:
        tracker.track(leases)
        await eventually(lambda: all(tracker.remaining(x) is not None for x in leases), 20)
        await asyncio.sleep(1.5)  # the healthy ones are due again: a backlog builds up
        lease = etcdctl.lease_grant(45)
        etcdctl.put("/services/Late/l-1", '{"Id": "l-1"}', lease=lease)
        await eventually(lambda: lease in watch.state.leases(), timeout=5)
        tracker.track(watch.state.leases())
        await eventually(lambda: tracker.remaining(lease) is not None, timeout=2, interval=0.05)
        await eventually(lambda: tracker_close_to_etcdctl(tracker, etcdctl, lease), timeout=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await assert_matches_etcdctl(watch.watcher, etcdctl)
