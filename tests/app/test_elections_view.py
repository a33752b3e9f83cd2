"""The elections view driven with Pilot on a real etcd; etcdctl elect / lock on the other side."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from support.etcdctl import Etcdctl
from test_app_actions import dashboard, notifications, until
from test_elections import EtcdctlCandidate

from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.registry.log_entries import LogKind
from etcd_registry_tui.screens.campaign import CampaignScreen, ProclaimScreen
from etcd_registry_tui.screens.confirm import ConfirmScreen
from etcd_registry_tui.widgets.event_log import EventLog


@pytest.fixture
def candidates() -> Iterator[list[EtcdctlCandidate]]:
    started: list[EtcdctlCandidate] = []
    yield started
    for candidate in started:
        candidate.stop(signal.SIGKILL)


def view_lines(app: RegistryApp) -> list[str]:
    view = app.elections_view
    return [view.render_line(y).text.rstrip() for y in range(len(view.rows))]


def line_of(app: RegistryApp, word: str) -> str:
    """The first candidate line (indented; headers are not) holding ``word``."""
    return next((line for line in view_lines(app) if line.startswith("  ") and word in line), "")


def leader_entries(app: RegistryApp) -> list[str]:
    entries = app.query_one(EventLog).entries
    return [f"{e.key}: {e.detail}" for e in entries if e.kind is LogKind.LEADER]


async def test_view_shows_leader_and_queue_and_logs_failover(
    etcd: Any, etcdctl: Etcdctl, candidates: list[EtcdctlCandidate]
) -> None:
    async with dashboard(etcd) as (app, pilot):
        await pilot.press("e")
        assert app.showing_elections and not app.registry_tree.display
        candidates.append(EtcdctlCandidate(etcdctl, "elect", "myjob", "alice"))
        await until(pilot, lambda: "alice" in line_of(app, "leader"), timeout=20)
        candidates.append(EtcdctlCandidate(etcdctl, "elect", "myjob", "bob"))
        await until(pilot, lambda: "bob" in line_of(app, "waiting #1"), timeout=20)
        header = view_lines(app)[0]
        assert "myjob" in header and "election" in header and "leader alice" in header
        assert "1 waiting" in header
        leader = line_of(app, "leader ")
        alice = app.elections.state.leader_of("myjob")
        assert alice is not None
        assert "alice" in leader and f"…/{alice.lease:x}" in leader  # the key below myjob/
        assert "lease " not in leader  # the key already names the lease, in clientv3's %x
        assert "minute" in leader or "second" in leader  # the countdown of a 60 s lease

        candidates[0].stop()  # alice resigns: bob leads, logged as LEADER myjob: alice → bob
        await until(pilot, lambda: "bob" in line_of(app, "leader"), timeout=20)
        assert "myjob: alice → bob" in leader_entries(app)
        assert not line_of(app, "waiting")

        await pilot.press("e")
        assert app.registry_tree.display and not app.showing_elections


async def test_campaign_pause_proclaim_resign_and_revoke_from_the_view(
    etcd: Any, etcdctl: Etcdctl, candidates: list[EtcdctlCandidate]
) -> None:
    async with dashboard(etcd) as (app, pilot):
        await pilot.press("e")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CampaignScreen))
        app.screen.query_one("#name").value = "migrations"  # type: ignore[attr-defined]
        app.screen.query_one("#value").value = "dash-1"  # type: ignore[attr-defined]
        app.screen.query_one("#ttl").value = "5"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: "dash-1" in line_of(app, "leader"), timeout=20)
        assert "★" in line_of(app, "leader")
        assert etcdctl.get_prefix("migrations/").kvs  # etcdctl sees our candidate

        # an etcdctl candidate queues behind ours
        candidates.append(EtcdctlCandidate(etcdctl, "elect", "migrations", "other"))
        await until(pilot, lambda: "other" in line_of(app, "waiting #1"), timeout=20)

        # proclaim a new value
        await pilot.press("down")  # the leader's line
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ProclaimScreen))
        app.screen.query_one("#value").value = "dash-2"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: "dash-2" in line_of(app, "leader"), timeout=20)
        assert b"dash-2" in [kv.value for kv in etcdctl.get_prefix("migrations/").kvs.values()]

        # pause our heartbeats: the lease runs out and etcdctl's candidate takes over
        await pilot.press("p")
        await until(pilot, lambda: "⏸" in line_of(app, "dash-2"))
        await until(pilot, lambda: "other" in line_of(app, "leader"), timeout=30)
        assert "migrations: dash-2 → other" in leader_entries(app)

        # revoke etcdctl's candidate (confirmed): nobody is left
        await pilot.press("home")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not app.elections_view.rows, timeout=20)
        assert etcdctl.get_prefix("migrations/").kvs == {}


async def test_resign_hands_over_and_read_only_view_writes_nothing(
    etcd: Any, etcdctl: Etcdctl, candidates: list[EtcdctlCandidate]
) -> None:
    async with dashboard(etcd) as (app, pilot):
        candidacy = await app.elections.campaign("job", "mine", ttl=30)
        candidates.append(EtcdctlCandidate(etcdctl, "elect", "job", "next"))
        await pilot.press("e")
        await until(pilot, lambda: "next" in line_of(app, "waiting #1"), timeout=20)
        await pilot.press("down", "d")
        # (the notice first: it times out, and on a loaded machine the view can take longer)
        await until(pilot, lambda: any("Resigned" in n for n in notifications(app)))
        await until(pilot, lambda: "next" in line_of(app, "leader"), timeout=20)
        # resigned: key deleted and lease revoked, not left to expire
        assert etcdctl.lease_timetolive(candidacy.lease)[0] <= 0

    async with dashboard(etcd, read_only=True) as (app, pilot):
        await pilot.press("e")
        await until(pilot, lambda: "next" in line_of(app, "leader"), timeout=20)
        await pilot.press("down", "x", "c", "d")
        await pilot.pause(0.3)
        assert len(app.screen_stack) == 1
        assert "next" in line_of(app, "leader")
        assert len(etcdctl.get_prefix("job/").kvs) == 1


async def test_registry_tree_marks_the_instance_that_leads_its_services_election(
    etcd: Any, etcdctl: Etcdctl
) -> None:
    """Instances of MigrationJob campaign on their registration leases (as the demo's do)."""
    leases = [etcdctl.lease_grant(60) for _ in range(2)]
    for n, lease in enumerate(leases):
        etcdctl.put(
            f"/services/MigrationJob/job-{n}",
            f'{{"Id": "job-{n}", "Address": "http://127.0.0.1:{6000 + n}"}}',
            lease=lease,
        )
    async with dashboard(etcd) as (app, pilot):
        for lease in leases:  # job-0 campaigns first: it leads
            etcdctl.put(f"/elections/MigrationJob/{lease:x}", "x", lease=lease)

        def marked() -> list[str]:
            tree = app.registry_tree
            lines = [tree.render_line(y).text for y in range(tree.row_count)]
            return [line.split()[0] for line in lines if "♛ leader" in line]

        await until(pilot, lambda: marked() == ["job-0"], timeout=20)
        etcdctl.lease_revoke(leases[0])  # the leader's instance and candidacy end together
        await until(pilot, lambda: marked() == ["job-1"], timeout=20)
