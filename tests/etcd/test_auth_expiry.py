"""An auth-enabled etcd whose simple tokens live 2 s: the token goes stale during every idle
spell, under a live watch, a live keep-alive, a lease tracker and bursts of concurrent calls.

Re-authenticating must happen in place: no stream may die, no CancelledError may escape,
and the registry must keep following etcd (checked against etcdctl).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import pytest
from support.cluster_helpers import enable_auth
from support.etcdctl import Etcdctl
from support.helpers import assert_matches_etcdctl, connection, eventually, running_watcher

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import EtcdUnavailable
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.leases import LeaseTracker
from etcd_registry_tui.registry.registration import ServiceRegistration

PREFIX = "/services/"
TOKEN_TTL = 2  # seconds (etcd --auth-token-ttl)
# etcd forgets a simple token TTL seconds after its last use, checked once a second: an idle
# spell this long always outlives the token (test_streams_opened_after_expiry proves it does).
IDLE = TOKEN_TTL + 2.5

MakeEtcdctl = Callable[[str | Sequence[str]], Etcdctl]


@pytest.fixture
def auth_etcd() -> EmbeddedEtcd:
    from support.etcdctl import require_etcd

    require_etcd()
    server = EmbeddedEtcd(extra_args=["--auth-token-ttl", str(TOKEN_TTL)])
    try:
        server.start()
        yield server  # type: ignore[misc]
    finally:
        server.cleanup()


def _config(server: EmbeddedEtcd) -> ConnectionConfig:
    return ConnectionConfig(
        endpoints=(server.endpoint,),
        user="root",
        password="pw",
        dial_timeout=2.0,
        command_timeout=3.0,
    )


async def _burst(conn: EtcdConnection, n: int = 16) -> list[object]:
    """n concurrent reads, results or the exceptions they raised (BaseException included)."""

    async def one(i: int) -> object:
        try:
            return await conn.get(f"/services/Burst/{i}".encode())
        except BaseException as exc:  # noqa: BLE001 - CancelledError is what we look for
            return exc

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_stale_token_under_live_streams_and_concurrent_calls(
    auth_etcd: EmbeddedEtcd, make_etcdctl: MakeEtcdctl
) -> None:
    authed = enable_auth(make_etcdctl(auth_etcd.endpoint))
    authed.put("/services/Orders/o-1", '{"Id": "o-1", "Address": "http://o1"}')
    authed.put("/services/Orders/o-2", '{"Id": "o-2", "Address": "http://o2"}')
    events: list[str] = []
    async with EtcdConnection(_config(auth_etcd)) as conn:
        reg = ServiceRegistration(
            conn, "Auth", "http://auth:1", ttl=6, on_event=lambda what, _: events.append(what)
        )
        await reg.register()
        lease = reg.lease_id
        assert lease is not None
        keepalive = reg.start_keepalive()
        tracker = LeaseTracker(conn)
        tracker.track([lease])
        tracker_task = asyncio.create_task(tracker.run(), name="tracker")
        try:
            async with running_watcher(conn) as run:
                await assert_matches_etcdctl(run.watcher, authed, PREFIX)
                for round_ in range(2):
                    beats = events.count("heartbeat")
                    await asyncio.sleep(IDLE)
                    results = await _burst(conn)
                    failures = [r for r in results if isinstance(r, BaseException)]
                    assert not failures, f"round {round_}: {failures!r}"
                    # a key written by someone else after the token went stale shows up
                    authed.put(f"/services/After/a-{round_}", f'{{"Id": "a-{round_}"}}')
                    authed.run("del", f"/services/Orders/o-{round_ + 1}")
                    view = await assert_matches_etcdctl(run.watcher, authed, PREFIX)
                    assert f"/services/After/a-{round_}".encode() in view
                    # the registration is still there, on the lease it was first given
                    assert view[reg.key.encode()][1] == lease
                    assert run.watcher.status.state is ConnState.LIVE
                    assert not run.task.done() and not keepalive.done()
                    assert not tracker_task.done()
                    assert events.count("heartbeat") > beats, "no heartbeat in a whole round"
                assert ConnState.STOPPED not in run.states_seen()
                # every heartbeat went through: never lost, never registered again
                assert reg.registrations == 1 and reg.lease_id == lease
                assert "lost" not in events
                remaining = tracker.remaining(lease)
                assert remaining is not None and remaining > 0
                assert tracker.errors == 0, tracker.last_error
        finally:
            tracker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tracker_task
            await reg.unregister()
    assert reg.key.encode() not in authed.get_prefix(PREFIX).kvs


async def test_streams_opened_after_expiry_use_a_fresh_token(
    auth_etcd: EmbeddedEtcd, make_etcdctl: MakeEtcdctl
) -> None:
    """A watch and a keep-alive stream opened with a stale token are accepted (the
    connection authenticates again first, or on etcd's refusal), and a burst of calls
    on a stale token authenticates once, not once per call."""
    authed = enable_auth(make_etcdctl(auth_etcd.endpoint))
    lease = authed.lease_grant(30)
    authed.put("/services/Kept/k-1", "{}", lease=lease)
    async with EtcdConnection(_config(auth_etcd)) as conn:
        await asyncio.sleep(IDLE)
        async for response in conn.watch(PREFIX.encode(), 1):
            assert response.created and not response.canceled
            break
        await asyncio.sleep(IDLE)
        stream = conn.keepalive_stream()
        try:
            assert await stream.keepalive(lease) > 0
        finally:
            stream.close()
        await asyncio.sleep(IDLE)
        before = conn.authentications
        results = await _burst(conn, 16)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert conn.authentications - before == 1


async def test_cancelling_a_caller_during_reauthentication_is_its_own_cancel(
    auth_etcd: EmbeddedEtcd, make_etcdctl: MakeEtcdctl
) -> None:
    """Our own cancellation still raises CancelledError (only foreign ones are turned into
    EtcdUnavailable), and the others waiting for the same refresh are not harmed."""
    enable_auth(make_etcdctl(auth_etcd.endpoint))
    async with EtcdConnection(_config(auth_etcd)) as conn:
        await asyncio.sleep(IDLE)
        tasks = [asyncio.create_task(conn.get(f"/k/{i}".encode())) for i in range(8)]
        await asyncio.sleep(0)
        tasks[0].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError)
        assert all(r is None for r in done[1:]), done


async def test_calls_and_streams_cut_off_under_them_report_unavailable(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """Channels closed under a watch, a heartbeat and a call in flight (etcd frozen, so
    all three are waiting): each ends as EtcdUnavailable, never as a CancelledError
    that its task would take for its own cancellation; all three carry on afterwards."""
    etcdctl.put("/services/Cut/c-1", "{}")
    events: list[str] = []
    async with connection(etcd.endpoint, dial_timeout=2.0, command_timeout=30.0) as conn:
        reg = ServiceRegistration(
            conn, "Cut", "http://c:1", ttl=20, on_event=lambda what, _: events.append(what)
        )
        await reg.register()
        lease = reg.lease_id
        stream = conn.keepalive_stream()
        assert await stream.keepalive(lease) > 0  # type: ignore[arg-type]
        async with running_watcher(conn) as run:
            mark = len(run.statuses)
            etcd.freeze()
            try:
                heartbeat = asyncio.create_task(stream.keepalive(lease))  # type: ignore[arg-type]
                call = asyncio.create_task(conn.get(b"/services/Cut/c-1"))
                await asyncio.sleep(0.5)
                assert not heartbeat.done() and not call.done()
                await conn.close()
                done = await asyncio.gather(heartbeat, call, return_exceptions=True)
            finally:
                etcd.thaw()
            assert all(isinstance(r, EtcdUnavailable) for r in done), done
            await eventually(
                lambda: run.saw(ConnState.RECONNECTING, ConnState.LIVE, since=mark), timeout=30
            )
            assert not run.task.done()
            assert ConnState.STOPPED not in run.states_seen()
            etcdctl.put("/services/Cut/c-2", "{}")
            await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
            assert await stream.keepalive(lease) > 0  # type: ignore[arg-type]
            stream.close()
        await reg.unregister()
