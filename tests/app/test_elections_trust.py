"""Elections the dashboard shows are the ones etcd's clients agree on.

Each test compares what the elections watcher (or view) says with independent witnesses on
a real etcd: ``etcdctl get``/``etcdctl elect`` and the project's own ``Election(...).leader()``.
Partitions go through the tests' own TCP proxy (``tests/support/tcp_proxy.py``).
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually
from support.tcp_proxy import tcp_proxy
from test_app_actions import dashboard, highlight, until
from test_cli_elections import elections as cli_elections
from test_elections import EtcdctlCandidate, observe_leader, values, watching
from test_elections_view import line_of, view_lines
from textual.widgets import Static

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections.campaign import Election
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.log_entries import LogKind
from etcd_registry_tui.screens.candidate import CandidateScreen
from etcd_registry_tui.screens.confirm import ConfirmScreen
from etcd_registry_tui.widgets.election_detail import ElectionDetail
from etcd_registry_tui.widgets.event_log import EventLog


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


def etcdctl_revision(etcdctl: Etcdctl) -> int:
    return int(etcdctl.get_prefix("/no-such-key/").revision)


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
                    *(
                        direct.put(f"/unrelated/{i}".encode(), b"x")
                        for i in range(start, start + 100)
                    )
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


# -- item 4: nested names, and keys that are no candidate's ---------------------------------


async def agreed_leader(conn: EtcdConnection, etcdctl: Etcdctl, name: str) -> bytes:
    """The leader's key as the project's Election and `etcdctl elect -l` both see it."""
    ours = await Election(conn, name).leader()
    assert ours is not None
    value = await observe_leader(etcdctl, name)
    assert value == ours.value.decode()
    return bytes(ours.key)


async def test_nested_elections_give_the_leader_every_client_agrees_on(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    direct: EtcdConnection,
    candidates: list[EtcdctlCandidate],
) -> None:
    """alice campaigns in /e/job/sub, then bob in /e/job: clientv3 (etcdctl, Election) has
    alice lead /e/job too, and bob wait. Found in a snapshot and live in the watch alike."""
    candidates.append(EtcdctlCandidate(etcdctl, "elect", "/e/job/sub", "alice"))
    await eventually(lambda: len(queue_keys(etcdctl, "/e/job/sub")) == 1, timeout=20)
    async with watching(direct) as (watcher, _):
        candidates.append(EtcdctlCandidate(etcdctl, "elect", "/e/job", "bob"))
        await eventually(lambda: len(values(watcher, "/e/job")) == 2, timeout=20)
        job = watcher.state.elections["/e/job"]
        assert [c.key for c in job.queue()] == queue_keys(etcdctl, "/e/job")
        leader = job.leader
        assert leader is not None and leader.value == b"alice"
        assert leader.key == await agreed_leader(direct, etcdctl, "/e/job")
        assert leader.stands_in == "/e/job/sub"  # shown as the nested election's candidate
        assert values(watcher, "/e/job/sub") == [b"alice"]
        listed = {e["name"]: e for e in watcher.state.to_json()}
        assert [c["value"] for c in listed["/e/job"]["candidates"]] == ["alice", "bob"]
        assert [c["stands_in"] for c in listed["/e/job"]["candidates"]] == ["/e/job/sub", "/e/job"]

        # a key that is no candidate's, older than the lock: clientv3 has it hold the lock
        etcdctl.put("/e/lock/config", "cfg")
        candidates.append(EtcdctlCandidate(etcdctl, "lock", "/e/lock"))
        await eventually(lambda: len(values(watcher, "/e/lock")) == 2, timeout=20)
        lock = watcher.state.elections["/e/lock"]
        assert lock.leader is not None and lock.leader.key == b"/e/lock/config"
        ours = await Election(direct, "/e/lock").leader()
        assert ours is not None and ours.key == lock.leader.key

    async with watching(direct) as (again, _):  # the same from a snapshot
        for name in ("/e/job", "/e/job/sub", "/e/lock"):
            assert [c.key for c in again.state.elections[name].queue()] == queue_keys(etcdctl, name)
    # ... and from `elections --json`, the witness
    listed = {e["name"]: e for e in cli_elections(etcd.endpoint)}
    job = listed["/e/job"]["candidates"]
    assert [c["value"] for c in job] == ["alice", "bob"]  # type: ignore[index,attr-defined]
    in_etcd = [k.decode() for k in queue_keys(etcdctl, "/e/job")]
    assert [c["key"] for c in job] == in_etcd  # type: ignore[index,attr-defined]


# -- item 20: many candidates ------------------------------------------------------------------


async def test_view_keeps_up_with_thousands_of_candidates_on_their_own_leases(
    etcd: EmbeddedEtcd, direct: EtcdConnection
) -> None:
    """2,000 candidates of one election, each on its own lease, written as fast as etcd
    takes them: the view shows them all within seconds of the last write (it took minutes
    when every watch response re-sorted and re-listed the whole queue)."""
    count = 2000
    async with dashboard(etcd) as (app, pilot):
        await pilot.press("e")
        await until(pilot, lambda: app.elections.watcher.live.is_set(), timeout=20)
        semaphore = asyncio.Semaphore(32)

        async def one(n: int) -> None:
            async with semaphore:
                lease, _ = await direct.grant(60)
                await direct.put(f"/elections/many/{lease:x}".encode(), f"c-{n}".encode(), lease)

        await asyncio.gather(*(one(n) for n in range(count)))
        written = time.monotonic()
        await until(
            pilot,
            lambda: len(app.elections_view.rows) == count + 1,
            timeout=15,
            message=lambda: f"{len(app.elections_view.rows) - 1} of {count} shown",
        )
        took = time.monotonic() - written
        assert f"{count - 1} waiting" in app.elections_view.render_line(0).text
        in_etcd = [kv.key for kv in await Election(direct, "/elections/many").candidates()]
        shown = [row.candidate.key for row in app.elections_view.rows[1:] if row.candidate]
        assert shown == in_etcd and len(shown) == count
        print(f"all {count:,} shown {took:.1f} s after the last write")


# -- item 21: instances are not candidates; one leader per service -----------------------------


async def test_registry_instances_are_not_candidates_and_a_service_has_one_leader(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """Instances named by their own lease are instances, not an election; two elections
    named like a service (``/elections/Orders`` and ``/anything/Orders``) mark one leader."""
    for n in range(2):
        lease = etcdctl.lease_grant(60)
        etcdctl.put(
            f"/services/LeaseIdSvc/{lease:x}",
            f'{{"Id": "{lease:x}", "Address": "http://127.0.0.1:{7000 + n}"}}',
            lease=lease,
        )
    orders = [etcdctl.lease_grant(60) for _ in range(2)]
    for n, lease in enumerate(orders):
        etcdctl.put(
            f"/services/Orders/o-{n}",
            f'{{"Id": "o-{n}", "Address": "http://127.0.0.1:{6000 + n}"}}',
            lease=lease,
        )
    etcdctl.put(f"/elections/Orders/{orders[0]:x}", "o-0", lease=orders[0])
    etcdctl.put(f"/anything/Orders/{orders[1]:x}", "o-1", lease=orders[1])
    async with dashboard(etcd) as (app, pilot):
        await until(pilot, lambda: app.elections.watcher.live.is_set(), timeout=20)
        await until(pilot, lambda: len(app.elections.state.elections) == 2, timeout=20)
        assert sorted(app.elections.state.elections) == ["/anything/Orders", "/elections/Orders"]

        def marked() -> list[str]:
            tree = app.registry_tree
            lines = [tree.render_line(y).text for y in range(tree.row_count)]
            return [line.split()[0] for line in lines if "♛ leader" in line]

        await until(pilot, lambda: marked() == ["o-0"], timeout=20)
        # a new instance of the lease-id layout, live: still no election, no LEADER line
        lease = etcdctl.lease_grant(60)
        etcdctl.put(f"/services/LeaseIdSvc/{lease:x}", '{"Id": "x"}', lease=lease)
        key = f"/services/LeaseIdSvc/{lease:x}".encode()
        await until(pilot, lambda: key in app.session.state.instances, timeout=20)
        await until(pilot, lambda: app.elections.state.revision >= etcdctl_revision(etcdctl))
        await pilot.pause(0.3)
        assert sorted(app.elections.state.elections) == ["/anything/Orders", "/elections/Orders"]
        logged = [e for e in app.query_one(EventLog).entries if e.kind is LogKind.LEADER]
        assert not [e for e in logged if "LeaseIdSvc" in e.key]
        assert marked() == ["o-0"]
    listed = sorted(str(e["name"]) for e in cli_elections(etcd.endpoint))
    assert listed == ["/anything/Orders", "/elections/Orders"]


# -- item 22 (and 33): the revoke question names every key on the lease ------------------------


def etcdctl_lease_keys(etcdctl: Etcdctl, lease: int) -> set[bytes]:
    """``etcdctl lease timetolive --keys``: every key on the lease, as etcd says."""
    doc = etcdctl.run_json("lease", "timetolive", f"{lease:x}", "--keys")
    return {base64.b64decode(k) for k in doc.get("keys") or []}  # type: ignore[union-attr]


async def test_revoke_question_names_the_instance_and_its_candidate(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """A MigrationJob instance campaigns on its registration lease (as the demo's do): the
    question in both views names the two keys etcd holds on that lease."""
    leases = [etcdctl.lease_grant(60) for _ in range(2)]
    for n, lease in enumerate(leases):
        etcdctl.put(f"/services/MigrationJob/job-{n}", f'{{"Id": "job-{n}"}}', lease=lease)
        etcdctl.put(f"/elections/MigrationJob/{lease:x}", f"job-{n}", lease=lease)
    alone = etcdctl.lease_grant(60)
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}', lease=alone)
    on_lease = etcdctl_lease_keys(etcdctl, leases[0])
    assert len(on_lease) == 2
    names = sorted(k.decode() for k in on_lease)

    async with dashboard(etcd) as (app, pilot):
        await until(pilot, lambda: app.elections.state.leader_of("/elections/MigrationJob"))
        await highlight(pilot, app, b"/services/MigrationJob/job-0")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        message = app.screen.message  # type: ignore[attr-defined]
        assert f"2 keys go with it: {names[0]}, {names[1]}." in message
        await pilot.press("n")

        await highlight(pilot, app, b"/services/Orders/o-1")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "1 key goes with it: /services/Orders/o-1." in app.screen.message  # type: ignore[attr-defined]
        await pilot.press("n")

        await pilot.press("e")
        await until(pilot, lambda: app.elections_view.rows and len(app.elections_view.rows) == 3)
        await pilot.press("home", "down", "x")  # the leader's line: job-0
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        message = app.screen.message  # type: ignore[attr-defined]
        assert "of the leader job-0 in /elections/MigrationJob?" in message
        assert f"2 keys go with it: {names[0]}, {names[1]}." in message
        assert "Then job-1 leads." in message
        await pilot.press("n")
    assert etcdctl_lease_keys(etcdctl, leases[0]) == on_lease  # nothing was revoked


# -- item 28: a long hostile value --------------------------------------------------------------


async def test_a_long_value_leaves_the_row_pane_and_dialog_readable(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """A 10,000-character value: the row keeps its countdown and key, the Election pane its
    lease and TTL, the revoke dialog its title and buttons; ``i`` shows the whole value."""
    lease = etcdctl.lease_grant(60)
    value = "\x1b[31m" + "V" * 10_000
    etcdctl.put(f"/e/h/{lease:x}", value, lease=lease)
    async with dashboard(etcd) as (app, pilot):
        await pilot.press("e")
        view = app.elections_view
        await until(pilot, lambda: len(view.rows) == 2, timeout=20)
        await pilot.press("home", "down")
        await until(pilot, lambda: app.elections.ttl(lease)[0] is not None, timeout=20)
        await pilot.pause(1.1)  # a tick draws the countdown
        line = view.render_line(1).text
        assert f"…/{lease:x}" in line and ("minute" in line or "second" in line)
        assert "\x1b" not in line and "VVVV…" in line

        detail = app.query_one(ElectionDetail)
        shown = str(detail.render()).splitlines()
        height = detail.content_region.height
        labels = [n for n, text in enumerate(shown) if text.startswith(("lease", "TTL"))]
        assert len(labels) == 2 and max(labels) < height, (labels, height)
        assert any("10,005 characters" in text for text in shown)

        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        screen = app.screen
        title, yes = screen.query_one("#title").region, screen.query_one("#yes").region
        assert 0 <= title.y and yes.bottom <= screen.size.height
        assert len(screen.message) < 400  # type: ignore[attr-defined]
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))

        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, CandidateScreen))
        whole = str(app.screen.query_one("#value", Static).render())
        assert whole.count("V") == 10_000 and "\x1b" not in whole
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CandidateScreen))


async def test_dashboard_shows_the_new_queue_after_its_link_comes_back(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    direct: EtcdConnection,
    candidates: list[EtcdctlCandidate],
) -> None:
    """The dashboard's own link refused while the leader goes and 1,500 writes pass: the
    view says it is not live, then shows bob leading and carol waiting, as etcd has it."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with dashboard(SimpleNamespace(endpoint=proxy.endpoint)) as (app, pilot):
            app.elections.watcher.backoff_max = 0.5
            await pilot.press("e")
            candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "alice"))
            await until(pilot, lambda: "alice" in line_of(app, "leader "), timeout=20)
            candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "bob"))
            await until(pilot, lambda: "bob" in line_of(app, "waiting #1"), timeout=20)
            alice = app.elections.state.leader_of("job")
            assert alice is not None and alice.value == b"alice"

            proxy.refuse()
            view = app.elections_view
            await until(pilot, lambda: "not live" in str(view.border_title), timeout=30)
            etcdctl.lease_revoke(alice.lease)
            for start in range(0, 1500, 100):
                keys = [f"/unrelated/{i}".encode() for i in range(start, start + 100)]
                await asyncio.gather(*(direct.put(key, b"x") for key in keys))
            candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "carol"))
            await eventually(lambda: len(queue_keys(etcdctl, "job")) == 2, timeout=20)
            proxy.heal()

            await until(pilot, lambda: "bob" in line_of(app, "leader "), timeout=30)
            await until(pilot, lambda: "carol" in line_of(app, "waiting #1"), timeout=30)
            await until(pilot, lambda: "not live" not in str(view.border_title), timeout=30)
            assert "alice" not in " ".join(view_lines(app))
            assert await observe_leader(etcdctl, "job") == "bob"
