"""Candidacies on a lease someone else keeps alive (``lease=``): the deadline comes from
etcd's remaining TTL (whole seconds, rounded down), and a lost candidacy leaves no key on
the owner's live lease. etcdctl is the witness; the link is broken with the tests' proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually
from support.tcp_proxy import tcp_proxy
from test_election_safety import Proc, etcdctl_side, procs  # noqa: F401 (fixture)

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections.campaign import (
    Election,
    LeadershipLost,
    ResignFailed,
)
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import RegistryError


@contextlib.asynccontextmanager
async def owner_renewing(
    conn: EtcdConnection, lease: int, every: float, first: float = 0.0
) -> AsyncIterator[None]:
    """The lease's owner: one keep-alive ``first`` s from now, then every ``every`` s."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        at = loop.time() + first
        stream = conn.keepalive_stream()
        try:
            while True:
                await asyncio.sleep(max(0.0, at - loop.time()))
                with contextlib.suppress(RegistryError):  # a slow one: the next renews it
                    await stream.keepalive(lease, 1.0)
                at += every
        finally:
            stream.close()

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_lease_with_under_a_second_left_at_start_is_not_led_on(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    procs: list[Proc],  # noqa: F811
) -> None:
    """etcd answers remaining TTL 0 (under a second left): that is a deadline of now, not
    no deadline. Behind a frozen link etcd expires the lease and etcdctl elect leads; the
    candidacy must not still say it leads then."""
    lease = etcdctl.lease_grant(3)
    await eventually(lambda: etcdctl.lease_timetolive(lease)[0] == 0, timeout=10, interval=0.02)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint) as conn:
            candidacy = Election(conn, "ext-zero").candidacy("me", lease=lease)
            with contextlib.suppress(LeadershipLost):
                await candidacy.start()
                await asyncio.wait_for(candidacy.wait_elected(), 10)
            proxy.freeze()
            bob = etcdctl_side(etcdctl, procs, "elect", "ext-zero", "bob")
            await eventually(bob.first_out, timeout=10)  # etcd expired the lease: bob leads
            assert not candidacy.is_leader
            assert candidacy.lost.is_set() and candidacy.reason
            proxy.heal()


async def test_a_kept_lease_renewed_every_ttl_minus_1_4_s_keeps_its_leader(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """TTL 4, the owner renews every 2.6 s: the lease never expires. A reading of the
    remaining TTL (rounded down) taken 2.2 s after a renewal says 1 s: the deadline must
    not move back to it, and a re-read must come before the deadline, after the renewal."""
    lease = etcdctl.lease_grant(4)
    async with connection(etcd.endpoint) as owner, connection(etcd.endpoint) as conn:
        async with owner_renewing(owner, lease, every=2.6):
            await asyncio.sleep(0.9)  # the candidacy reads 0.9 s and 2.2 s after a renewal
            candidacy = Election(conn, "ext-late").candidacy("me", lease=lease)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            for _ in range(14):  # 7 s: almost two TTLs, three renewals
                await asyncio.sleep(0.5)
                assert candidacy.is_leader, candidacy.reason
            await candidacy.resign()
    assert etcdctl.get_prefix("ext-late/").kvs == {}


async def answers(conn: EtcdConnection) -> bool:
    try:
        await conn.status()
    except RegistryError:
        return False
    return True


@contextlib.asynccontextmanager
async def lost_behind_a_refused_link(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, name: str
) -> AsyncIterator[tuple[Any, Any, int]]:
    """A leader on a lease its owner keeps alive loses ("not certain") behind a refused
    link; the key stays on the live lease. Yields (proxy, candidacy, lease)."""
    lease = etcdctl.lease_grant(3)
    async with connection(etcd.endpoint) as owner:
        async with owner_renewing(owner, lease, every=1.0):
            with tcp_proxy(etcd.client_port) as proxy:
                async with connection(proxy.endpoint, command_timeout=1.0) as conn:
                    candidacy = Election(conn, name).candidacy("me", lease=lease)
                    await candidacy.start()
                    await asyncio.wait_for(candidacy.wait_elected(), 10)
                    proxy.refuse()
                    await asyncio.wait_for(candidacy.lost.wait(), 10)
                    assert etcdctl.get(candidacy.key) == b"me"  # the orphan, for now
                    yield proxy, candidacy, lease


async def test_a_lost_candidacy_deletes_its_key_from_the_kept_lease_once_etcd_answers(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with lost_behind_a_refused_link(etcd, etcdctl, "ext-orph") as (proxy, candidacy, lease):
        await asyncio.sleep(1.5)  # still refused: the deletion is retried
        proxy.heal()
        # retried with backoff (at most 2 s apart) while gRPC reconnects
        await eventually(lambda: etcdctl.get_prefix("ext-orph/").kvs == {}, timeout=20)
        assert etcdctl.lease_timetolive(lease)[0] > 0  # the owner's lease: left alone
        assert not candidacy.is_leader


async def test_resign_after_a_loss_deletes_the_key_or_raises(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with lost_behind_a_refused_link(etcd, etcdctl, "ext-res") as (proxy, candidacy, _):
        with pytest.raises(ResignFailed):
            await candidacy.resign()
        assert etcdctl.get(candidacy.key) == b"me"
        proxy.heal()
        for _ in range(10):  # gRPC may still be reconnecting
            try:
                await candidacy.resign()
                break
            except ResignFailed:
                await asyncio.sleep(0.5)
        assert etcdctl.get_prefix("ext-res/").kvs == {}


async def test_proclaim_on_a_lost_candidacy_raises_and_writes_nothing(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with lost_behind_a_refused_link(etcd, etcdctl, "ext-pro") as (proxy, candidacy, _):
        proxy.heal()
        await eventually(lambda: answers(candidacy.election.conn), timeout=10)
        with pytest.raises(RegistryError):
            await candidacy.proclaim("still the boss")
        assert etcdctl.get(candidacy.key) in (b"me", None)
