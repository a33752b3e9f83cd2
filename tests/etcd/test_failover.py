"""Several endpoints: fail-over past a frozen member, TLS with several endpoints, and
endpoint lists mixing IPv4, IPv6 and names. Real etcd processes throughout; etcdctl is the
independent view the watcher must end equal to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
from support.cluster_helpers import (
    PartitionableCluster,
    TlsEtcdctl,
    have_openssl,
    ipv6_loopback_works,
    relay,
    tls_cluster,
)
from support.etcdctl import Etcdctl, EtcdctlError, require_etcd
from support.helpers import (
    WatcherRun,
    assert_matches_etcdctl,
    connection,
    eventually,
    running_watcher,
)

from etcd_registry_tui.demo.embedded import (
    ClientTls,
    EmbeddedCluster,
    EmbeddedEtcd,
    EtcdMember,
    free_ports,
)
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import EtcdUnavailable
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.registration import ServiceRegistration

PREFIX = "/services/"
MakeEtcdctl = Callable[[str | Sequence[str]], Etcdctl]
needs_openssl = pytest.mark.skipif(not have_openssl(), reason="needs openssl")
needs_ipv6 = pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback (::1)")


async def member_of(conn: EtcdConnection, members: list[EtcdMember], etcdctl: Etcdctl) -> str:
    """The name of the member the connection's calls go to now."""
    names = {int(m["ID"]): str(m["name"]) for m in etcdctl.member_list()}  # type: ignore[call-overload]
    status = await conn.status()
    return names[int(status.header.member_id)]


async def ctl_retry(etcdctl: Etcdctl, *args: str) -> None:
    """Run an etcdctl command, retrying while the cluster elects a new leader."""

    def attempt() -> bool:
        try:
            etcdctl.run(*args)
        except EtcdctlError:
            return False
        return True

    await eventually(lambda: asyncio.to_thread(attempt), timeout=30, interval=0.2)


async def wait_live(run: WatcherRun, timeout: float = 40) -> None:
    await eventually(
        lambda: run.watcher.status.state is ConnState.LIVE,
        timeout=timeout,
        message=lambda: f"status is {run.watcher.status.describe()}",
    )


async def frozen_first_member_is_survived(
    conn: EtcdConnection, cluster: EmbeddedCluster, etcdctl: Etcdctl, alive: Etcdctl
) -> None:
    """Watcher + registration on ``conn``; freeze the first member; both carry on through
    the others, and the watcher ends equal to etcdctl."""
    first = cluster.members[0]
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
    assert await member_of(conn, cluster.members, etcdctl) == first.name  # listed first
    async with (
        running_watcher(conn) as run,
        ServiceRegistration(conn, "Failover", "http://f:1", ttl=10) as reg,
    ):
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        mark = len(run.statuses)
        first.freeze()
        try:
            await ctl_retry(alive, "put", "/services/Orders/during", '{"Id": "during"}')
            await ctl_retry(alive, "del", "/services/Orders/o-1")
            await wait_live(run)
            view = await assert_matches_etcdctl(run.watcher, alive, PREFIX, timeout=40)
            assert b"/services/Orders/during" in view and b"/services/Orders/o-1" not in view
            assert run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark)
            assert await member_of(conn, cluster.members, alive) != first.name
            # calls work through the others; the registration's key is (still or again) there
            await conn.put(b"/services/Orders/by-conn", b'{"Id": "by-conn"}')
            await eventually(
                lambda: (
                    reg.key.encode() in run.state.as_dict()
                    and run.state.as_dict()[reg.key.encode()][1] == reg.lease_id
                ),
                timeout=30,
            )
            await assert_matches_etcdctl(run.watcher, alive, PREFIX)
        finally:
            first.thaw()
        assert run.watcher.status.state is ConnState.LIVE and not run.task.done()


async def test_frozen_first_member_fails_over(
    etcd_cluster: EmbeddedCluster, cluster_etcdctl: Etcdctl, make_etcdctl: MakeEtcdctl
) -> None:
    alive = make_etcdctl(etcd_cluster.endpoints[1:])
    # etcdctl's default timeouts (5 s), as a user runs it
    async with connection(etcd_cluster.endpoints) as conn:
        await frozen_first_member_is_survived(conn, etcd_cluster, cluster_etcdctl, alive)


async def test_dashboard_started_while_the_first_member_is_frozen(
    etcd_cluster: EmbeddedCluster, cluster_etcdctl: Etcdctl, make_etcdctl: MakeEtcdctl
) -> None:
    """The first endpoint accepts TCP but never answers: connecting, the snapshot and
    the watch go through the others instead of timing out on it again and again."""
    first = etcd_cluster.members[0]
    alive = make_etcdctl(etcd_cluster.endpoints[1:])
    cluster_etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
    first.freeze()
    try:
        async with (
            connection(etcd_cluster.endpoints) as conn,
            running_watcher(conn, live_timeout=40) as run,
        ):
            await ctl_retry(alive, "put", "/services/Orders/o-2", '{"Id": "o-2"}')
            view = await assert_matches_etcdctl(run.watcher, alive, PREFIX, timeout=40)
            assert set(view) == {b"/services/Orders/o-1", b"/services/Orders/o-2"}
            assert await member_of(conn, etcd_cluster.members, alive) != first.name
            assert run.watcher.status.state is ConnState.LIVE
    finally:
        first.thaw()


async def test_leaderless_first_member_is_left_for_the_others(
    tmp_path: Path, make_etcdctl: MakeEtcdctl
) -> None:
    """The first member is cut off from its peers (a partition): it still answers, but
    has no leader, so etcd cancels the watch ("no leader"). The connection must move
    to a member that has one rather than dial the first member again."""
    require_etcd()
    cluster = PartitionableCluster(tmp_path)
    try:
        await cluster.start(make_etcdctl("127.0.0.1:1").binary)
        etcdctl = make_etcdctl(cluster.endpoints)
        alive = make_etcdctl(cluster.endpoints[1:])
        lonely = make_etcdctl(cluster.endpoints[:1])
        etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
        async with (
            connection(cluster.endpoints) as conn,
            running_watcher(conn) as run,
        ):
            names = [m.name for m in cluster.members]
            assert await member_of(conn, cluster.members, etcdctl) == names[0]
            await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
            mark = len(run.statuses)
            cluster.isolate(0)
            try:
                await ctl_retry(alive, "put", "/services/Orders/during", '{"Id": "during"}')
                await eventually(
                    lambda: run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark),
                    timeout=40,
                    message=lambda: f"status is {run.watcher.status.describe()}",
                )
                view = await assert_matches_etcdctl(run.watcher, alive, PREFIX, timeout=30)
                assert b"/services/Orders/during" in view
                assert await member_of(conn, cluster.members, alive) != names[0]
                # the first member really is leaderless (the scenario holds)
                status = await asyncio.to_thread(lonely.endpoint_status)
                assert int(next(iter(status.values())).get("leader", 0)) == 0  # type: ignore[call-overload, attr-defined]
            finally:
                cluster.heal()
            await ctl_retry(etcdctl, "put", "/services/Orders/healed", "{}")
            await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX, timeout=30)
    finally:
        await cluster.cleanup()


# --------------------------------------------------------------------------------------------
# TLS


@contextlib.asynccontextmanager
async def running_tls_cluster(
    base: Path, size: int
) -> AsyncIterator[tuple[EmbeddedCluster, ClientTls]]:
    require_etcd()
    cluster, tls = tls_cluster(base, size)
    try:
        await cluster.astart()
        yield cluster, tls
    finally:
        await asyncio.to_thread(cluster.cleanup)


def tls_config(endpoints: Sequence[str], tls: ClientTls) -> ConnectionConfig:
    return ConnectionConfig(
        endpoints=tuple(f"https://{e}" for e in endpoints),
        cacert=tls.ca,
        cert=tls.cert,
        key=tls.key,
        dial_timeout=2.0,
        command_timeout=3.0,
    )


@needs_openssl
async def test_tls_cluster_with_all_endpoints_connects_and_fails_over(tmp_path: Path) -> None:
    async with running_tls_cluster(tmp_path, 3) as (cluster, tls):
        etcdctl = TlsEtcdctl(cluster.endpoints, tls)
        alive = TlsEtcdctl(cluster.endpoints[1:], tls)
        async with EtcdConnection(tls_config(cluster.endpoints, tls)) as conn:
            await frozen_first_member_is_survived(conn, cluster, etcdctl, alive)


@needs_openssl
async def test_tls_with_a_dead_endpoint_in_the_list_connects(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    async with running_tls_cluster(tmp_path, 1) as (cluster, tls):
        live = cluster.endpoints[0]
        etcdctl = TlsEtcdctl([live], tls)
        for endpoints in ([dead, live], [live, dead]):
            async with EtcdConnection(tls_config(endpoints, tls)) as conn:
                await conn.put(b"/services/Tls/t-1", b'{"Id": "t-1"}')
                assert etcdctl.get("/services/Tls/t-1") == b'{"Id": "t-1"}'
                async with running_watcher(conn) as run:
                    etcdctl.put("/services/Tls/t-2", "{}")
                    await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)


# --------------------------------------------------------------------------------------------
# address families and names


def test_targets_are_one_per_endpoint_with_ipv6_in_brackets() -> None:
    cfg = ConnectionConfig(endpoints=("127.0.0.1:1", "[::1]:2", "https://etcd.example:3", "::1"))
    assert cfg.targets == ("127.0.0.1:1", "[::1]:2", "etcd.example:3", "[::1]:2379")
    assert cfg.label == "127.0.0.1:1,[::1]:2,etcd.example:3,[::1]:2379"


@needs_ipv6
async def test_mixed_ipv4_and_ipv6_endpoints(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    dead_v4 = f"127.0.0.1:{free_ports(1)[0]}"
    async with relay("::1", ("127.0.0.1", etcd.client_port)) as v6:
        # a dead IPv4 endpoint first: the IPv6 one serves
        async with connection([dead_v4, v6.endpoint], dial_timeout=2.0) as conn:
            await conn.put(b"/services/Six/s-1", b'{"Id": "s-1"}')
            assert etcdctl.get("/services/Six/s-1") == b'{"Id": "s-1"}'
            assert conn.current_endpoint == v6.endpoint and v6.connections >= 1
        # the IPv6 endpoint first; when it goes away the watcher carries on over IPv4
        async with (
            connection([v6.endpoint, etcd.endpoint], dial_timeout=2.0, command_timeout=3.0) as conn,
            running_watcher(conn) as run,
        ):
            assert conn.current_endpoint == v6.endpoint
            await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
            await v6.close()
            etcdctl.put("/services/Six/s-2", "{}")
            await wait_live(run)
            view = await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
            assert b"/services/Six/s-2" in view
            assert conn.current_endpoint == etcd.endpoint


async def test_host_names_are_resolved_by_grpc(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    dead = f"localhost:{free_ports(1)[0]}"
    async with connection([dead, f"localhost:{etcd.client_port}"], dial_timeout=2.0) as conn:
        await conn.put(b"/services/Named/n-1", b"{}")
        assert etcdctl.get("/services/Named/n-1") == b"{}"


async def test_all_endpoints_dead_names_them() -> None:
    ports = free_ports(2)
    endpoints = [f"127.0.0.1:{p}" for p in ports]
    conn = EtcdConnection(ConnectionConfig(endpoints=tuple(endpoints), dial_timeout=1.0))
    try:
        with pytest.raises(EtcdUnavailable) as info:
            await conn.connect()
        assert any(e in str(info.value) for e in endpoints)
    finally:
        await conn.close()
