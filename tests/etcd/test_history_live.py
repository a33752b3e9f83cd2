"""Live removals are named by what can be proved (test_reasons.py holds the rule);
history arrives at start."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from support.helpers import connection, eventually

from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.session import RegistrySession

PREFIX = "/services/"


def put(etcdctl: Any, service: str, iid: str, lease: int | None = None) -> str:
    key = f"{PREFIX}{service}/{iid}"
    etcdctl.put(key, f'{{"Id": "{iid}", "Address": "http://{iid}:80"}}', lease=lease)
    return key


@contextlib.asynccontextmanager
async def session(
    etcd: Any, **kwargs: Any
) -> AsyncIterator[tuple[RegistrySession, list[LogEntry], list[LogEntry]]]:
    live: list[LogEntry] = []
    past: list[LogEntry] = []
    config = ConnectionConfig(endpoints=(etcd.endpoint,))
    sess = RegistrySession(
        config, on_batch=lambda _b, e: live.extend(e), on_history=past.extend, **kwargs
    )
    task = asyncio.create_task(sess.run())
    try:
        await sess.watcher.wait_live(15)
        await eventually(lambda: sess.history.loaded)
        yield sess, live, past
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sess.shutdown()


def kind_of(entries: list[LogEntry], key: str) -> LogKind | None:
    found = [e.kind for e in entries if e.key == key]
    return found[-1] if found else None


async def test_live_removals_by_other_clients_are_named(etcd: Any, etcdctl: Any) -> None:
    async with session(etcd) as (sess, live, _past), connection(etcd.endpoint) as fast:
        alive = etcdctl.lease_grant(60)
        dereg = put(etcdctl, "Orders", "dereg", lease=alive)
        plain = put(etcdctl, "Orders", "plain")
        doomed = etcdctl.lease_grant(60)
        revoked = put(etcdctl, "Orders", "revoked", lease=doomed)
        shared_lease = etcdctl.lease_grant(60)
        shared = [put(etcdctl, "Billing", f"b{i}", lease=shared_lease) for i in range(3)]
        # Granted and put at once: the dashboard reads the lease just after its grant, so
        # the bounds of its deadline are tight enough for a certain EXPIRED (reasons.py).
        short, _ = await fast.grant(2)
        expired = f"{PREFIX}Billing/expired"
        await fast.put(expired.encode(), b'{"Id": "expired", "Address": "http://e:80"}', short)
        await eventually(lambda: kind_of(live, expired) is LogKind.PUT)
        # "Revoked with time left" needs a reading of the lease before its end; on a loaded
        # machine the tracker may not have taken one yet, and then it rightly says less.
        for lease in (doomed, shared_lease):
            await eventually(lambda lease=lease: sess.tracker.window(lease) is not None)
        etcdctl.run("del", dereg)
        etcdctl.run("del", plain)
        etcdctl.run("del", shared[0])  # its lease lives on with two other keys
        etcdctl.lease_revoke(doomed)
        etcdctl.lease_revoke(shared_lease)
        await eventually(lambda: kind_of(live, dereg) is LogKind.DEREGISTERED)
        await eventually(lambda: kind_of(live, plain) is LogKind.DEREGISTERED)
        await eventually(lambda: kind_of(live, shared[0]) is LogKind.DEREGISTERED)
        # Revoked by another client: certainly revoked with time left, but whether the key
        # went with the lease or was deleted just before cannot be told (test_reasons.py).
        await eventually(lambda: kind_of(live, revoked) is LogKind.LEASE_ENDED)
        for key in shared[1:]:
            await eventually(lambda key=key: kind_of(live, key) is LogKind.LEASE_ENDED)
        ended = [e for e in live if e.kind is LogKind.LEASE_ENDED]
        assert {e.key for e in ended} == {revoked, *shared[1:]}
        assert all("revoked with" in e.detail for e in ended), ended
        # Expired: certain unless etcd removed it within the precision of its deadline (then
        # "ran out", not certain); test_reasons.py shows EXPIRED is given when provable.
        await eventually(lambda: kind_of(live, expired) is not LogKind.PUT, timeout=15)
        gone = [e for e in live if e.key == expired][-1]
        assert gone.kind is LogKind.EXPIRED or "ran out" in gone.detail, gone
        assert not any(e.kind is LogKind.DELETE for e in live)
        reasons = {e.key_text: e.label for e in sess.history if e.kind.value == "DELETE"}
        assert reasons[revoked] == "LEASE ENDED" and reasons[expired] == gone.kind.value
        # Entries keep the order of the revisions, whatever waited for a lease lookup.
        revisions = [e.revision for e in live]
        assert revisions == sorted(revisions)


async def test_dashboard_revoke_and_delete_use_the_same_words(etcd: Any, etcdctl: Any) -> None:
    async with session(etcd) as (sess, live, _past):
        lease = etcdctl.lease_grant(60)
        a = put(etcdctl, "Orders", "a", lease=lease)
        other = etcdctl.lease_grant(60)
        b = put(etcdctl, "Orders", "b", lease=other)
        await eventually(lambda: b.encode() in sess.state)
        await sess.revoke(lease)
        await sess.delete(b.encode())
        await eventually(lambda: kind_of(live, a) is LogKind.REVOKED)
        await eventually(lambda: kind_of(live, b) is LogKind.DEREGISTERED)


async def test_history_before_launch_fills_the_log_oldest_first(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    a = put(etcdctl, "Orders", "a", lease=lease)
    b = put(etcdctl, "Orders", "b", lease=lease)
    etcdctl.lease_revoke(lease)
    c = put(etcdctl, "Orders", "c")
    async with session(etcd) as (sess, live, past):
        assert [(e.kind, e.key) for e in past] == [
            (LogKind.PUT, a),
            (LogKind.PUT, b),
            (LogKind.LEASE_ENDED, a),
            (LogKind.LEASE_ENDED, b),
            (LogKind.PUT, c),
        ]
        assert all(e.historic and e.revision for e in past)
        assert sess.history.describe_reach() == "history from rev 1"
        assert live == []


async def test_history_read_back_is_bounded(etcd: Any, etcdctl: Any) -> None:
    for i in range(20):
        put(etcdctl, "Orders", f"o{i}")
    async with session(etcd, history_revisions=5, history_max=3) as (sess, _live, past):
        assert len(past) == 3 and len(sess.history) == 3
        for i in range(10):
            put(etcdctl, "Orders", f"n{i}")
        await eventually(lambda: sess.history.events[-1].instance_id == "n9")
        assert len(sess.history) == 3


async def test_a_reload_after_compaction_holds_no_made_up_events(etcd: Any, etcdctl: Any) -> None:
    """The watch falls behind a compaction (the link refuses meanwhile) and the session
    reloads a snapshot. The snapshot's differences are not events: the history held stays in
    revision order, holds no delete etcd did not make, and from the reload on equals what
    etcdctl's watch reports."""
    from support.tcp_proxy import tcp_proxy

    for i in range(3):
        put(etcdctl, "D", f"k{i}")
    with tcp_proxy(etcd.client_port) as proxy:
        config = ConnectionConfig(endpoints=(proxy.endpoint,), dial_timeout=2, command_timeout=2)
        sess = RegistrySession(config, read_only=True, history_revisions=20)
        task = asyncio.create_task(sess.run())
        try:
            await sess.watcher.wait_live(15)
            await eventually(lambda: sess.history.loaded)
            proxy.refuse()
            put(etcdctl, "D", "gone")
            etcdctl.run("del", f"{PREFIX}D/gone")
            put(etcdctl, "D", "k0")  # an update
            etcdctl.run("del", f"{PREFIX}D/k1")
            _, mid = etcdctl.get_prefix(PREFIX)
            put(etcdctl, "D", "after")
            etcdctl.run("del", f"{PREFIX}D/k2")
            etcdctl.compact(int(mid))
            proxy.heal()
            await eventually(lambda: f"{PREFIX}D/after".encode() in sess.state, timeout=20)
            put(etcdctl, "D", "end")
            _, end = etcdctl.get_prefix(PREFIX)
            await eventually(lambda: sess.state.revision >= int(end), timeout=10)
            held = [(e.revision, e.kind.value, e.key.decode()) for e in sess.history]
            assert [r for r, _, _ in held] == sorted(r for r, _, _ in held), held
            reach = sess.history.reach
            # From the reload on, the only change etcd made is the last put (etcdctl read its
            # revision); before it, only what the watch saw before the link went down.
            assert [h for h in held if h[0] >= reach] == [(int(end), "PUT", f"{PREFIX}D/end")]
            assert [h for h in held if h[0] < reach] == [
                (r, "PUT", f"{PREFIX}D/k{i}") for i, r in enumerate((2, 3, 4))
            ]
            assert reach > int(mid)  # nothing before the compaction can be rebuilt
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sess.shutdown()
