"""History read back from etcd (etcdctl makes it): events, reasons, compaction, as-of reads."""

from __future__ import annotations

from typing import Any

import pytest
from support.helpers import connection, eventually, grant_lease_id

from etcd_registry_tui.registry.etcd.errors import RevisionCompacted
from etcd_registry_tui.registry.history.read import (
    compaction_revision,
    get_at,
    read_past,
)
from etcd_registry_tui.registry.history.store import (
    EventKind,
    History,
    HistoryEvent,
    Reason,
)
from etcd_registry_tui.registry.history.view import PastView
from etcd_registry_tui.registry.model import KeyValue, RegistryState

PREFIX = "/services/"


def put(etcdctl: Any, service: str, iid: str, lease: int | None = None, addr: str = "") -> str:
    key = f"{PREFIX}{service}/{iid}"
    address = addr or f"http://{iid}:80"
    etcdctl.put(key, f'{{"Id": "{iid}", "Address": "{address}"}}', lease=lease)
    return key


def revision(etcdctl: Any) -> int:
    _, rev = etcdctl.get_prefix(PREFIX)
    return int(rev)


def reasons(events: list[HistoryEvent]) -> dict[str, str]:
    return {e.key_text: e.label for e in events if e.kind is EventKind.DELETE}


async def test_removals_before_launch_each_get_their_reason(etcd: Any, etcdctl: Any) -> None:
    alive = etcdctl.lease_grant(60)
    plain = put(etcdctl, "Orders", "plain")  # no lease
    deregistered = put(etcdctl, "Orders", "dereg", lease=alive)
    revoked_lease = etcdctl.lease_grant(60)
    revoked = put(etcdctl, "Orders", "revoked", lease=revoked_lease)
    shared_lease = etcdctl.lease_grant(60)
    shared = [put(etcdctl, "Billing", f"b{i}", lease=shared_lease) for i in range(3)]
    expiring = etcdctl.lease_grant(1)
    expired = put(etcdctl, "Billing", "expired", lease=expiring)
    etcdctl.run("del", plain)
    etcdctl.run("del", deregistered)  # its lease lives on
    etcdctl.lease_revoke(revoked_lease)
    etcdctl.lease_revoke(shared_lease)
    await eventually(lambda: etcdctl.get(expired) is None, timeout=15)
    end = revision(etcdctl)
    async with connection(etcd.endpoint) as conn:
        past = await read_past(conn, PREFIX, end)
    got = reasons(past.events)
    assert got[plain] == "DEREGISTERED"
    assert got[deregistered] == "DEREGISTERED"
    # Before launch a revoke and an expiry look alike in etcd's history.
    assert got[revoked] == "LEASE ENDED"
    assert got[expired] == "LEASE ENDED"
    assert all(got[k] == "LEASE ENDED" for k in shared)
    revs = {e.revision for e in past.events if e.key_text in shared and e.kind is EventKind.DELETE}
    assert len(revs) == 1  # a lease's keys go in one revision
    assert [e.revision for e in past.events] == sorted(e.revision for e in past.events)
    assert past.compacted == 0 and past.start == 1
    puts = [e for e in past.events if e.kind is EventKind.PUT]
    assert len(puts) == 7 and puts[0].address() == "http://plain:80"


async def test_put_again_after_delete_is_a_put_and_updates_are_updates(
    etcd: Any, etcdctl: Any
) -> None:
    key = put(etcdctl, "Orders", "o1")
    put(etcdctl, "Orders", "o1", addr="http://moved:81")
    etcdctl.run("del", key)
    put(etcdctl, "Orders", "o1")
    async with connection(etcd.endpoint) as conn:
        past = await read_past(conn, PREFIX, revision(etcdctl))
    assert [e.label for e in past.events] == ["PUT", "UPDATE", "DEREGISTERED", "PUT"]
    assert [e.to_json()["kind"] for e in past.events] == ["PUT", "UPDATE", "DELETE", "PUT"]
    update = past.events[1]
    assert update.prev is not None and b"o1:80" in update.prev.value
    assert update.kv is not None and b"moved" in update.kv.value


async def test_history_stops_at_the_compaction_point(etcd: Any, etcdctl: Any) -> None:
    for i in range(6):
        put(etcdctl, "Orders", f"o{i}")
    compact_at = revision(etcdctl) - 2
    etcdctl.compact(compact_at)
    put(etcdctl, "Orders", "late")
    end = revision(etcdctl)
    async with connection(etcd.endpoint) as conn:
        assert await compaction_revision(conn, PREFIX) == compact_at
        past = await read_past(conn, PREFIX, end)
        # The compaction revision itself is not read: etcd keeps its PUTs but drops its
        # deletes, so the first revision that can be read whole is the one after it.
        assert past.compacted == compact_at and past.start == compact_at + 1
        assert [e.revision for e in past.events] == list(range(compact_at + 1, end + 1))
        with pytest.raises(RevisionCompacted) as caught:
            await get_at(conn, PREFIX, compact_at - 1)
        assert caught.value.compact_revision == compact_at
    history = History()
    history.load_past(past.events, past.start, past.compacted, past.start - 1)
    assert history.describe_reach() == f"compacted at rev {compact_at:,}"


async def test_reading_is_bounded_to_the_revisions_asked(etcd: Any, etcdctl: Any) -> None:
    for i in range(10):
        put(etcdctl, "Orders", f"o{i}")
    end = revision(etcdctl)
    async with connection(etcd.endpoint) as conn:
        past = await read_past(conn, PREFIX, end, revisions=4)
        assert past.compacted == 0
    assert [e.revision for e in past.events] == list(range(end - 3, end + 1))
    history = History(max_entries=2)
    kept = history.load_past(past.events, past.start, 0, past.start - 1)
    assert [e.revision for e in kept] == [end - 1, end]
    assert history.floor == end - 2


async def test_past_view_rebuilds_what_get_rev_returns(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    a = put(etcdctl, "Orders", "a", lease=lease)
    put(etcdctl, "Orders", "b")
    put(etcdctl, "Orders", "a", lease=lease, addr="http://a2:80")
    etcdctl.run("del", a)
    put(etcdctl, "Billing", "c", lease=lease)
    etcdctl.lease_revoke(lease)
    end = revision(etcdctl)
    async with connection(etcd.endpoint) as conn:
        kvs, rev = await conn.get_prefix(PREFIX.encode())
        live = RegistryState(PREFIX)
        live.load(kvs, rev)
        past = await read_past(conn, PREFIX, end)
        history = History()
        history.load_past(past.events, past.start, 0, past.start - 1)
        view = PastView(live, history)
        assert view.revisions()[-1] == end
        for target in range(1, end + 1):
            view.go(target)
            expected = {kv.key: (kv.value, kv.lease) for kv in await get_at(conn, PREFIX, target)}
            got = {k: (i.value, i.lease) for k, i in view.state.instances.items()}
            assert got == expected, target
        view.go(end)
        assert view.state.as_dict() == live.as_dict()


def test_history_keeps_at_most_max_entries() -> None:
    history = History(max_entries=100)
    for rev in range(1, 1001):
        kv = KeyValue(b"/services/S/i", b"{}", 1, rev, rev, 0)
        history.append([HistoryEvent.make(PREFIX, rev, kv, None)])
    assert len(history) == 100 and history.floor == 900


async def test_a_long_history_is_read_whole(etcd: Any, etcdctl: Any) -> None:
    """etcd replays a long history in steps of 1,000 revisions, 100 ms apart, and etcd 3.4
    answers progress requests in between as if it were done: the read must not stop."""
    async with connection(etcd.endpoint) as conn:
        for n in range(2_500):
            await conn.put(f"{PREFIX}Orders/o{n % 50}".encode(), b'{"Id": "x"}')
        end = revision(etcdctl)
        past = await read_past(conn, PREFIX, end, revisions=10_000)
    assert [e.revision for e in past.events] == list(range(2, end + 1))


async def test_a_lease_granted_again_with_the_same_id_is_never_said_to_have_lived_on(
    etcd: Any, etcdctl: Any
) -> None:
    """Before launch: a lease revoked (taking its key) and granted again with the same id
    (a service deriving the id from its instance id, restarting) exists now, and another
    key went from it later. Neither proves the first key was deleted with the lease alive;
    only a key put on the lease before the delete and still on it after does."""
    reused, again, shared = 0x4661, 0x4662, etcdctl.lease_grant(60)
    grant_lease_id(etcd.endpoint, 60, reused)
    first = put(etcdctl, "Reuse", "first", lease=reused)
    etcdctl.lease_revoke(reused)  # takes "first"
    grant_lease_id(etcd.endpoint, 600, reused)
    second = put(etcdctl, "Reuse", "second", lease=reused)
    etcdctl.run("del", second)  # deleted, the new lease lives on
    etcdctl.lease_revoke(reused)
    grant_lease_id(etcd.endpoint, 60, again)
    alone = put(etcdctl, "Reuse", "alone", lease=again)
    etcdctl.lease_revoke(again)  # takes "alone"
    grant_lease_id(etcd.endpoint, 60, again)  # exists now
    kept, went = (
        put(etcdctl, "Reuse", "kept", lease=shared),
        put(etcdctl, "Reuse", "went", lease=shared),
    )
    etcdctl.run("del", went)  # "kept" stays on the lease: certainly deleted
    async with connection(etcd.endpoint) as conn:
        past = await read_past(conn, PREFIX, revision(etcdctl))
    gone = {e.key_text: e for e in past.events if e.kind is EventKind.DELETE}
    assert gone[first].reason is Reason.LEASE_ENDED, gone[first].detail
    assert gone[alone].reason is Reason.LEASE_ENDED or (
        "unless it ended and was granted again with the same id" in gone[alone].detail
    ), gone[alone].detail
    assert gone[went].detail == f"key deleted, lease {shared:016x} lived on", gone[went].detail
    assert kept not in gone
