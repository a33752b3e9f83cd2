"""RegistryWatcher fault tolerance against real etcd processes.

Crash and restart, a frozen etcd, compaction while the watcher was away, and losing
cluster members. Each test ends with the watcher's state equal to what etcdctl reads
(key -> (value, lease, mod_revision)) and the watcher LIVE again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from support.etcdctl import Etcdctl, EtcdctlError
from support.helpers import (
    WatcherRun,
    assert_matches_etcdctl,
    connection,
    eventually,
    running_watcher,
)

from etcd_registry_tui.demo.embedded import EmbeddedCluster, EmbeddedEtcd, EtcdMember
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import RegistryError
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.model import ChangeKind
from etcd_registry_tui.registry.registration import ServiceRegistration

PREFIX = "/services/"


@pytest.fixture
async def conn(etcd: EmbeddedEtcd) -> AsyncIterator[EtcdConnection]:
    async with connection(etcd.endpoint, dial_timeout=2.0, command_timeout=3.0) as c:
        yield c


def seed(etcdctl: Etcdctl) -> int:
    """A small registry: static keys, keys on a lease, a key outside the prefix."""
    lease = etcdctl.lease_grant(120)
    for n in range(3):
        etcdctl.put(f"/services/Orders/o-{n}", f'{{"Id": "o-{n}", "Address": "http://o{n}"}}')
        etcdctl.put(f"/services/Billing/b-{n}", f'{{"Id": "b-{n}"}}', lease=lease)
    etcdctl.put("/services/Legacy/l-1", "not json")
    etcdctl.put("/elsewhere/x", "ignored")
    return lease


async def wait_state(run: WatcherRun, state: ConnState, timeout: float) -> None:
    await eventually(
        lambda: run.watcher.status.state is state,
        timeout=timeout,
        interval=0.05,
        message=lambda: f"status is {run.watcher.status.describe()}, wanted {state.value}",
    )


async def test_kill_and_restart_with_changes_around_the_outage(
    etcd: EmbeddedEtcd, conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    lease = seed(etcdctl)
    async with running_watcher(conn) as run:
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        # changes right before the crash
        etcdctl.put("/services/Orders/o-0", '{"Id": "o-0", "Address": "http://moved"}')
        etcdctl.put("/services/Orders/o-9", '{"Id": "o-9"}')
        etcdctl.run("del", "/services/Orders/o-1")
        mark = len(run.statuses)
        etcd.kill()

        await wait_state(run, ConnState.RECONNECTING, timeout=10)
        status = run.watcher.status
        assert status.error and etcd.endpoint in status.error  # the outage names the endpoint
        await etcd.astart()
        # changes right after the restart, racing the watcher's reconnect
        etcdctl.put("/services/Orders/o-2", '{"Id": "o-2", "Address": "http://after"}')
        etcdctl.put("/services/NewService/n-1", '{"Id": "n-1"}', lease=lease)
        etcdctl.run("del", "/services/Billing/b-0")
        etcdctl.run("del", "--prefix", "/services/Legacy/")

        await wait_state(run, ConnState.LIVE, timeout=20)
        assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
        view = await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert b"/services/Orders/o-1" not in view and b"/services/NewService/n-1" in view
        assert b"/elsewhere/x" not in run.state
        assert run.state.get(b"/services/Orders/o-2").address == "http://after"
        assert "Legacy" not in run.state.groups
        assert run.watcher.reconnects >= 1
        # the history was still there: it resumed the watch, no reload was needed
        assert run.watcher.snapshots_loaded == 1

        # and it keeps following after the outage
        etcdctl.put("/services/Orders/o-3", "{}")
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)


async def test_long_outage_backs_off_and_recovers(
    etcd: EmbeddedEtcd, conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    seed(etcdctl)
    async with running_watcher(conn, backoff_initial=0.2, backoff_max=1.0) as run:
        mark = len(run.statuses)
        etcd.kill()
        # several failed attempts, each reported with a retry delay
        await eventually(lambda: run.watcher.status.attempt >= 3, timeout=15)
        retries = [s for s in run.statuses[mark:] if s.retry_in is not None]
        assert len(retries) >= 3
        assert all(0 < s.retry_in <= 1.0 * 1.2 for s in retries)  # type: ignore[operator]
        assert all(s.state is ConnState.RECONNECTING for s in retries)
        await etcd.astart()
        etcdctl.put("/services/Orders/after", "{}")
        await wait_state(run, ConnState.LIVE, timeout=20)
        assert run.watcher.status.attempt == 0 and run.watcher.status.error is None
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)


async def test_frozen_etcd_is_detected_and_survived(
    etcd: EmbeddedEtcd, conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    seed(etcdctl)
    async with running_watcher(conn) as run:
        etcdctl.put("/services/Orders/before-freeze", "{}")
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        mark = len(run.statuses)
        frozen_at = time.monotonic()
        etcd.freeze()
        try:
            # nothing breaks the TCP connection: only the keepalive pings can tell
            await wait_state(run, ConnState.RECONNECTING, timeout=16)
            # stay frozen ~16 s in all, so reconnect attempts hit the frozen etcd too
            await asyncio.sleep(max(0.0, 16 - (time.monotonic() - frozen_at)))
            assert run.watcher.status.state is ConnState.RECONNECTING
        finally:
            etcd.thaw()
        etcdctl.put("/services/Orders/after-thaw", "{}")
        etcdctl.run("del", "/services/Orders/o-0")
        await wait_state(run, ConnState.LIVE, timeout=25)
        assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
        view = await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert b"/services/Orders/after-thaw" in view and b"/services/Orders/o-0" not in view


async def test_compaction_while_away_reloads_the_snapshot(
    etcd: EmbeddedEtcd,
    conn: EtcdConnection,
    etcdctl: Etcdctl,
    make_etcdctl: Callable[[str | list[str]], Etcdctl],
) -> None:
    lease = seed(etcdctl)
    etcdctl.put("/services/Orders/unchanged", '{"Id": "u"}')
    async with running_watcher(conn) as run:
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        before = run.state.as_dict()
        unchanged = run.state.get(b"/services/Orders/unchanged")
        assert run.watcher.snapshots_loaded == 1
        mark_batches = len(run.batches)
        mark = len(run.statuses)

        etcd.kill()
        await wait_state(run, ConnState.RECONNECTING, timeout=10)
        # Bring the same data back on another client port, so the watcher cannot reconnect
        # before the history it needs is compacted away.
        aside = EmbeddedEtcd(
            name=etcd.name, data_dir=etcd.data_dir, peer_port=etcd.peer_port, client_port=None
        )
        aside_ctl = make_etcdctl(aside.endpoint)
        await aside.astart()
        try:
            aside_ctl.put("/services/Orders/o-0", '{"Id": "o-0", "Address": "http://new"}')
            aside_ctl.run("del", "/services/Orders/o-1")
            aside_ctl.lease_revoke(lease)  # the Billing keys go with it
            aside_ctl.put("/services/Fresh/f-1", '{"Id": "f-1"}')
            aside_ctl.put("/services/Fresh/f-2", '{"Id": "f-2"}')
            aside_ctl.run("del", "/services/Fresh/f-2")  # created and gone while away
            revision = aside_ctl.get_prefix("/").revision
            aside_ctl.compact(revision, physical=True)
        finally:
            await asyncio.to_thread(aside.stop)
        await etcd.astart()

        await wait_state(run, ConnState.LIVE, timeout=20)
        assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
        view = await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert run.watcher.snapshots_loaded == 2  # it had to reload
        assert run.state.revision >= revision

        # the reload was reported as ordinary changes: exactly the difference
        snapshots = [b for b in run.batches[mark_batches:] if b.snapshot]
        assert len(snapshots) == 1
        changes = {c.key: c for c in snapshots[0].changes}
        expected_kinds = {
            b"/services/Orders/o-0": ChangeKind.UPDATE,
            b"/services/Orders/o-1": ChangeKind.DELETE,
            b"/services/Billing/b-0": ChangeKind.DELETE,
            b"/services/Billing/b-1": ChangeKind.DELETE,
            b"/services/Billing/b-2": ChangeKind.DELETE,
            b"/services/Fresh/f-1": ChangeKind.CREATE,
        }
        assert {k: c.kind for k, c in changes.items()} == expected_kinds
        assert changes[b"/services/Orders/o-0"].previous.address == "http://o0"  # type: ignore[union-attr]
        assert changes[b"/services/Orders/o-0"].instance.address == "http://new"
        assert changes[b"/services/Orders/o-1"].instance.value == before[b"/services/Orders/o-1"][0]
        assert run.state.get(b"/services/Orders/unchanged") is unchanged  # kept as it was
        assert "Billing" not in run.state.groups and lease not in run.state.leases()
        assert set(view) == set(run.state.as_dict())


async def test_compaction_while_watching_is_harmless(
    conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    # Compacting up to the revision the watcher already has must not disturb it.
    seed(etcdctl)
    async with running_watcher(conn) as run:
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        etcdctl.compact(etcdctl.get_prefix("/").revision)
        etcdctl.put("/services/Orders/post-compact", "{}")
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert run.watcher.snapshots_loaded == 1
        assert run.watcher.status.state is ConnState.LIVE


# --------------------------------------------------------------------------------------------
# a 3-member cluster


async def connected_member(
    conn: EtcdConnection, cluster: EmbeddedCluster, etcdctl: Etcdctl
) -> EtcdMember:
    """The member this connection's channel talks to (the watcher shares the channel)."""
    names = {int(m["ID"]): str(m["name"]) for m in etcdctl.member_list()}  # type: ignore[call-overload]
    status = await conn.status()
    return cluster.member(names[int(status.header.member_id)])


async def ctl_retry(etcdctl: Etcdctl, *args: str, lease: int | None = None) -> None:
    """Run an etcdctl command, retrying while the cluster elects a new leader."""

    def attempt() -> bool:
        try:
            if args[0] == "put":
                etcdctl.put(args[1], args[2], lease=lease)
            else:
                etcdctl.run(*args)
        except EtcdctlError:
            return False
        return True

    await eventually(lambda: asyncio.to_thread(attempt), timeout=30, interval=0.2)


async def test_cluster_members_going_away_one_at_a_time(
    etcd_cluster: EmbeddedCluster,
    cluster_etcdctl: Etcdctl,
    make_etcdctl: Callable[[str | list[str]], Etcdctl],
) -> None:
    etcdctl = cluster_etcdctl
    lease = seed(etcdctl)
    async with (
        connection(etcd_cluster.endpoints, dial_timeout=2.0, command_timeout=3.0) as conn,
        running_watcher(conn) as run,
    ):
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        killed: list[str] = []
        for round_ in range(2):
            member = await connected_member(conn, etcd_cluster, etcdctl)
            assert member.name not in killed[-1:], "still on the member killed last round"
            etcdctl.put(f"/services/Round/before-{round_}", "{}")
            mark = len(run.statuses)
            member.kill()
            killed.append(member.name)
            # the other two still have a quorum: changes keep coming (through them)
            alive = make_etcdctl([m.endpoint for m in etcd_cluster.members if m.is_running])
            await ctl_retry(alive, "put", f"/services/Round/during-{round_}", "{}", lease=lease)
            await ctl_retry(alive, "del", f"/services/Orders/o-{round_}")
            view = await assert_matches_etcdctl(run.watcher, alive, PREFIX, timeout=30)
            assert f"/services/Round/during-{round_}".encode() in view
            assert f"/services/Orders/o-{round_}".encode() not in view
            await wait_state(run, ConnState.LIVE, timeout=20)
            assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
            now_on = await connected_member(conn, etcd_cluster, alive)
            assert now_on.name != member.name
            await member.astart(30)  # back before the next one goes
        assert len(set(killed)) >= 2
        await ctl_retry(etcdctl, "put", "/services/Round/final", "{}")
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert run.watcher.snapshots_loaded == 1
        assert run.watcher.status.state is ConnState.LIVE


async def test_member_cut_off_from_its_quorum_does_not_serve_a_stale_view(
    etcd_cluster: EmbeddedCluster,
    cluster_etcdctl: Etcdctl,
) -> None:
    """Watching one member whose two peers freeze: without a leader it cannot know the
    newest data, so the watch must not stay LIVE (the watch requires a leader)."""
    etcdctl = cluster_etcdctl
    seed(etcdctl)
    lonely, *others = etcd_cluster.members
    async with (
        connection([lonely.endpoint], dial_timeout=2.0, command_timeout=3.0) as conn,
        running_watcher(conn) as run,
    ):
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        mark = len(run.statuses)
        for member in others:
            member.freeze()
        try:
            await eventually(
                lambda: run.saw(ConnState.RECONNECTING, since=mark),
                timeout=30,
                message="the watch stayed LIVE on a member without a leader",
            )
        finally:
            for member in others:
                member.thaw()
        await ctl_retry(etcdctl, "put", "/services/Quorum/back", "{}")
        await wait_state(run, ConnState.LIVE, timeout=30)
        view = await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX, timeout=30)
        assert b"/services/Quorum/back" in view


# --------------------------------------------------------------------------------------------
# soaks (run with --soak)


@pytest.mark.soak
async def test_soak_frozen_cluster_member(
    etcd_cluster: EmbeddedCluster,
    cluster_etcdctl: Etcdctl,
    make_etcdctl: Callable[[str | list[str]], Etcdctl],
) -> None:
    etcdctl = cluster_etcdctl
    seed(etcdctl)
    async with (
        connection(etcd_cluster.endpoints, dial_timeout=2.0, command_timeout=3.0) as conn,
        running_watcher(conn) as run,
    ):
        member = await connected_member(conn, etcd_cluster, etcdctl)
        mark = len(run.statuses)
        member.freeze()
        try:
            alive = make_etcdctl([m.endpoint for m in etcd_cluster.members if m is not member])
            for n in range(20):
                await ctl_retry(alive, "put", f"/services/Frozen/f-{n}", "{}")
                await asyncio.sleep(0.5)
            await wait_state(run, ConnState.LIVE, timeout=30)
            await assert_matches_etcdctl(run.watcher, alive, PREFIX, timeout=30)
            assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
        finally:
            member.thaw()
        await ctl_retry(etcdctl, "put", "/services/Frozen/after", "{}")
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX, timeout=30)


@pytest.mark.soak
async def test_soak_repeated_crashes_under_write_load(
    etcd: EmbeddedEtcd, conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    seed(etcdctl)
    async with (
        connection(etcd.endpoint, dial_timeout=1.0, command_timeout=2.0) as writer_conn,
        running_watcher(conn) as run,
    ):
        stop = asyncio.Event()
        written = 0

        async def writer() -> None:
            nonlocal written
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if n % 5 == 0:
                        await writer_conn.delete(f"/services/Load/k-{(n - 3) % 50}".encode())
                    else:
                        await writer_conn.put(
                            f"/services/Load/k-{n % 50}".encode(), str(n).encode()
                        )
                    written += 1
                except RegistryError:  # etcd is down half of the time here
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(writer())
        try:
            for cycle in range(10):
                await asyncio.sleep(1.0)
                etcd.kill()
                await asyncio.sleep(0.5 + (cycle % 3) * 0.5)
                await etcd.astart()
                if cycle % 3 == 2:
                    etcdctl.compact(etcdctl.get_prefix("/").revision)
        finally:
            stop.set()
            await task
        assert written > 0
        await wait_state(run, ConnState.LIVE, timeout=30)
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX, timeout=30)


# --------------------------------------------------------------------------------------------
# auth tokens and registrations across restarts


async def test_restart_of_an_auth_enabled_etcd(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, make_etcdctl: Callable[[str | list[str]], Etcdctl]
) -> None:
    # etcd's simple auth tokens live in memory: after a restart the watcher's token is
    # unknown to etcd and it must authenticate again by itself.
    etcdctl.run("user", "add", "root:pw")
    etcdctl.run("auth", "enable")
    authed = make_etcdctl(etcd.endpoint)
    authed.env = {**authed.env, "ETCDCTL_USER": "root:pw"}
    seed(authed)
    async with (
        connection(etcd.endpoint, user="root", password="pw", dial_timeout=2.0) as conn,
        running_watcher(conn) as run,
    ):
        await assert_matches_etcdctl(run.watcher, authed, PREFIX)
        mark = len(run.statuses)
        etcd.kill()
        await wait_state(run, ConnState.RECONNECTING, timeout=10)
        await etcd.astart()
        authed.put("/services/Orders/after-restart", "{}")
        await wait_state(run, ConnState.LIVE, timeout=20)
        assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
        await assert_matches_etcdctl(run.watcher, authed, PREFIX)
        # and plain calls on the same connection work again too
        await conn.put(b"/services/Orders/via-conn", b"{}")
        await assert_matches_etcdctl(run.watcher, authed, PREFIX)


async def test_registration_survives_an_etcd_restart(
    etcd: EmbeddedEtcd, conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    events: list[str] = []
    reg = ServiceRegistration(
        conn, "Survivor", "http://s", ttl=5, on_event=lambda what, _: events.append(what)
    )
    async with running_watcher(conn) as run, reg:
        lease = reg.lease_id
        key = reg.key.encode()
        await eventually(lambda: key in run.state, timeout=5)
        etcd.kill()
        await wait_state(run, ConnState.RECONNECTING, timeout=10)
        await asyncio.sleep(2)  # heartbeats fail meanwhile
        await etcd.astart()
        await wait_state(run, ConnState.LIVE, timeout=20)
        # heartbeats resume on the same lease (etcd extends leases on restart)
        beats = events.count("heartbeat")
        await eventually(lambda: events.count("heartbeat") > beats + 1, timeout=10)
        assert "error" in events
        assert reg.lease_id == lease and reg.registrations == 1
        ttl, granted = etcdctl.lease_timetolive(lease)  # type: ignore[arg-type]
        assert granted == 5 and ttl > 0
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert run.state.get(key).lease == lease  # type: ignore[union-attr]
    assert etcdctl.get(reg.key) is None
