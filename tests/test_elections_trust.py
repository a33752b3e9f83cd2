"""Elections the dashboard shows are the ones etcd's clients agree on.

Each test compares what the elections watcher (or view) says with independent witnesses on
a real etcd: ``etcdctl get``/``etcdctl elect`` and the project's own ``Election(...).leader()``.
Partitions go through the tests' own TCP proxy (``tests/tcp_proxy.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import Etcdctl
from helpers import connection, eventually
from tcp_proxy import tcp_proxy
from test_elections import EtcdctlCandidate, observe_leader, values, watching

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.connection import EtcdConnection
from etcd_registry_tui.registry.elections_watch import ElectionWatcher


@pytest.fixture
def candidates() -> Iterator[list[EtcdctlCandidate]]:
    started: list[EtcdctlCandidate] = []
    yield started
    for candidate in started:
        candidate.stop(signal.SIGKILL)


@pytest.fixture
async def direct(etcd: EmbeddedEtcd) -> AsyncIterator[EtcdConnection]:
    """A connection of the test's own, not through any proxy (the writer)."""
    async with connection(etcd.endpoint) as c:
        yield c


def queue_keys(etcdctl: Etcdctl, name: str) -> list[bytes]:
    """What etcd holds under ``NAME/``, by CreateRevision (clientv3's queue order)."""
    kvs = etcdctl.get_prefix(f"{name}/").kvs
    return [k for k, _ in sorted(kvs.items(), key=lambda item: item[1].create_revision)]


# -- item 2: catching up after a reconnect ---------------------------------------------------


async def test_reconnect_catches_up_past_more_than_one_batch_of_events(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    direct: EtcdConnection,
    candidates: list[EtcdctlCandidate],
) -> None:
    """Cut the watcher's link, revoke the leader, write 1,500 unrelated keys, queue carol:
    after the link heals the watcher shows bob leading and carol waiting, as etcd does."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with (
            connection(proxy.endpoint, dial_timeout=1.0, command_timeout=1.0) as conn,
            watching(conn) as (watcher, _),
        ):
            watcher.backoff_max = 0.5
            candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "alice"))
            await eventually(lambda: values(watcher, "job") == [b"alice"], timeout=20)
            candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "bob"))
            await eventually(lambda: values(watcher, "job") == [b"alice", b"bob"], timeout=20)
            alice = watcher.state.leader_of("job")
            assert alice is not None

            proxy.refuse()
            await eventually(lambda: not watcher.live.is_set(), timeout=20)
            etcdctl.lease_revoke(alice.lease)
            for start in range(0, 1500, 100):
                await asyncio.gather(
                    *(direct.put(f"/unrelated/{i}".encode(), b"x") for i in range(start, start + 100))
                )
            candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "carol"))
            await eventually(lambda: len(queue_keys(etcdctl, "job")) == 2, timeout=20)
            assert await observe_leader(etcdctl, "job") == "bob"
            proxy.heal()

            await eventually(lambda: watcher.live.is_set(), timeout=20)
            await eventually(
                lambda: values(watcher, "job") == [b"bob", b"carol"],
                timeout=20,
                message=lambda: f"watcher shows {values(watcher, 'job')}",
            )
            election = watcher.state.elections["job"]
            assert [c.key for c in election.queue()] == queue_keys(etcdctl, "job")
