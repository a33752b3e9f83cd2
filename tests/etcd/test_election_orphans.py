"""A reply lost during ``start()`` or ``resign()`` leaves no key behind and no false report.

etcd carries out the request; the tests' proxy holds its reply and then cuts the link, so
the library cannot know. etcdctl is the witness of what stands in the queue.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually
from support.tcp_proxy import TcpProxy, tcp_proxy

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections.campaign import Election, ResignFailed
from etcd_registry_tui.registry.etcd.errors import EtcdUnavailable, RegistryError


def lose_the_reply(proxy: TcpProxy, etcdctl: Etcdctl, done: Any) -> asyncio.Task[None]:
    """Once etcd has done what ``done()`` checks (through etcdctl), cut the held reply."""

    async def run() -> None:
        await eventually(done, timeout=10)
        proxy.cut()
        proxy.heal()

    return asyncio.create_task(run())


def hold_after_lease_ttl(
    election: Election, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hold etcd's replies once ``start()`` has read the external lease's TTL: its next
    request, the put of the candidate key, reaches etcd but its reply does not come back."""
    lease_ttl = election._lease_ttl

    async def then_hold(lease: int, timeout: float) -> tuple[int, int]:
        result = await lease_ttl(lease, timeout)
        monkeypatch.setattr(election, "_lease_ttl", lease_ttl)  # once
        proxy.hold_replies()
        return result

    monkeypatch.setattr(election, "_lease_ttl", then_hold)


async def test_start_on_an_external_lease_adopts_its_key_when_the_put_reply_is_lost(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=3.0) as conn:
            election = Election(conn, "orphan")
            hold_after_lease_ttl(election, proxy, monkeypatch)  # so the put's reply is held
            key = election.key_for(lease)
            cutter = lose_the_reply(proxy, etcdctl, lambda: etcdctl.get(key) == b"me")
            candidacy = election.candidacy("me", lease=lease)
            starting = asyncio.create_task(candidacy.start())
            await cutter
            await asyncio.wait_for(starting, 15)  # retried: the key it put is its own
            kvs = etcdctl.get_prefix("orphan/").kvs
            assert list(kvs) == [key] and candidacy.create_revision == kvs[key].create_revision
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            assert candidacy.is_leader
            await candidacy.resign()
            assert etcdctl.get_prefix("orphan/").kvs == {}  # no orphan in the queue
            assert etcdctl.lease_timetolive(lease)[0] > 0  # the caller's lease: left alone


async def test_a_start_that_fails_after_its_put_went_through_deletes_the_key(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every reply is held until start() has given up; then etcd answers again: the key
    the lost put left on the caller's lease is found by its name and deleted."""
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            election = Election(conn, "orphan-fail")
            hold_after_lease_ttl(election, proxy, monkeypatch)
            candidacy = election.candidacy("me", lease=lease)
            enter = candidacy._enter

            async def enter_then_heal() -> None:
                try:
                    await enter()
                finally:
                    proxy.cut()  # the held replies are lost; etcd answers from here on
                    proxy.heal()

            monkeypatch.setattr(candidacy, "_enter", enter_then_heal)
            with pytest.raises(RegistryError):
                await asyncio.wait_for(candidacy.start(), 15)
            # no orphan in the queue: deleted by start(), or (when etcd is slow to answer
            # again on a loaded machine) by the deletion start() left retrying
            await eventually(lambda: etcdctl.get_prefix("orphan-fail/").kvs == {}, timeout=10)
            assert not candidacy.is_leader
            assert etcdctl.lease_timetolive(lease)[0] > 0


async def test_a_start_that_cannot_clean_up_names_the_key_it_may_leave(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            election = Election(conn, "orphan-left")
            hold_after_lease_ttl(election, proxy, monkeypatch)
            key = election.key_for(lease)

            async def refuse_once_put() -> None:
                await eventually(lambda: etcdctl.get(key) == b"me", timeout=10)
                proxy.refuse()  # and etcd stays out of reach

            refusing = asyncio.create_task(refuse_once_put())
            with pytest.raises(RegistryError) as caught:
                await asyncio.wait_for(election.candidacy("me", lease=lease).start(), 15)
            await refusing
            message = str(caught.value)
            assert key.decode() in message and "may still stand" in message, message
            assert "\n" not in message
            assert etcdctl.get(key) == b"me"  # it does: the message was true


def fail_delete_then(candidacy: Any, monkeypatch: pytest.MonkeyPatch, after: Any) -> None:
    """Run ``after()`` once the guarded delete of ``resign()`` has given up."""
    delete = candidacy._delete_key

    async def then() -> None:
        try:
            await delete()
        finally:
            after()

    monkeypatch.setattr(candidacy, "_delete_key", then)


async def resign_with_held_replies(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch, name: str, heal: bool
) -> tuple[Any, BaseException | None]:
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            candidacy = Election(conn, name).candidacy("me", lease=lease)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            fail_delete_then(candidacy, monkeypatch, proxy.heal if heal else lambda: None)
            proxy.hold_replies()  # the delete reaches etcd; no reply comes back in time
            resigning = asyncio.create_task(candidacy.resign())
            await eventually(lambda: etcdctl.get(candidacy.key) is None, timeout=5)
            try:
                await asyncio.wait_for(resigning, 15)
            except ResignFailed as exc:
                return candidacy, exc
            finally:
                proxy.heal()
            return candidacy, None


async def test_a_resign_whose_delete_timed_out_re_reads_the_key(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete went through but its replies timed out; the link is back for the
    re-read, which confirms the key is gone: resigned, not ResignFailed."""
    candidacy, error = await resign_with_held_replies(etcd, etcdctl, monkeypatch, "re-read", True)
    assert error is None
    assert candidacy.lost.is_set() and candidacy.reason == "resigned"
    assert etcdctl.get_prefix("re-read/").kvs == {}


async def test_a_resign_that_cannot_re_read_says_the_state_is_unknown(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidacy, error = await resign_with_held_replies(etcd, etcdctl, monkeypatch, "held", False)
    assert error is not None and "unknown" in str(error), error
    assert "\n" not in str(error)
    assert not candidacy.lost.is_set() and not candidacy.is_leader


async def test_a_failed_resign_on_a_kept_lease_can_be_retried_after_the_window(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """The owner keeps its lease alive; a resign fails (etcd refused); later, past the
    confirm window and the TTL, the retried resign must still delete the key, not take
    the lapsed confirmation for "already lost, nothing to resign"."""
    lease = etcdctl.lease_grant(2)

    async def keep_alive() -> None:
        while True:
            await asyncio.to_thread(etcdctl.lease_keepalive_once, lease)
            await asyncio.sleep(0.4)

    owner = asyncio.create_task(keep_alive())
    try:
        with tcp_proxy(etcd.client_port) as proxy:
            async with connection(proxy.endpoint, command_timeout=1.0) as conn:
                candidacy = Election(conn, "retry-resign").candidacy("me", lease=lease)
                await candidacy.start()
                await asyncio.wait_for(candidacy.wait_elected(), 10)
                proxy.refuse()
                with pytest.raises(ResignFailed):
                    await candidacy.resign()
                await asyncio.sleep(3)  # past the window (1.5 s) and the lease's TTL
                assert etcdctl.get(candidacy.key) == b"me" and not candidacy.is_leader
                proxy.heal()
                for _ in range(5):  # retried as its error says (gRPC may still be reconnecting)
                    try:
                        await candidacy.resign()
                        break
                    except ResignFailed:
                        await asyncio.sleep(0.5)
                assert etcdctl.get_prefix("retry-resign/").kvs == {}
                assert candidacy.lost.is_set()
    finally:
        owner.cancel()
        await asyncio.gather(owner, return_exceptions=True)


async def test_an_own_lease_start_that_fails_after_its_put_names_the_key_and_revokes(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The put reaches etcd, its reply is held, then the link freezes: start() fails. The
    key must not lead for the whole TTL unsaid: the error names it, and once etcd answers
    again our own lease is revoked (in the background), so the key goes."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            election = Election(conn, "orphan-own")
            enter = election._enter

            async def enter_held(value: bytes, lease: int) -> tuple[bytes, int, int]:
                proxy.hold_replies()
                asyncio.get_running_loop().call_later(0.3, proxy.freeze)
                monkeypatch.setattr(election, "_enter", enter)  # once
                return await enter(value, lease)

            monkeypatch.setattr(election, "_enter", enter_held)
            candidacy = election.candidacy("me", ttl=60)
            with pytest.raises(RegistryError) as caught:
                await asyncio.wait_for(candidacy.start(), 20)
            key = election.key_for(candidacy.lease)
            assert etcdctl.get(key) == b"me"  # the put went through
            message = str(caught.value)
            assert key.decode() in message and "\n" not in message, message
            proxy.cut()
            proxy.heal()
            await eventually(lambda: etcdctl.get_prefix("orphan-own/").kvs == {}, timeout=10)
            assert etcdctl.lease_timetolive(candidacy.lease)[0] < 0  # revoked
            assert not candidacy.is_leader


async def test_a_failed_start_whose_first_re_read_also_fails_still_deletes_the_key(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the test above once failed on a loaded machine: the one re-read that looks for
    the key the lost put left timed out too (gRPC still reconnecting), so the key's
    CreateRevision stayed unknown and nothing deleted it. Here that re-read fails once."""
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            election = Election(conn, "orphan-slow")
            hold_after_lease_ttl(election, proxy, monkeypatch)
            candidacy = election.candidacy("me", lease=lease)
            enter, read_key = candidacy._enter, election._read_key

            async def read_fails_once(key: bytes, *_: float) -> Any:
                monkeypatch.setattr(election, "_read_key", read_key)
                raise EtcdUnavailable("etcd at the proxy did not answer in time")

            async def enter_then_heal() -> None:
                try:
                    await enter()
                finally:
                    proxy.cut()
                    proxy.heal()
                    monkeypatch.setattr(election, "_read_key", read_fails_once)

            monkeypatch.setattr(candidacy, "_enter", enter_then_heal)
            with pytest.raises(RegistryError):
                await asyncio.wait_for(candidacy.start(), 15)
            await eventually(lambda: etcdctl.get_prefix("orphan-slow/").kvs == {}, timeout=10)
            assert etcdctl.lease_timetolive(lease)[0] > 0
