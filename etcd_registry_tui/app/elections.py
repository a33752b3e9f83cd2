"""The dashboard's elections view: ``e`` switches to it, its keys act on candidates.

A part of :class:`~etcd_registry_tui.app.RegistryApp`, kept apart so the registry view
and the elections view each read in one sitting: :class:`Elections` owns the
:class:`~etcd_registry_tui.registry.elections.session.ElectionsSession` (the data layer
part) and the view's widgets; the app routes the view's messages and ``e`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..registry.elections.campaign import Candidacy
from ..registry.elections.session import ElectionsSession
from ..registry.elections.state import Candidate, Election, ElectionKind, LeaderChange
from ..registry.etcd.errors import LeaseNotFound, RegistryError
from ..registry.log_entries import LogEntry, LogKind
from ..registry.model import Instance
from ..registry.sanitize import safe_line
from ..revoke_prompt import keys_on_leases, keys_phrase
from ..screens.campaign import CampaignRequest, CampaignScreen, ProclaimScreen
from ..screens.candidate import CandidateScreen
from ..screens.confirm import ConfirmScreen
from ..widgets.election_detail import ElectionDetail
from ..widgets.elections_view import ElectionRow, ElectionsView, clip
from ..widgets.event_log import EventLog
from ..widgets.registry_tree import RegistryTree
from .actions import notify_failed, run_action

if TYPE_CHECKING:
    from ..registry.session import RegistrySession
    from ..registry.supervisor import TaskFailure
    from . import RegistryApp


def leader_change_entry(change: LeaderChange) -> LogEntry:
    """``LEADER myjob: alice → bob`` (values shown safe; ``(none)`` when nobody leads)."""

    def who(candidate: Any) -> str:
        if candidate is None:
            return "(none)"
        return safe_line(candidate.value_text()) or f"lease {candidate.lease_hex}"

    return LogEntry(
        LogKind.LEADER, safe_line(change.name), f"{who(change.old)} → {who(change.new)}"
    )


def service_election(service: str, elections: list[Election]) -> Election | None:
    """The one election of a service among those named like it: ``/elections/S``, else
    ``S``, else the only ``…/S``; None when several ``…/S`` could be it."""
    by_name = {e.name: e for e in elections}
    for name in (f"/elections/{service}", service):
        if name in by_name:
            return by_name[name]
    return elections[0] if len(elections) == 1 else None


def leading_instance(leader: Candidate, instances: Iterable[Instance]) -> Instance | None:
    """The instance the leader stands for: the one on its lease, else the one whose id or
    address it proposes; None unless exactly one instance fits."""
    instances = list(instances)
    on_lease = [i for i in instances if i.lease and i.lease == leader.lease]
    if on_lease:
        return on_lease[0] if len(on_lease) == 1 else None
    value = leader.value_text()
    named = [i for i in instances if value in (i.instance_id, i.address)]
    return named[0] if len(named) == 1 else None


class Elections:
    """Everything of the elections view that lives in the app."""

    def __init__(
        self,
        app: RegistryApp,
        registry: RegistrySession,
        prefixes: tuple[str, ...],
        read_only: bool,
        on_failure: Callable[[TaskFailure], None],
    ) -> None:
        self._app = app
        self._registry = registry
        self._read_only = read_only
        self.session = ElectionsSession(
            registry.conn,
            prefixes,
            on_change=self._on_leader_changes,
            on_error=self._on_elections_error,
            read_only=read_only,
            on_failure=on_failure,
        )

    async def run(self) -> None:
        """Look for elections once the registry is live: the elections scan (all keys of
        the keyspace, keys only) must not compete with the registry's first screen."""
        await self._registry.watcher.wait_live()
        await self.session.run()

    async def shutdown(self) -> None:
        await self.session.shutdown()

    def compose_view(self) -> ElectionsView:
        view = ElectionsView(ttl_source=self.session.ttl, id="elections")
        view.read_only = self._read_only
        view.display = False
        return view

    def compose_detail(self) -> ElectionDetail:
        detail = ElectionDetail(id="election-detail")
        detail.display = False
        return detail

    @property
    def view(self) -> ElectionsView:
        return self._app.query_one(ElectionsView)

    @property
    def showing(self) -> bool:
        return bool(self.view.display)

    # -- data layer → UI ------------------------------------------------------------
    def _on_leader_changes(self, changes: list[LeaderChange]) -> None:
        # Called on the event loop by the watcher: draw now, within the frame.
        if not self._app.is_running:
            return
        elections = self.session
        view = self.view
        view.own_leases = set(elections.own)
        view.paused_leases = elections.paused_leases()
        view.set_state(elections.state, changes)
        # What the first snapshot found is the starting point, not a change (as for the
        # registry); a reload after a compaction logs its differences.
        first = elections.watcher.snapshots_loaded <= 1
        entries = [leader_change_entry(c) for c in changes if not (c.snapshot and first)]
        self._app.query_one(EventLog).add(entries[::-1])
        if changes:  # a queue that only grew leaves the pane to the 1 Hz tick
            self.refresh_leader_marks()
            if self.showing:
                self._show_detail()

    def _on_elections_error(self, error: str | None) -> None:
        if not self._app.is_running:
            return
        view = self.view
        view.empty_text = error or "no elections or locks found"
        view.border_title = self._title()
        view.refresh()
        if error:
            self._app.query_one(EventLog).add([LogEntry(LogKind.ERROR, "", f"elections: {error}")])

    def _title(self) -> str:
        """The view's title; while the watch is down it says what is shown may be old."""
        watcher = self.session.watcher
        if watcher.error is None:
            return "Elections and locks"
        return f"Elections and locks — not live: as of revision {watcher.state.revision}"

    def refresh_leader_marks(self) -> None:
        """Mark in the registry tree the instance that leads its service's election (see
        :func:`service_election` and :func:`leading_instance`): one per service at most."""
        marks: set[bytes] = set()
        groups = self._registry.state.groups
        by_service: dict[str, list[Election]] = {}
        for election in self.session.state.elections.values():
            service = election.name.rsplit("/", 1)[-1]
            if service in groups:
                by_service.setdefault(service, []).append(election)
        for service, named in by_service.items():
            chosen = service_election(service, named)
            leader = chosen.leader if chosen is not None else None
            if leader is None:
                continue
            inst = leading_instance(leader, groups[service].instances.values())
            if inst is not None:
                marks.add(inst.raw_key)
        tree = self._app.query_one(RegistryTree)
        if marks != tree.leader_keys:
            tree.leader_keys = marks

    def tick(self) -> None:
        if self.showing:
            view = self.view
            view.paused_leases = self.session.paused_leases()
            view.tick()
            self._show_detail()

    def highlighted(self) -> None:
        """The view's highlight moved."""
        if self._app.is_running and self.showing:
            self._show_detail()

    def _show_detail(self) -> None:
        view = self.view
        row = view.highlighted
        election = view.election(row.name) if row is not None else None
        candidate = row.candidate if row is not None else None
        shown = candidate or (election.leader if election is not None else None)
        lease = shown.lease if shown is not None else 0
        elections = self.session
        self._app.query_one(ElectionDetail).show(
            election,
            candidate,
            elections.ttl(lease) if lease else (None, None),
            own=lease in elections.own,
            paused=lease in elections.paused_leases(),
            led_for=view.led_for(row.name) if row is not None else None,
        )

    # -- switching ------------------------------------------------------------------
    def toggle(self) -> None:
        """``e``: the elections view instead of the registry's, or back."""
        app = self._app
        view = self.view
        tree = app.query_one(RegistryTree)
        showing = not view.display
        view.display = showing
        tree.display = not showing
        app.query_one("#detail").display = not showing
        app.query_one(ElectionDetail).display = showing
        if showing:
            self._show_detail()
            view.border_title = self._title()
            view.focus()
        else:
            tree.focus()

    # -- actions --------------------------------------------------------------------
    def action_requested(self, message: ElectionsView.ActionRequested) -> None:
        """A key of the view (its rows hold what it acts on)."""
        message.stop()
        app = self._app
        row = message.row
        if message.action == "inspect":
            self._inspect_candidate(row)
            return
        if self._read_only:
            return
        if message.action == "campaign":
            default = row.name if row is not None else "myjob"
            app.push_screen(
                CampaignScreen(default, f"dashboard-{id(app) % 10000}"), self._campaign_submitted
            )
            return
        candidate = row.candidate if row is not None else None
        if row is not None and candidate is None:
            election = self.view.election(row.name)
            candidate = election.leader if election is not None else None
        if row is None or candidate is None:
            app.notify(
                "Highlight an election or a candidate first", severity="warning", markup=False
            )
            return
        own = self.session.own.get(candidate.lease)
        if message.action == "revoke":
            self._confirm_revoke(row, candidate)
        elif own is None:
            app.notify(
                "Only candidates started from this dashboard (★) can do that; x revokes any lease",
                severity="warning",
                markup=False,
            )
        elif message.action == "proclaim":

            def proclaim(value: str | None) -> None:
                if value is not None:
                    run_action(app, self._do_proclaim(own, value), "_do_proclaim")

            app.push_screen(ProclaimScreen(row.name, candidate.value_text()), proclaim)
        elif message.action == "resign":
            run_action(app, self._do_resign(own), "_do_resign")
        elif message.action == "pause":
            paused = self.session.toggle_pause(own.lease)
            view = self.view
            view.paused_leases = self.session.paused_leases()
            view.refresh()
            app.notify(
                f"Heartbeats of candidate {candidate.lease_hex} "
                + ("paused: watch the next one take over" if paused else "resumed"),
                markup=False,
            )

    def _inspect_candidate(self, row: ElectionRow | None) -> None:
        election = self.view.election(row.name) if row is not None else None
        candidate = row.candidate if row is not None else None
        if candidate is None and election is not None:
            candidate = election.leader
        if row is None or candidate is None:
            self._app.notify("Highlight a candidate first", severity="warning", markup=False)
            return
        self._app.push_screen(CandidateScreen(row.name, candidate))

    def _campaign_submitted(self, request: CampaignRequest | None) -> None:
        if request is not None:
            run_action(self._app, self._do_campaign(request), "_do_campaign")

    async def _do_campaign(self, request: CampaignRequest) -> None:
        try:
            candidacy = await self.session.campaign(request.name, request.value, request.ttl)
        except RegistryError as exc:
            notify_failed(self._app, exc, "Campaign")
            return
        self.view.own_leases = set(self.session.own)
        self._app.notify(
            f"Campaigning in {safe_line(request.name)}"
            f" (lease {candidacy.lease:x}, TTL {candidacy.ttl}s)",
            markup=False,
        )

    async def _do_proclaim(self, own: Candidacy, value: str) -> None:
        try:
            await self.session.proclaim(own.lease, value)
        except RegistryError as exc:
            notify_failed(self._app, exc, "Proclaim")

    async def _do_resign(self, own: Candidacy) -> None:
        try:
            await self.session.resign(own.lease)
        except RegistryError as exc:
            notify_failed(self._app, exc, "Resign")
            return
        self._app.notify(f"Resigned from {safe_line(own.election.name)}", markup=False)

    def keys_held_on(self, lease: int) -> set[bytes]:
        """The keys on ``lease`` that the dashboard holds: instances and candidates."""
        return self._registry.state.keys_on_lease(lease) | self.session.state.keys_on_lease(lease)

    def _confirm_revoke(self, row: ElectionRow, candidate: Candidate) -> None:
        if not candidate.lease:
            self._app.notify(
                f"{clip(candidate.key_text, 80)} has no lease (a permanent key): nothing to revoke",
                severity="warning",
                markup=False,
            )
            return
        run_action(
            self._app, self._ask_revoke_candidate(row.name, candidate), "_ask_revoke_candidate"
        )

    async def _ask_revoke_candidate(self, name: str, candidate: Candidate) -> None:
        lease = candidate.lease
        keys, exact = await keys_on_leases(self._registry.conn, {lease}, self.keys_held_on)
        election = self.view.election(name)
        lock = election is not None and election.kind is ElectionKind.LOCK
        leads = election is not None and election.leader is candidate
        what = ("holder" if lock else "leader") if leads else "candidate"
        value = clip(candidate.value_text(), 40) or "(empty)"
        message = (
            f"Revoke lease {candidate.lease_hex} of the {what} {value} in {clip(name, 60)}? "
            + keys_phrase(keys, 1, exact)
        )
        if leads and election is not None:
            # Every key on the lease goes: the first left in the queue takes over.
            gone = keys | {candidate.key}
            after = next((c for c in election.queue() if c.key not in gone), None)
            if after is None:
                message += " Nobody is left in the queue."
            else:
                who = clip(after.value_text(), 40) or clip(after.key_text, 80)
                message += f" Then {who} leads."

        def confirmed(yes: bool | None) -> None:
            if yes:
                run_action(self._app, self._do_revoke_candidate(lease), "_do_revoke_candidate")

        self._app.push_screen(ConfirmScreen("Revoke", message), confirmed)

    async def _do_revoke_candidate(self, lease: int) -> None:
        try:
            await self.session.revoke(lease)
        except LeaseNotFound:
            self._app.notify("The lease had already ended", severity="warning", markup=False)
        except RegistryError as exc:
            notify_failed(self._app, exc, "Revoke")
