"""What a candidacy leaves behind after a fault: the key it deletes, the key it leaves alone.

etcd is real; the link is broken with the tests' own proxy; etcdctl is the witness.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually
from support.tcp_proxy import tcp_proxy
from test_cli_elections import elections as cli_elections
from test_election_orphans import hold_after_lease_ttl
from test_elections import observe_leader

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections import campaign
from etcd_registry_tui.registry.elections.campaign import Election, ResignFailed
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import RegistryError


async def agreed(conn: EtcdConnection, etcdctl: Etcdctl, etcd: EmbeddedEtcd, name: str) -> str:
    """The leader's value as Election.leader(), `etcdctl elect -l` and `elections --json`
    all see it (asserted equal); "" when the election is empty for all three."""
    ours = await Election(conn, name).leader()
    listed = {e["name"]: e for e in await asyncio.to_thread(cli_elections, etcd.endpoint)}
    if ours is None:
        assert etcdctl.get_prefix(f"{name}/").kvs == {}
        assert name not in listed or not listed[name]["candidates"]
        return ""
    value = ours.value.decode()
    assert await observe_leader(etcdctl, name) == value
    first = listed[name]["candidates"][0]  # type: ignore[index]
    assert first["key"] == ours.key.decode() and first["value"] == value
    return value


@pytest.fixture
def owner(etcdctl: Etcdctl) -> Iterator[int]:
    """A lease of TTL 2 its owner (a thread running etcdctl) keeps alive."""
    import threading

    lease = etcdctl.lease_grant(2)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(0.4):
            try:
                etcdctl.lease_keepalive_once(lease)
            except Exception:  # a slow etcdctl under load: the next one renews
                pass

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    yield lease
    stop.set()
    thread.join(10)


async def test_the_first_resign_after_the_link_heals_resigns(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """etcd refused long enough for gRPC's reconnect backoff to grow; once the link is
    back, one resign() waits for the channel (up to its command timeout) and resigns."""
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            candidacy = Election(conn, "heal").candidacy("me", lease=lease)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            proxy.refuse()
            try:
                await candidacy.resign()
                raise AssertionError("resigned through a refusing etcd")
            except ResignFailed as exc:
                assert "still stand" in str(exc) or "unknown" in str(exc) or exc
            await asyncio.sleep(4)  # gRPC's reconnect backoff grows meanwhile
            assert etcdctl.get(candidacy.key) == b"me"
            proxy.heal()
            await candidacy.resign()  # the first call after the heal
            assert etcdctl.get_prefix("heal/").kvs == {}
            assert candidacy.lost.is_set() and candidacy.reason == "resigned"
            assert etcdctl.lease_timetolive(lease)[0] > 0


async def lose_behind_a_refusal(conn: EtcdConnection, proxy, lease: int, name: str):  # type: ignore[no-untyped-def]
    """A leader on ``lease`` loses its candidacy ("not certain") while etcd refuses us; its
    key stays (the owner keeps the lease alive) and its background deletion is retrying."""
    candidacy = Election(conn, name).candidacy("me", lease=lease)
    await candidacy.start()
    await asyncio.wait_for(candidacy.wait_elected(), 10)
    proxy.refuse()
    await asyncio.wait_for(candidacy.lost.wait(), 20)
    assert candidacy._ending is not None
    return candidacy


async def test_the_background_deletion_of_a_lost_key_gives_up_and_says_so(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, owner: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """etcd stays away: the deletion does not retry for ever; it gives up (bounded), says
    so in cleanup_error, and its task ends. The key does still stand (the error is true)
    until a resign once etcd is back deletes it."""
    monkeypatch.setattr(campaign, "_CLEAR_KEY_PATIENCE", 2.0)
    monkeypatch.setattr(campaign, "_CLEAR_KEY_MAX", 3.0)
    with tcp_proxy(etcd.client_port) as proxy:
        async with (
            connection(proxy.endpoint, command_timeout=1.0) as conn,
            connection(etcd.endpoint) as direct,
        ):
            candidacy = await lose_behind_a_refusal(conn, proxy, owner, "bounded")
            ending = candidacy._ending
            assert ending is not None
            await asyncio.wait_for(asyncio.shield(ending), 30)  # ended by itself
            error = candidacy.cleanup_error
            assert error is not None and "gave up" in error and "may still stand" in error
            assert candidacy.key.decode() in error and "\n" not in error
            assert etcdctl.get(candidacy.key) == b"me"  # it does
            assert await agreed(direct, etcdctl, etcd, "bounded") == "me"
            proxy.heal()
            await candidacy.resign()
            assert etcdctl.get_prefix("bounded/").kvs == {}
            assert await agreed(direct, etcdctl, etcd, "bounded") == ""


async def test_closing_the_connection_ends_the_background_deletion(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, owner: int
) -> None:
    """Shut down while the deletion retries: it is cancelled with the connection (no task
    left running on a closed connection, reopening channels) and says what it left."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            candidacy = await lose_behind_a_refusal(conn, proxy, owner, "shutdown")
            ending = candidacy._ending
            assert ending is not None and not ending.done()
        await asyncio.sleep(0)
        assert ending.done()
        error = candidacy.cleanup_error
        assert error is not None and "cut short" in error, error
        assert etcdctl.get(candidacy.key) == b"me"  # as it says
        etcdctl.del_prefix("shutdown/")


async def test_a_lost_candidacy_leaves_the_key_a_newer_candidacy_adopted(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, owner: int
) -> None:
    """Lost behind a refusal, its key's deletion retrying; a newer candidacy on the same
    lease (same key name, same value; another connection of this process) adopts the key
    before that deletion gets through. Once the link is back the deletion must not take
    the newer candidacy's key: the adoption moved its ModRevision, the guard holds."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with (
            connection(proxy.endpoint, command_timeout=1.0) as conn,
            connection(etcd.endpoint) as direct,
        ):
            first = await lose_behind_a_refusal(conn, proxy, owner, "adopted")
            assert first._ending is not None and not first._ending.done()
            second = Election(direct, "adopted").candidacy("me", lease=owner)
            await asyncio.wait_for(second.start(), 15)
            assert second.key == first.key and second.create_revision == first.create_revision
            proxy.heal()
            await asyncio.wait_for(asyncio.shield(first._ending), 30)
            await asyncio.wait_for(second.wait_elected(), 10)
            await asyncio.sleep(1)  # the newer one's watch would have seen a delete by now
            assert second.is_leader, second.reason
            assert etcdctl.get(second.key) == b"me"
            assert first.cleanup_error is not None and "left" in first.cleanup_error
            assert await agreed(direct, etcdctl, etcd, "adopted") == "me"
            await second.resign()
            assert await agreed(direct, etcdctl, etcd, "adopted") == ""


@pytest.mark.parametrize("newer", [False, True], ids=["alone", "newer"])
async def test_a_failed_start_that_never_learned_its_key_cleans_up_only_its_own(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch, newer: bool
) -> None:
    """The first start's put goes through but its reply is lost, then etcd refuses: it
    fails without learning its key's CreateRevision and says the key may still stand,
    deleting it in the background once etcd answers. Alone, it does so. With a second
    candidacy on the same lease (same key name, same value; another connection) started
    before that deletion gets through, the key is the newer one's: left alone, said so."""
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with (
            connection(proxy.endpoint, command_timeout=1.0) as conn,
            connection(etcd.endpoint) as direct,
        ):
            election = Election(conn, "never-learned")
            hold_after_lease_ttl(election, proxy, monkeypatch)
            key = election.key_for(lease)

            async def refuse_once_put() -> None:
                await eventually(lambda: etcdctl.get(key) == b"me", timeout=10)
                proxy.refuse()

            refusing = asyncio.create_task(refuse_once_put())
            first = election.candidacy("me", lease=lease)
            with pytest.raises(RegistryError, match="may still stand"):
                await asyncio.wait_for(first.start(), 15)
            await refusing
            assert first.create_revision == 0 and first._ending is not None
            assert not first._ending.done(), first.cleanup_error  # retrying in the background
            second = Election(direct, "never-learned").candidacy("me", lease=lease)
            if newer:
                await asyncio.wait_for(second.start(), 15)
            proxy.heal()
            await asyncio.wait_for(asyncio.shield(first._ending), 30)
            if not newer:
                assert first.cleanup_error is None, first.cleanup_error
                assert await agreed(direct, etcdctl, etcd, "never-learned") == ""
                assert etcdctl.lease_timetolive(lease)[0] > 0
                return
            await asyncio.wait_for(second.wait_elected(), 10)
            await asyncio.sleep(1)  # the newer one's watch would have seen a delete by now
            assert second.is_leader, second.reason
            kvs = etcdctl.get_prefix("never-learned/").kvs
            assert list(kvs) == [key] and kvs[key].create_revision == second.create_revision
            assert first.cleanup_error is not None and "left" in first.cleanup_error
            assert await agreed(direct, etcdctl, etcd, "never-learned") == "me"
            await second.resign()
            assert await agreed(direct, etcdctl, etcd, "never-learned") == ""
            assert etcdctl.lease_timetolive(lease)[0] > 0
