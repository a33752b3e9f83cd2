"""The data layer → screen path: the flush that applies what :mod:`..pending_updates`
holds (paced there); the status line, the once-a-second tick, the detail pane.

A part of :class:`~etcd_registry_tui.app.RegistryApp`: :class:`Flush` shows the registry
view (tree, detail pane, status line's counts) and hands each flush's changes to the parts
that follow them (:class:`~.history.History`, :class:`~.probes.Probes`,
:class:`~.elections.Elections`' leader marks).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..pending_updates import PendingUpdates
from ..registry.events import ChangeBatch, ConnectionStatus, ConnState
from ..registry.log_entries import LogEntry, LogKind
from ..registry.model import Change, Instance
from ..registry.sanitize import safe_line
from ..registry.session import RegistrySession
from ..registry.wording import plural
from ..widgets.detail_pane import DetailPane
from ..widgets.event_log import EventLog
from ..widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from . import RegistryApp
    from .elections import Elections
    from .history import History
    from .probes import Probes

#: From this many instances on, a snapshot is moved out of the cyclic GC's reach.
FREEZE_SNAPSHOT_AT = 1_000


class Flush:
    """What reaches the screen from the session, and when.

    ``run_flush`` is the app's entry to one flush (it calls :meth:`apply`); the timed
    flushes set here go through it too.
    """

    def __init__(
        self,
        app: RegistryApp,
        session: RegistrySession,
        pending: PendingUpdates,
        history: History,
        probes: Probes,
        elections: Elections,
        run_flush: Callable[[], None],
        read_only: bool,
        place: tuple[str, str],
    ) -> None:
        self._app = app
        self._session = session
        self._pending = pending
        self._history = history
        self._probes = probes
        self._elections = elections
        self._run_flush = run_flush
        self._read_only = read_only
        #: The prefix and the endpoint's label, for the empty tree's text.
        self._prefix, self._where = place
        self._gc_frozen = False

    # -- data layer → UI -----------------------------------------------------
    def on_session_batch(self, batch: ChangeBatch, entries: list[LogEntry]) -> None:
        pending = self._pending
        if batch.loading:
            # A page of the first snapshot: new keys, shown like any change, so the first
            # screen is drawn before the rest has arrived.
            pending.add_changes(batch.changes)
            if self._session.watcher.snapshots_loaded:  # the last page
                self._freeze_snapshot()
        elif batch.snapshot:
            pending.add_snapshot()
            self._freeze_snapshot()
        else:
            pending.add_changes(batch.changes)
        pending.add_log(entries)

    def _freeze_snapshot(self) -> None:
        if not self._gc_frozen and len(self._session.state) >= FREEZE_SNAPSHOT_AT:
            # The instances of a snapshot live until they change; without this every
            # full collection rescans them all: 40-130 ms pauses at 10,000 instances, every
            # few seconds as the lease tracker's RPCs keep allocating. Frozen objects
            # are still freed by reference counting when the registry drops them.
            # Only once: a reload keeps what did not change, and freezing again would
            # move every young object of the running app out of the collector's reach.
            self._gc_frozen = True
            gc.freeze()

    def woken(self) -> None:
        """The wake message (``RegistryDirty``) arrived: flush now, or set a timed flush."""
        pending = self._pending
        wait = pending.woken()
        if not self._app.is_running or wait is None:
            # Shutting down (the widgets may be gone), or a timed flush is due already.
            return
        if wait <= 0:
            self._run_flush()
        else:
            pending.timer_set()
            self._app.set_timer(wait, self._timed_flush, name="flush")

    def _timed_flush(self) -> None:
        self._pending.timer_fired()
        if self._app.is_running:
            self._run_flush()

    def select_when_shown(self, key: bytes | None) -> None:
        """Select ``key`` at the first flush that finds it in the tree, or finds it hidden
        by the filter (then it is not selected later); None: nothing to select."""
        self._pending.select_when_shown(key)

    def apply(self) -> None:
        """One flush: everything pending onto the screen."""
        app = self._app
        tree = app.registry_tree
        pending = self._pending
        taken = pending.take()
        changes: dict[bytes, Change] | None = taken.changes
        with app.batch_update():
            # Asked before the tree changes: set_state puts the cursor on the first row.
            nothing_highlighted = tree.cursor_index < 0
            if taken.snapshot:
                changes = None
                tree.set_state(self._session.state)
                if nothing_highlighted:
                    self._highlight_first()
            elif taken.changes:
                tree.apply_changes(taken.changes.values())
                if nothing_highlighted:  # the first page of a snapshot
                    self._highlight_first()
            for screen in app.inspect_screens():  # keep open inspect views on their keys
                screen.follow_changes(changes)
            self._probes.follow_changes(changes)
            if taken.log:
                app.query_one(EventLog).add(taken.log)
            self._history.after_flush(taken.history)
            self._history.live_revision_changed()
            wanted = pending.wanted_key
            if wanted is not None and (tree.select_key(wanted) or wanted in self._session.state):
                pending.selected()  # selected, or hidden by the filter
            self.sync_marks()
            self.show_detail()
            self._update_counts()
        pending.flushed(len(taken.changes))

    def show_status(self, status: ConnectionStatus) -> None:
        app = self._app
        if not app.is_running:
            # Shutting down (the watcher reports STOPPED as its worker is cancelled):
            # the screens and their widgets may be gone already.
            return
        app.registry_tree.set_empty_text(self._empty_text(status))
        app.query_one(StatusBar).set_status(status)
        if status.error and status.attempt <= 1:
            app.query_one(EventLog).add([LogEntry(LogKind.ERROR, "", status.describe())])

    def _empty_text(self, status: ConnectionStatus) -> str:
        prefix, where = self._prefix, self._where
        if status.state is ConnState.LIVE:
            hint = "" if self._read_only else " — press r to register one"
            return f"No instances under {prefix} yet{hint}"
        if status.state is ConnState.TOO_LARGE:
            return safe_line(status.error or "The prefix is too large for the memory budget")
        if status.state is ConnState.RECONNECTING:
            return f"etcd at {where} is out of reach — see the status line"
        return f"Connecting to etcd at {where}…"

    def _update_counts(self) -> None:
        state = self._session.state
        bar = self._app.query_one(StatusBar)
        bar.set_counts(state.revision, state.service_count, len(state))
        bar.set_layouts(state.layout_totals())

    def sync_marks(self) -> None:
        """The tree's marks: own (★), paused, leaders."""
        tree = self._app.registry_tree
        own = set(self._session.own)
        paused = self._session.paused_keys()
        if own != tree.own_keys:
            tree.own_keys = own
            # The detail pane says whether its instance is ours: a key the watch brought
            # before its registration call returned is drawn again, now as ours.
            self.show_detail()
        if paused != tree.paused_keys:
            tree.paused_keys = paused
        self._elections.refresh_leader_marks()

    def tick(self) -> None:
        """The 1 Hz tick of the registry view (after the tree's countdowns)."""
        self.sync_marks()
        detail = self._app.query_one(DetailPane)
        if detail.instance is not None:
            detail.update_ttl(self._session.ttl(detail.instance.lease))
        if not self._pending.holds_changes:
            # (A revision moved on by progress notifications alone.) With changes still
            # waiting for their flush, the status line would name a revision the tree
            # does not show yet: the flush updates it.
            self._update_counts()

    # -- highlighted row -----------------------------------------------------
    def _highlight_first(self) -> None:
        for group in self._session.state.sorted_groups():
            for inst in group.sorted_instances():
                self._app.registry_tree.select_key(inst.raw_key)
                return

    def highlighted(self) -> Instance | None:
        key = self._app.registry_tree.highlighted_instance
        return self._session.state.get(key) if key is not None else None

    def show_detail(self) -> None:
        session = self._session
        detail = self._app.query_one(DetailPane)
        inst = self.highlighted()
        if inst is None:
            service = self._app.registry_tree.highlighted_service
            group = session.state.groups.get(service) if service else None
            summary = None
            if group is not None:
                leases = {i.lease for i in group.instances.values() if i.lease}
                summary = (
                    f"{safe_line(group.name)}: {plural(len(group.instances), 'instance')}"
                    f" on {plural(len(leases), 'lease')}"
                )
            detail.show(None, service_summary=summary)
            return
        detail.show(
            inst,
            session.ttl(inst.lease),
            len(session.state.keys_on_lease(inst.lease)),
            session.is_own(inst.raw_key),
        )
