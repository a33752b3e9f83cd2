"""Elections and locks: found by layout, leader = lowest CreateRevision, interop with etcdctl.

etcdctl is the other side in every test on etcd: `etcdctl elect` / `etcdctl lock` campaign,
`etcdctl elect -l` observes, `etcdctl lease revoke` ends a candidate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections.campaign import Election
from etcd_registry_tui.registry.elections.state import (
    ElectionKind,
    ElectionState,
    LeaderChange,
    parse_candidate_key,
)
from etcd_registry_tui.registry.elections.watch import ElectionWatcher, KeyspaceTooLarge
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.model import KeyValue

# -- layout ---------------------------------------------------------------------------------


def test_candidate_key_layouts() -> None:
    lease = 0x694D7A1B2C3D4E5F
    hexed = format(lease, "x").encode()
    assert parse_candidate_key(b"myjob/" + hexed, lease) == parse_candidate_key(
        b"myjob/" + hexed, lease
    )
    found = parse_candidate_key(b"/elections/migrations/" + hexed, lease)
    assert found is not None and found.name == "/elections/migrations" and not found.decimal
    node = parse_candidate_key(b"election/nodejob/" + str(lease).encode(), lease)
    assert node is not None and node.name == "election/nodejob" and node.decimal
    # not a candidate: no lease, another lease's id, zero-padded id (%016x), no name
    assert parse_candidate_key(b"myjob/" + hexed, 0) is None
    assert parse_candidate_key(b"myjob/" + hexed, lease + 1) is None
    assert parse_candidate_key(b"myjob/" + format(0x1F, "016x").encode(), 0x1F) is None
    assert parse_candidate_key(b"/" + hexed, lease) is None
    assert parse_candidate_key(b"/services/Orders/abc", lease) is None


def test_leader_is_lowest_create_revision_and_nested_keys_take_part_as_in_clientv3() -> None:
    """clientv3's Election("a").Leader is the lowest CreateRevision of *every* key under
    ``a/``: a nested election's keys (and keys that are no candidate's) queue in ``a`` too."""
    state = ElectionState()
    kvs = [
        # key order differs from queue order: 'b' has the lower lease id but came later
        KeyValue(b"a/1f", b"late", create_revision=9, mod_revision=9, lease=0x1F),
        KeyValue(b"a/ff", b"first", create_revision=3, mod_revision=3, lease=0xFF),
        KeyValue(b"a/b/2a", b"", create_revision=4, mod_revision=4, lease=0x2A),
        KeyValue(b"a/b/plain", b"", create_revision=5, mod_revision=5, lease=0x2A),
    ]
    changes = state.load(kvs, revision=10)
    assert sorted(state.elections) == ["a", "a/b"]
    a = state.elections["a"]
    assert [c.key for c in a.queue()] == [b"a/ff", b"a/b/2a", b"a/b/plain", b"a/1f"]
    assert [c.stands_in for c in a.queue()] == ["a", "a/b", None, "a"]
    assert a.leader is not None and a.leader.value == b"first"
    assert a.kind is ElectionKind.ELECTION
    assert [c.key for c in state.elections["a/b"].queue()] == [b"a/b/2a", b"a/b/plain"]
    assert state.elections["a/b"].kind is ElectionKind.LOCK
    assert {c.name for c in changes} == {"a", "a/b"}

    # the leader's key goes: the oldest key left under a/ leads, the nested lock's holder
    moved = state.apply([(False, KeyValue(b"a/ff", b"", 3, 11, 0, 0xFF))], revision=11)
    assert (
        moved == [LeaderChange("a", moved[0].old, state.elections["a"].leader, 11)]
        and moved[0].old is not None
    )
    assert moved[0].old.value == b"first" and state.leader_of("a").key == b"a/b/2a"  # type: ignore[union-attr]
    # a waiting candidate going changes no leader
    state.apply([(True, KeyValue(b"a/10", b"w", 12, 12, 1, 0x10))], revision=12)
    assert state.apply([(False, KeyValue(b"a/10", b"", 12, 13, 0, 0x10))], revision=13) == []
    # the nested lock's holder goes: both queues move on, to the key that is no candidate's
    both = state.apply([(False, KeyValue(b"a/b/2a", b"", 4, 14, 0, 0x2A))], revision=14)
    assert {c.name for c in both} == {"a", "a/b"}
    # ... which alone makes no election: a/b is gone, but its key still queues (and leads) in a
    assert "a/b" not in state.elections and state.leader_of("a").key == b"a/b/plain"  # type: ignore[union-attr]
    state.apply([(False, KeyValue(b"a/b/plain", b"", 5, 15, 0, 0x2A))], revision=15)
    assert state.leader_of("a").value == b"late"  # type: ignore[union-attr]
    # the last candidate goes: the election disappears
    gone = state.apply([(False, KeyValue(b"a/1f", b"", 9, 16, 0, 0x1F))], revision=16)
    assert gone[0].new is None and "a" not in state.elections
    assert state.leases() == set()


# -- against etcd -----------------------------------------------------------------------------


@pytest.fixture
async def conn(etcd: EmbeddedEtcd) -> AsyncIterator[EtcdConnection]:
    async with connection(etcd.endpoint) as c:
        yield c


class EtcdctlCandidate:
    """`etcdctl elect NAME VALUE` (or `etcdctl lock NAME`) running in the background."""

    def __init__(self, etcdctl: Etcdctl, *args: str) -> None:
        self.proc = subprocess.Popen(
            etcdctl._cmd(list(args)),
            env=etcdctl.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def candidates(etcdctl: Etcdctl) -> Iterator[list[EtcdctlCandidate]]:
    started: list[EtcdctlCandidate] = []
    yield started
    for candidate in started:
        candidate.stop(signal.SIGKILL)


def start(etcdctl: Etcdctl, started: list[EtcdctlCandidate], *args: str) -> EtcdctlCandidate:
    candidate = EtcdctlCandidate(etcdctl, *args)
    started.append(candidate)
    return candidate


@contextlib.asynccontextmanager
async def watching(
    conn: EtcdConnection, prefixes: tuple[str, ...] = ()
) -> AsyncIterator[tuple[ElectionWatcher, list[LeaderChange]]]:
    seen: list[LeaderChange] = []
    watcher = ElectionWatcher(conn, prefixes, on_change=seen.extend)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.live.wait(), 20)
        yield watcher, seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def values(watcher: ElectionWatcher, name: str) -> list[bytes]:
    election = watcher.state.elections.get(name)
    return [c.value for c in election.queue()] if election else []


async def test_etcdctl_elect_queue_and_failover_on_resign_and_revoke(
    conn: EtcdConnection, etcdctl: Etcdctl, candidates: list[EtcdctlCandidate]
) -> None:
    async with watching(conn) as (watcher, seen):
        start(etcdctl, candidates, "elect", "myjob", "alice")
        await eventually(lambda: values(watcher, "myjob") == [b"alice"], timeout=20)
        start(etcdctl, candidates, "elect", "myjob", "bob")
        await eventually(lambda: values(watcher, "myjob") == [b"alice", b"bob"], timeout=20)
        start(etcdctl, candidates, "elect", "myjob", "carol")
        await eventually(lambda: len(values(watcher, "myjob")) == 3, timeout=20)
        assert values(watcher, "myjob") == [b"alice", b"bob", b"carol"]
        assert watcher.state.elections["myjob"].kind is ElectionKind.ELECTION

        # the candidate keys are NAME/<lease %x>, lease as etcdctl's lease list shows it
        leader = watcher.state.leader_of("myjob")
        assert leader is not None
        assert leader.key == b"myjob/" + format(leader.lease, "x").encode()
        assert f"{leader.lease:016x}" in etcdctl.run("lease", "list")

        # alice resigns (SIGINT to etcdctl): bob leads, and that is logged as one change
        candidates[0].stop()
        await eventually(lambda: values(watcher, "myjob") == [b"bob", b"carol"], timeout=20)
        change = seen[-1]
        assert change.name == "myjob" and change.old and change.new
        assert (change.old.value, change.new.value) == (b"alice", b"bob")

        # bob's lease is revoked: carol leads
        bob = watcher.state.leader_of("myjob")
        assert bob is not None
        etcdctl.lease_revoke(bob.lease)
        await eventually(lambda: values(watcher, "myjob") == [b"carol"], timeout=20)
        assert (seen[-1].old.value, seen[-1].new.value) == (b"bob", b"carol")  # type: ignore[union-attr]


async def test_etcdctl_lock_holder_and_waiter(
    conn: EtcdConnection, etcdctl: Etcdctl, candidates: list[EtcdctlCandidate]
) -> None:
    async with watching(conn) as (watcher, _):
        start(etcdctl, candidates, "lock", "mylock")
        await eventually(lambda: len(values(watcher, "mylock")) == 1, timeout=20)
        start(etcdctl, candidates, "lock", "mylock")
        await eventually(lambda: len(values(watcher, "mylock")) == 2, timeout=20)
        election = watcher.state.elections["mylock"]
        assert election.kind is ElectionKind.LOCK
        holder = election.leader
        candidates[0].stop()
        await eventually(lambda: len(values(watcher, "mylock")) == 1, timeout=20)
        assert watcher.state.leader_of("mylock") is not holder


async def test_node_decimal_layout_and_prefix_filter(
    conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    etcdctl.put(f"election/nodejob/{lease}", "node-1", lease=lease)
    other = etcdctl.lease_grant(60)
    etcdctl.put(f"/elections/migrations/{other:x}", "go-1", lease=other)
    async with watching(conn, ("/elections/",)) as (watcher, _):
        assert sorted(watcher.state.elections) == ["/elections/migrations"]
    async with watching(conn) as (watcher, _):
        assert sorted(watcher.state.elections) == ["/elections/migrations", "election/nodejob"]
        assert values(watcher, "election/nodejob") == [b"node-1"]


async def test_too_many_keys_asks_for_a_prefix(conn: EtcdConnection, etcdctl: Etcdctl) -> None:
    for i in range(5):
        etcdctl.put(f"/k/{i}", "v")
    errors: list[str | None] = []
    watcher = ElectionWatcher(conn, on_error=errors.append, max_keys=3)
    await asyncio.wait_for(watcher.run(), 20)  # returns: nothing to follow
    assert errors and "--elections-prefix" in (errors[-1] or "")
    with pytest.raises(KeyspaceTooLarge):
        await watcher.load_snapshot()


async def test_own_campaign_follows_etcdctl_leader_and_etcdctl_sees_it(
    conn: EtcdConnection, etcdctl: Etcdctl, candidates: list[EtcdctlCandidate]
) -> None:
    async with watching(conn) as (watcher, _):
        alice = start(etcdctl, candidates, "elect", "myjob", "alice")
        await eventually(lambda: values(watcher, "myjob") == [b"alice"], timeout=20)
        election = Election(conn, "myjob")
        elected = asyncio.Event()

        async def campaign() -> None:
            async with election.campaign("py-1", ttl=10) as leadership:
                assert leadership.is_leader
                elected.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(campaign())
        try:
            await eventually(lambda: values(watcher, "myjob") == [b"alice", b"py-1"], timeout=20)
            await asyncio.sleep(0.5)
            assert not elected.is_set()  # waiting behind alice
            alice.stop()
            await asyncio.wait_for(elected.wait(), 20)
            # etcdctl's own observer reports the Python candidate as leader
            assert await observe_leader(etcdctl, "myjob") == "py-1"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # resigned on exit: key deleted and lease revoked
        await eventually(lambda: values(watcher, "myjob") == [], timeout=20)
        assert etcdctl.get_prefix("myjob/").kvs == {}


async def observe_leader(etcdctl: Etcdctl, name: str) -> str:
    """What `etcdctl elect -l NAME` prints first (key line, then the value)."""
    proc = await asyncio.create_subprocess_exec(
        *[os.fsdecode(a) for a in etcdctl._cmd(["elect", "-l", name])],
        env=etcdctl.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        key = await asyncio.wait_for(proc.stdout.readline(), 15)
        value = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert key.decode().startswith(f"{name}/")
        return value.decode().strip()
    finally:
        proc.kill()
        await proc.wait()


async def test_campaign_lease_lost_tells_the_leader(conn: EtcdConnection, etcdctl: Etcdctl) -> None:
    election = Election(conn, "/elections/solo")
    async with election.campaign("me", ttl=30) as leadership:
        assert leadership.is_leader
        leader = await election.leader()
        assert leader is not None and leader.value == b"me"
        await leadership.proclaim("me-v2")
        assert (await election.leader()).value == b"me-v2"  # type: ignore[union-attr]
        assert etcdctl.get(f"/elections/solo/{leadership.lease:x}") == b"me-v2"
        etcdctl.lease_revoke(leadership.lease)
        await asyncio.wait_for(leadership.lost.wait(), 20)
        assert not leadership.is_leader and leadership.reason
