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
from support.helpers import connection, eventually
from support.tcp_proxy import TcpProxy, tcp_proxy

from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
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

    def on_events(self, events: list[HistoryEvent]) -> None:
        self.events.extend(events)
        assert self.sess is not None
        self.alarm_texts += self.alarm.observe(events, self.sess.state, time.time())

    def reason(self, key: str) -> LogKind | None:
        removals = [e.kind for e in self.entries if e.key == key and e.kind not in (LogKind.PUT,)]
        return removals[-1] if removals else None


@contextlib.asynccontextmanager
async def watching(endpoint: str) -> AsyncIterator[tuple[RegistrySession, Seen]]:
    seen = Seen()
    sess = RegistrySession(
        ConnectionConfig(endpoints=(endpoint,)),
        on_batch=lambda _b, entries: seen.entries.extend(entries),
        on_events=seen.on_events,
        history_revisions=0,
    )
    seen.sess = sess
    task = asyncio.create_task(sess.run())
    try:
        await sess.watcher.wait_live(15)
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
    await sess.revoke(mine)
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
    then arrives late, as an expiry would, but nothing proves the lease ran out."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with watching(proxy.endpoint) as (sess, seen):
            lease = etcdctl.lease_grant(3)
            granted = time.monotonic()
            key = put(etcdctl, "Orders", "frozen", lease=lease)
            await tracked(sess, lease)
            await asyncio.sleep(max(0.0, granted + 1.7 - time.monotonic()))
            proxy.freeze()
            etcdctl.lease_revoke(lease)
            await asyncio.sleep(max(0.0, granted + 3.6 - time.monotonic()))
            proxy.heal()
            await eventually(lambda: seen.reason(key) is not None, timeout=15)
            assert contradictions(seen, {key: "revoke during an outage"}) == []


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
    # The dashboard's revoke answered with the delete's revision, and only then.
    assert judged(-1, Clues(50.0, read, revoked_at=9))[0] == "REVOKED"
    assert judged(-1, Clues(50.0, read, revoked_at=8))[0] == "LEASE ENDED"
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
