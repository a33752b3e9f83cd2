"""The rule for removals: a reason on screen is either certain or says that it is not.

Each cause is carried out against a real etcd (by etcdctl, by a second client, by the
dashboard, or by etcd itself when a lease runs out), and the reason the session gives is
checked against what was done. ``LEASE ENDED`` says "not certain" and is allowed wherever
certainty is impossible; a certain reason that contradicts what was done never is.
Outages go through the tests' own TCP proxy (``tests/support/tcp_proxy.py``) while the causes
are carried out directly on etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from support.helpers import connection, eventually, grant_lease_id
from support.tcp_proxy import TcpProxy, tcp_proxy

from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.history.alarms import MassExpiryAlarm
from etcd_registry_tui.registry.history.reasons import Clues, judge
from etcd_registry_tui.registry.history.store import HistoryEvent
from etcd_registry_tui.registry.leases import LeaseWindow
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.registry.session import RegistrySession

PREFIX = "/services/"
ENDED = LogKind.LEASE_ENDED
#: For each cause, the reasons that do not contradict it.
ALLOWED = {
    "delete": {LogKind.DEREGISTERED},  # its lease lives on: etcd says so, so it is certain
    "revoke": {LogKind.REVOKED, ENDED},
    "expiry": {LogKind.EXPIRED, ENDED},
    "delete then revoke": {LogKind.DEREGISTERED, ENDED},
    "revoke near the end": {LogKind.REVOKED, ENDED},
    "dashboard revoke": {LogKind.REVOKED},  # the dashboard did it and etcd's answer says so
    "revoke during an outage": {LogKind.REVOKED, ENDED},
    "expiry during an outage": {LogKind.EXPIRED, ENDED},
}


def put(etcdctl: Any, service: str, iid: str, lease: int | None = None) -> str:
    key = f"{PREFIX}{service}/{iid}"
    etcdctl.put(key, f'{{"Id": "{iid}", "Address": "http://{iid}:80"}}', lease=lease)
    return key


class Seen:
    """What the session reported: log entries and events, as they came."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self.events: list[HistoryEvent] = []
        self.alarm = MassExpiryAlarm()
        self.alarm_texts: list[str] = []
        self.sess: RegistrySession | None = None
        self.states: list[ConnState] = []

    def on_events(self, events: list[HistoryEvent]) -> None:
        self.events.extend(events)
        assert self.sess is not None
        self.alarm_texts += self.alarm.observe(
            events, self.sess.state, time.time(), self.sess.waiting_removals()
        )

    def reason(self, key: str) -> LogKind | None:
        removals = [e.kind for e in self.entries if e.key == key and e.kind not in (LogKind.PUT,)]
        return removals[-1] if removals else None


@contextlib.asynccontextmanager
async def watching(endpoint: str, **config: Any) -> AsyncIterator[tuple[RegistrySession, Seen]]:
    seen = Seen()
    sess = RegistrySession(
        ConnectionConfig(endpoints=(endpoint,), **config),
        on_batch=lambda _b, entries: seen.entries.extend(entries),
        on_events=seen.on_events,
        on_status=lambda status: seen.states.append(status.state),
        history_revisions=0,
    )
    seen.sess = sess
    task = asyncio.create_task(sess.run())
    try:
        await sess.watcher.wait_live(30)
        yield sess, seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sess.shutdown()


async def tracked(sess: RegistrySession, *leases: int) -> None:
    """Until the tracker has read each lease's countdown from etcd."""
    await eventually(lambda: all(sess.tracker.remaining(lease) is not None for lease in leases))


def contradictions(seen: Seen, causes: dict[str, str]) -> list[str]:
    wrong = []
    for key, cause in causes.items():
        got = seen.reason(key)
        if got not in ALLOWED[cause]:
            details = [e.detail for e in seen.entries if e.key == key]
            wrong.append(f"{cause}: {key} logged {got} ({details})")
    return wrong


async def test_each_cause_gets_a_reason_that_is_true_or_says_it_is_not_certain(
    etcd: Any, etcdctl: Any
) -> None:
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen), connection(etcd.endpoint) as other:
            await each_cause(sess, seen, other, etcdctl, proxy)


async def each_cause(
    sess: RegistrySession, seen: Seen, other: EtcdConnection, etcdctl: Any, proxy: TcpProxy
) -> None:
    causes: dict[str, str] = {}
    lives = etcdctl.lease_grant(60)
    causes[put(etcdctl, "Orders", "deleted", lease=lives)] = "delete"
    doomed = etcdctl.lease_grant(60)
    causes[put(etcdctl, "Orders", "revoked", lease=doomed)] = "revoke"
    short = etcdctl.lease_grant(2)
    causes[put(etcdctl, "Orders", "expired", lease=short)] = "expiry"
    # Go's Resign then Session.Close: the key is deleted, then its lease revoked, a
    # round trip apart (item 12).
    resigning = {}
    for n in range(4):
        lease = etcdctl.lease_grant(60)
        key = put(etcdctl, "Elections", f"resign-{n}", lease=lease)
        resigning[key] = lease
        causes[key] = "delete then revoke"
    mine = etcdctl.lease_grant(60)
    causes[put(etcdctl, "Orders", "mine", lease=mine)] = "dashboard revoke"
    await eventually(lambda: all(key.encode() in sess.state for key in causes))
    await tracked(sess, lives, doomed, short, *resigning.values())

    etcdctl.run("del", f"{PREFIX}Orders/deleted")
    etcdctl.lease_revoke(doomed)
    # The dashboard's link is slower than the resigning client's (here: held for a
    # moment), so the lease is gone by the time the dashboard asks about it.
    proxy.freeze()
    for key, lease in resigning.items():
        assert await other.delete(key.encode()) == 1
        await other.revoke(lease)
    await asyncio.sleep(0.2)
    proxy.heal()
    assert await sess.revoke(mine) == 1  # its one key went with it
    late = etcdctl.lease_grant(3)
    late_granted = time.monotonic()
    causes[put(etcdctl, "Billing", "late", lease=late)] = "revoke near the end"
    await tracked(sess, late)
    # Revoked with about 1.2 s of its 3 s left (item 25: never EXPIRED).
    await asyncio.sleep(max(0.0, late_granted + 1.8 - time.monotonic()))
    await other.revoke(late)

    await eventually(lambda: all(seen.reason(key) is not None for key in causes), timeout=15)
    assert contradictions(seen, causes) == []
    assert not seen.alarm.active


@pytest.mark.parametrize("outage", ["refuse", "freeze"])
async def test_removals_during_an_outage_are_judged_by_what_was_known(
    etcd: Any, etcdctl: Any, outage: str
) -> None:
    """Item 11: leases revoked with time left while the link is down are not EXPIRED
    when the link returns, however far their countdowns ran meanwhile, and raise no
    MASS EXPIRY alarm."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen):
            causes: dict[str, str] = {}
            revoked = []
            for n in range(3):
                lease = etcdctl.lease_grant(4)
                causes[put(etcdctl, "Orders", f"o{n}", lease=lease)] = "revoke during an outage"
                revoked.append(lease)
            short = etcdctl.lease_grant(3)
            causes[put(etcdctl, "Billing", "b0", lease=short)] = "expiry during an outage"
            await eventually(lambda: all(key.encode() in sess.state for key in causes))
            await tracked(sess, short, *revoked)

            getattr(proxy, outage)()
            for lease in revoked:  # straight to etcd: with more than 3 s left
                etcdctl.lease_revoke(lease)
            await asyncio.sleep(5.5)  # past every deadline, as the countdowns show it
            proxy.heal()

            await eventually(
                lambda: all(seen.reason(key) is not None for key in causes), timeout=20
            )
            assert contradictions(seen, causes) == []
            assert seen.alarm_texts == [] and not seen.alarm.active


async def test_a_revoke_near_the_end_hidden_by_a_short_freeze_is_not_expired(
    etcd: Any, etcdctl: Any
) -> None:
    """The link goes silent (no error, no reconnect) with about 1.3 s left on a lease, the
    lease is revoked meanwhile, and the link returns just after its deadline: the delete
    then arrives late, as an expiry would, but nothing proves the lease ran out. Nor was
    the connection down, unless the watch said so: the words say what is known."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen):
            lease = etcdctl.lease_grant(3)
            granted = time.monotonic()
            key = put(etcdctl, "Orders", "frozen", lease=lease)
            await tracked(sess, lease)
            await asyncio.sleep(max(0.0, granted + 1.7 - time.monotonic()))
            seen.states.clear()
            proxy.freeze()
            etcdctl.lease_revoke(lease)
            await asyncio.sleep(max(0.0, granted + 3.6 - time.monotonic()))
            proxy.heal()
            await eventually(lambda: seen.reason(key) is not None, timeout=15)
            assert contradictions(seen, {key: "revoke during an outage"}) == []
            (gone,) = [e for e in seen.events if e.key == key.encode() and e.kind.value == "DELETE"]
            # It may have been revoked with time left: no alarm counts it as run out.
            assert not gone.ran_out, gone.detail
            if all(state is ConnState.LIVE for state in seen.states):
                assert "connection was down" not in gone.detail, (gone.detail, seen.states)


async def test_leases_that_run_out_while_connected_are_expired(etcd: Any) -> None:
    """EXPIRED is given when it can be proved: the deadline read just after the grant had
    passed when the delete arrived. etcd removes an expired lease on a 500 ms tick, so a
    lease removed within the precision of its deadline (a few ms) is "ran out", not
    certain; leases granted 170 ms apart cannot all fall there."""
    async with watching(etcd.endpoint) as (sess, seen), connection(etcd.endpoint) as fast:
        keys = []
        for n in range(3):
            lease, _ = await fast.grant(2)
            key = f"{PREFIX}Orders/run-out-{n}"
            await fast.put(
                key.encode(), f'{{"Id": "{n}", "Address": "http://e:1"}}'.encode(), lease
            )
            keys.append(key)
            await asyncio.sleep(0.17)
        await eventually(lambda: all(seen.reason(key) is not None for key in keys), timeout=15)
        assert contradictions(seen, dict.fromkeys(keys, "expiry")) == []
        gone = [e for e in seen.entries if e.key in keys and e.kind is not LogKind.PUT]
        assert all(e.kind is LogKind.EXPIRED or "ran out" in e.detail for e in gone), gone
        assert sum(e.kind is LogKind.EXPIRED for e in gone) >= 2, gone


def judged(ttl_after: int | None, clues: Clues, revision: int = 9) -> tuple[str, str]:
    """The reason judge() gives a delete at ``revision`` of a key on lease 0xab."""
    value = b'{"Id": "a", "Address": "http://a:1"}'
    event = HistoryEvent.make(
        PREFIX, revision, None, KeyValue(f"{PREFIX}S/a".encode(), value, 1, 1, 1, 0xAB)
    )
    judge(event, ttl_after, clues)
    assert event.reason is not None
    return event.reason.value, event.detail


def test_the_rule_in_short() -> None:
    """The same rule as above, case by case (pure logic: the clues are given)."""
    read = LeaseWindow(lo=100.0, hi=100.4, alive_at=99.0)
    # The lease outlived the delete: deregistered, whatever the countdown said.
    assert judged(0, Clues(100.5, read))[0] == "DEREGISTERED"

    # The dashboard's revoke answered with the delete's revision, after a read that found
    # the key on the lease, and only then.
    def revoked(at: int, read_at: int | None = 8, on_lease: bool = True) -> Clues:
        return Clues(50.0, read, revoked_at=at, read_before=read_at, on_lease_before=on_lease)

    assert judged(-1, revoked(9))[0] == "REVOKED"
    assert judged(-1, revoked(10))[0] == "LEASE ENDED"
    # etcd answers a revoke that removed nothing with the current revision: maybe that of
    # someone else's delete. Not proof (nor is an answer without a read before it).
    assert judged(-1, revoked(9, read_at=None))[0] == "LEASE ENDED"
    # Gone by the read, and the revoke after it found the lease: it outlived the delete.
    kind, detail = judged(-1, revoked(9, read_at=9, on_lease=False))
    assert kind == "DEREGISTERED" and "lived on" in detail
    kind, detail = judged(-1, revoked(9, on_lease=False))  # not on the lease at the read
    assert kind == "LEASE ENDED" and "revoked from the dashboard" in detail
    # Not looked up (too many removals waiting): says so.
    kind, detail = judged(None, Clues(100.6, read, unchecked=True))
    assert kind == "LEASE ENDED" and "not checked" in detail
    # Time left for certain (even after a gap): revoked, but the key may have gone first.
    for gap in (False, True):
        kind, detail = judged(-1, Clues(98.5, read, gap=gap))
        assert kind == "LEASE ENDED" and "revoked with 1.5s+ left" in detail
    # The deadline had passed, read shortly before, connected: expired.
    assert judged(-1, Clues(100.6, read))[0] == "EXPIRED"
    # ... but not across a gap, nor before the deadline's upper bound, nor long after it,
    # nor from a reading taken long before the deadline.
    assert judged(-1, Clues(100.6, read, gap=True))[1].endswith(
        "while the connection was down (expired or revoked)"
    )
    assert "ran out" in judged(-1, Clues(100.2, read))[1]
    assert judged(-1, Clues(104.0, read))[0] == "LEASE ENDED"
    old = LeaseWindow(lo=100.0, hi=100.4, alive_at=90.0)
    assert judged(-1, Clues(100.6, old))[0] == "LEASE ENDED"
    # Nothing known: not certain.
    assert judged(-1, Clues(100.6))[0] == "LEASE ENDED"
    assert judged(None, Clues(100.6, read))[0] == "LEASE ENDED"


async def test_a_dashboard_delete_of_a_key_already_gone_is_not_claimed(
    etcd: Any, etcdctl: Any
) -> None:
    """Another client revokes the lease; the dashboard's delete of the key, sent just
    after, finds nothing. The key went with the revoke, not by the dashboard's delete."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen):
            lease = etcdctl.lease_grant(60)
            key = put(etcdctl, "Orders", "raced", lease=lease)
            await tracked(sess, lease)
            proxy.freeze()  # the dashboard hears of the revoke only after it sent its delete
            etcdctl.lease_revoke(lease)
            deleting = asyncio.create_task(sess.delete(key.encode()))
            await asyncio.sleep(0.3)
            proxy.heal()
            assert await deleting is False
            await eventually(lambda: seen.reason(key) is not None)
            assert contradictions(seen, {key: "revoke"}) == []


def test_a_starved_tracker_never_calls_a_removal_expired() -> None:
    """The deadline as last read had passed when the delete came, a little later: EXPIRED
    when the tracker kept up; when a reading it needed was not taken (its rate cap starved
    it), an owner's renewal since could have gone unseen, so it is LEASE ENDED."""
    kv = KeyValue(b"/services/S/a", b"{}", 3, 3, 1, 0x77)
    window = LeaseWindow(lo=99.5, hi=100.0, alive_at=98.5)

    def judged(behind: bool) -> HistoryEvent:
        event = HistoryEvent.make("/services/", 9, None, kv)
        judge(event, -1, Clues(arrived=100.4, window=window, behind=behind))
        return event

    assert judged(False).reason == "EXPIRED"
    starved = judged(True)
    assert starved.reason == "LEASE ENDED" and "not read in time" in starved.detail


def test_the_tracker_knows_when_it_is_behind_on_a_lease() -> None:
    from etcd_registry_tui.registry.leases import LeaseTracker

    now = [100.0]
    tracker = LeaseTracker(None, clock=lambda: now[0])  # type: ignore[arg-type]
    tracker.note(0x77, 2, 2)  # a keep-alive answer: 2 s left; a reading is needed soon
    assert not tracker.behind_on(0x77)
    now[0] += 5.0  # no reading taken since, though one was needed before the end
    assert tracker.behind_on(0x77)
    tracker.note(0x77, 2, 2)  # read (renewed) again
    assert not tracker.behind_on(0x77)


async def test_a_dashboard_revoke_after_someone_else_deleted_the_key_is_not_claimed(
    etcd: Any, etcdctl: Any
) -> None:
    """Another client deletes the key (its lease lives on) while the dashboard's link is
    slow; the operator then revokes the lease, which has no keys by then. etcd answers a
    revoke that removes nothing with its current revision: that of the other client's
    delete. Not proof that the revoke took the key, nor a key for the count."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen), connection(etcd.endpoint) as other:
            lease = etcdctl.lease_grant(60)
            key = put(etcdctl, "Orders", "victim", lease=lease)
            await eventually(lambda: key.encode() in sess.state)
            await tracked(sess, lease)
            proxy.freeze()  # the dashboard hears of the delete only after it sent its revoke
            assert await other.delete(key.encode()) == 1
            revoking = asyncio.create_task(sess.revoke(lease))
            await asyncio.sleep(0.3)
            proxy.heal()
            assert await revoking == 0  # the revoke took no key
            await eventually(lambda: seen.reason(key) is not None)
            # The read before the revoke found the key gone, and the revoke then found the
            # lease: it outlived the delete.
            assert contradictions(seen, {key: "delete"}) == []


async def test_a_dashboard_delete_of_an_own_instance_someone_else_deleted_is_not_claimed(
    etcd: Any,
) -> None:
    """The same for an own instance: the dashboard's delete revokes its lease, which by
    then holds no key; that answer is not the revision of a delete the dashboard made."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen), connection(etcd.endpoint) as other:
            reg = await sess.register("Orders", "10.0.0.9:80", ttl=60)
            key = reg.key
            await eventually(lambda: key.encode() in sess.state)
            proxy.freeze()
            assert await other.delete(key.encode()) == 1
            deleting = asyncio.create_task(sess.delete(key.encode()))
            await asyncio.sleep(0.3)
            proxy.heal()
            await deleting
            await eventually(lambda: seen.reason(key) is not None)
            gone = [e for e in seen.entries if e.key == key and e.kind is not LogKind.PUT]
            assert gone[-1].kind in (LogKind.DEREGISTERED, ENDED), gone
            assert "from the dashboard" not in gone[-1].detail, gone


async def test_an_own_instance_that_expires_after_a_slow_registration_is_not_revoked(
    etcd: Any,
) -> None:
    """On a slow link (0.5 s each way) registering takes seconds after etcd granted the
    lease; paused at once, the instance's lease then runs out. Its deadline is bounded by
    when the grant was asked for, not by when registering finished: the removal is never
    "revoked with time left"."""
    with tcp_proxy(etcd.client_port, delay=0.5) as proxy:
        timeouts = {"command_timeout": 15.0, "dial_timeout": 15.0}
        async with watching(proxy.endpoint, **timeouts) as (sess, seen):
            reg = await sess.register("Orders", "10.0.0.8:80", ttl=2)
            sess.toggle_pause(reg.key.encode())
            key = reg.key
            await eventually(lambda: seen.reason(key) is not None, timeout=60)
            gone = [e for e in seen.entries if e.key == key and e.kind is not LogKind.PUT]
            assert contradictions(seen, {key: "expiry"}) == [], gone
            assert "left" not in gone[-1].detail, gone


async def test_removals_faster_than_lookups_keep_their_order_and_the_lag_stays_bounded(
    etcd: Any,
) -> None:
    """A slow link (0.05 s each way) and leases removed at 40 a second, faster than one
    lookup per round trip: the reasons are looked up side by side, so the removals held
    for them stay few (asked one at a time, they would pile up by the hundred); each
    arrives once, in the order of its revision, with a reason."""
    count = 160
    with tcp_proxy(etcd.client_port, delay=0.05) as proxy:
        async with (
            watching(proxy.endpoint, command_timeout=15.0) as (sess, seen),
            connection(etcd.endpoint) as other,
        ):
            leases, keys = [], []
            for n in range(count):
                lease, _ = await other.grant(300)
                key = f"{PREFIX}Churn/i-{n}"
                await other.put(key.encode(), b'{"Id": "i", "Address": "http://i:1"}', lease)
                leases.append(lease)
                keys.append(key)
            await eventually(lambda: all(k.encode() in sess.state for k in keys), timeout=60)
            held: list[int] = []

            def sample() -> None:
                held.append(sum(len(events) for events, *_ in sess._unresolved))

            for lease in leases:  # no faster than 40 a second, and no catching up after a stall
                await asyncio.sleep(1 / 40)
                await other.revoke(lease)
                sample()
            await eventually(
                lambda: sample() or all(seen.reason(k) is not None for k in keys), timeout=120
            )
            removed = [e for e in seen.events if e.kind.name == "DELETE" and e.lease in leases]
            assert [e.revision for e in removed] == sorted({e.revision for e in removed})
            assert len(removed) == count and all(e.reason is not None for e in removed)
            assert max(held) <= count // 3, held


async def test_removals_beyond_the_lookup_bound_are_judged_without_one_and_say_so(
    etcd: Any, etcdctl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no room for lookups left, removals are not held for one: each still arrives,
    in order, and a reason that needed the lookup says it was not checked."""
    from etcd_registry_tui.registry import session as session_module

    monkeypatch.setattr(session_module, "MAX_LOOKING", 0)
    async with watching(etcd.endpoint) as (sess, seen):
        leases = [etcdctl.lease_grant(60) for _ in range(3)]
        keys = [put(etcdctl, "Orders", f"n{n}", lease=lease) for n, lease in enumerate(leases)]
        await eventually(lambda: all(k.encode() in sess.state for k in keys))
        for lease in leases:
            etcdctl.lease_revoke(lease)
        await eventually(lambda: all(seen.reason(k) is not None for k in keys))
        gone = [e for e in seen.entries if e.key in keys and e.kind is not LogKind.PUT]
        assert [e.key for e in gone] == keys
        assert all(e.kind is ENDED and "not checked" in e.detail for e in gone), gone


async def test_a_lease_granted_again_with_the_same_id_is_never_said_to_live_on(
    etcd: Any, etcdctl: Any
) -> None:
    """A service that derives its lease id from its instance id restarts: its lease is
    revoked (taking the key) and granted again with the same id before the dashboard asks
    etcd about it. With another TTL that is certain (a lease's granted TTL never changes):
    the lease ended. With the same TTL it cannot be told from a lease that lived on, and
    the detail says so."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen):
            leases = {"other ttl": (0x5A50, 60, 600), "same ttl": (0x5A51, 60, 60)}
            keys = {}
            for name, (lease, ttl, _) in leases.items():
                grant_lease_id(etcd.endpoint, ttl, lease)
                keys[name] = put(etcdctl, "Reuse", name.replace(" ", "-"), lease=lease)
            await eventually(lambda: all(key.encode() in sess.state for key in keys.values()))
            await eventually(lambda: all(sess.tracker.granted(v[0]) == 60 for v in leases.values()))
            proxy.freeze()  # the dashboard hears of the revokes only after the new grants
            for lease, _, again in leases.values():
                etcdctl.lease_revoke(lease)
                grant_lease_id(etcd.endpoint, again, lease)
            await asyncio.sleep(0.3)
            proxy.heal()
            await eventually(
                lambda: all(seen.reason(key) is not None for key in keys.values()), timeout=20
            )
            details = {
                name: [e.detail for e in seen.entries if e.key == key and e.kind is not LogKind.PUT]
                for name, key in keys.items()
            }
            assert seen.reason(keys["other ttl"]) is ENDED, details
            assert "granted again" in details["other ttl"][-1], details
            same = seen.reason(keys["same ttl"])
            assert same is ENDED or (
                same is LogKind.DEREGISTERED
                and "unless it ended and was granted again with the same id"
                in details["same ttl"][-1]
            ), details


def test_the_new_cases_in_short() -> None:
    """Pure logic: a lease granted again, a slow link, and which removals may count
    towards a mass expiry (ran_out)."""
    read = LeaseWindow(lo=100.0, hi=100.4, alive_at=99.0)

    def event_of(ttl_after: int | None, clues: Clues, granted_after: int | None) -> HistoryEvent:
        value = b'{"Id": "a", "Address": "http://a:1"}'
        kv = KeyValue(f"{PREFIX}S/a".encode(), value, 1, 1, 1, 0xAB)
        event = HistoryEvent.make(PREFIX, 9, None, kv)
        judge(event, ttl_after, clues, granted_after)
        return event

    # Another granted TTL after the delete: a new lease with the same id; the old ended.
    again = event_of(590, Clues(100.6, read, granted=60), 600)
    assert again.reason == "EXPIRED" and "granted again" in again.detail and again.ran_out
    same = event_of(59, Clues(100.6, read, granted=60), 60)
    assert same.reason == "DEREGISTERED" and "granted again with the same id" in same.detail
    assert not same.ran_out
    # A slow link is not a lost connection; it counts as run out only when the link was
    # seen delivering after the countdown's lower bound.
    slow = event_of(-1, Clues(100.6, read, slow=True, held_up=3.0), None)
    assert "connection was down" not in slow.detail and "slowly" in slow.detail
    assert not slow.ran_out
    assert event_of(-1, Clues(100.6, read, slow=True, held_up=0.5), None).ran_out
    assert not event_of(-1, Clues(100.6, read, gap=True), None).ran_out
    assert not event_of(-1, Clues(98.5, read), None).ran_out  # revoked with time left
    assert not event_of(None, Clues(100.6, read), None).ran_out  # may live on
    assert event_of(-1, Clues(100.2, read), None).ran_out  # ran out, connected


async def test_the_alarm_share_counts_removals_still_waiting_for_their_lookup(
    etcd: Any,
) -> None:
    """4 instances of Roll crash (their leases run out) and the other 40 are shut down
    gracefully just after: 4 of 44 expired (under 20 %), no alarm. The crashed ones'
    lease lookups are held (the real calls, delayed) until the 40 removals wait behind
    them: those are no longer held in the state and not yet seen by the alarm, and still
    count among the instances that existed."""
    async with watching(etcd.endpoint) as (sess, seen), connection(etcd.endpoint) as fast:
        value = b'{"Id": "x", "Address": "http://x:1"}'
        graceful = [(await fast.grant(60))[0] for _ in range(40)]
        for n, lease in enumerate(graceful):
            await fast.put(f"{PREFIX}Roll/ok{n}".encode(), value, lease)
        await eventually(
            lambda: sum(i.raw_key.startswith(f"{PREFIX}Roll/".encode()) for i in sess.state) >= 40
        )
        await eventually(lambda: all(sess.tracker.window(lease) for lease in graceful))
        crashed: dict[int, bytes] = {}
        release = asyncio.Event()
        real = sess.conn.time_to_live

        async def held(lease_id: int, *args: Any, **kwargs: Any) -> tuple[int, int, list[bytes]]:
            if lease_id in crashed and crashed[lease_id] not in sess.state:
                await release.wait()  # only lookups made after the key went
            return await real(lease_id, *args, **kwargs)

        sess.conn.time_to_live = held  # type: ignore[method-assign]
        for n in range(4):
            lease, _ = await fast.grant(2)
            crashed[lease] = f"{PREFIX}Roll/crash{n}".encode()
            await fast.put(crashed[lease], value, lease)
            await asyncio.sleep(0.17)
        await eventually(lambda: not any(key in sess.state for key in crashed.values()), 15)
        for lease in graceful:
            await fast.revoke(lease)
        await eventually(lambda: sess.waiting_removals().get("Roll", 0) >= 44, timeout=20)
        release.set()
        await eventually(
            lambda: (
                sum(e.kind.value == "DELETE" and e.service == "Roll" for e in seen.events) >= 44
            ),
            timeout=30,
        )
        assert seen.alarm_texts == [], seen.alarm_texts


async def test_a_whole_service_expiring_raises_the_alarm_even_when_not_certain(
    etcd: Any,
) -> None:
    """60 instances of MassE stop renewing at once while the tracker is starved (its rate
    cap: a large registry on a busy machine), so few expiries are certain: the alarm
    still fires, saying POSSIBLE when it cannot be sure."""
    async with watching(etcd.endpoint) as (sess, seen), connection(etcd.endpoint) as fast:
        sess.tracker.max_rate = sess.tracker.healthy_rate = 8.0
        value = b'{"Id": "x", "Address": "http://x:1"}'
        keys = []
        for n in range(60):
            lease, _ = await fast.grant(4)
            keys.append(f"{PREFIX}MassE/m{n}".encode())
            await fast.put(keys[-1], value, lease)
        await eventually(
            lambda: (
                sum(e.kind.value == "DELETE" and e.service == "MassE" for e in seen.events) >= 60
            ),
            timeout=60,
        )
        gone = [e for e in seen.events if e.kind.value == "DELETE" and e.service == "MassE"]
        assert all(e.reason in ("EXPIRED", "LEASE ENDED") for e in gone)
        assert any("MASS EXPIRY" in text for text in seen.alarm_texts), (
            seen.alarm_texts,
            sorted({e.detail.split(" ", 2)[-1] for e in gone}),
        )
