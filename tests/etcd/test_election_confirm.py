"""A leader is only as certain as its newest confirmation that its key is still there and
ours: a stalled own-key watch (frozen link while keep-alives go elsewhere) or an external
lease that etcd expires must not leave ``is_leader`` True beyond the documented bound.

etcd is real; links are broken with the tests' TCP proxy; etcdctl deletes and witnesses.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually
from support.tcp_proxy import tcp_proxy
from test_election_safety import Proc, etcdctl_side, procs, queue_length  # noqa: F401

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections.campaign import Election, confirm_window


def test_the_confirm_window_is_shorter_than_the_ttl() -> None:
    for ttl in (2, 3, 10, 60, 3600):
        assert confirm_window(ttl, 5.0) < ttl
    assert confirm_window(3, 5.0) == 2.5  # the figure the README and docstring give


@pytest.mark.parametrize("attack", ["delete", "re-create on our lease"])
async def test_leader_whose_watch_is_frozen_loses_soon_after_its_key_is_deleted(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    procs: list[Proc],  # noqa: F811
    attack: str,
) -> None:
    """Keep-alives fail over to the direct endpoint; the own-key watch stays stuck on the
    frozen one. Another client deletes the key: bob (etcdctl elect) leads at once, and we
    must stop saying we lead within the confirm window, not when the watch wakes up."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection([proxy.endpoint, etcd.endpoint]) as conn:
            candidacy = Election(conn, "stalled").candidacy("py", ttl=3)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            bob = etcdctl_side(etcdctl, procs, "elect", "stalled", "bob")
            await eventually(lambda: queue_length(etcdctl, "stalled")() == 2, timeout=10)
            proxy.freeze()
            # the keep-alive gives up on the frozen endpoint and goes to the other one; the
            # watch stays on the frozen link (gRPC's pings notice it only 6-10 s later)
            await eventually(lambda: conn.failovers >= 1, timeout=5)
            await asyncio.sleep(0.5)
            assert candidacy.is_leader, candidacy.reason
            # alive: 0 is under a second left (a keep-alive slow on a loaded machine), -1 gone
            assert etcdctl.lease_timetolive(candidacy.lease)[0] >= 0
            etcdctl.run("del", candidacy.key.decode())
            if attack != "delete":  # back under the same name and lease: at the queue's end
                etcdctl.put(candidacy.key.decode(), "py", lease=candidacy.lease)
            deleted = time.monotonic()
            await asyncio.wait_for(candidacy.lost.wait(), 10)
            lost_after = time.monotonic() - deleted
            assert not candidacy.is_leader
            await eventually(bob.first_out, timeout=10)  # bob leads: we had to give up
            # the window is 2.5 s for TTL 3 (one more second for a loaded machine)
            assert lost_after < confirm_window(3, 5.0) + 1.0, (lost_after, candidacy.reason)
            proxy.heal()


async def test_external_lease_that_expires_behind_a_frozen_link_ends_the_leadership(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """Nobody keeps the caller's lease alive and our link is frozen: etcd expires it and
    deletes the key. The candidacy must not go on saying it leads."""
    lease = etcdctl.lease_grant(2)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint) as conn:
            candidacy = Election(conn, "ext-expire").candidacy("me", lease=lease)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            assert candidacy.is_leader
            proxy.freeze()
            await eventually(lambda: etcdctl.get(candidacy.key) is None, timeout=10)
            gone = time.monotonic()
            await asyncio.wait_for(candidacy.lost.wait(), 10)
            assert not candidacy.is_leader
            # never later than the window after the key went
            assert time.monotonic() - gone < confirm_window(2, 5.0) + 1.0
            proxy.heal()
            await candidacy.resign()


async def test_external_lease_kept_alive_by_its_owner_keeps_leading(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """The owner renews the lease: the confirmations keep the leadership going past
    several TTLs (the deadline on an external lease is extended by each confirmation)."""
    lease = etcdctl.lease_grant(2)
    async with connection(etcd.endpoint) as conn:
        candidacy = Election(conn, "ext-kept").candidacy("me", lease=lease)
        await candidacy.start()
        await asyncio.wait_for(candidacy.wait_elected(), 10)
        for _ in range(8):  # 4 s, twice the TTL
            etcdctl.lease_keepalive_once(lease)
            await asyncio.sleep(0.5)
            assert candidacy.is_leader, candidacy.reason
        await candidacy.resign()
        assert etcdctl.get(candidacy.key) is None


async def test_own_key_watch_comes_back_after_a_compaction_and_a_reconnect(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, caplog: pytest.LogCaptureFixture
) -> None:
    """The key's ModRevision is compacted away, then the link is cut: the re-watch must
    start from a revision etcd still has (not fail as compacted, again every second, so
    the key is only polled), and then report the key's deletion."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint) as conn:
            candidacy = Election(conn, "compact-watch").candidacy("me", ttl=60)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            for i in range(3):
                etcdctl.put("compact-watch-other", str(i))
            revision = etcdctl.get_prefix("compact-watch-other").revision
            etcdctl.compact(revision)
            caplog.set_level(logging.INFO, "etcd_registry_tui.registry.elections.campaign")
            proxy.cut()  # every stream reconnects
            await asyncio.sleep(3.0)  # the re-watch: from a revision etcd still has
            compacted = [r for r in caplog.records if "compacted" in r.getMessage()]
            assert compacted == [], [r.getMessage() for r in compacted]
            etcdctl.run("del", candidacy.key.decode())
            await asyncio.wait_for(candidacy.lost.wait(), 5)
            assert candidacy.reason == "the candidate key was deleted"
            await candidacy.resign()
