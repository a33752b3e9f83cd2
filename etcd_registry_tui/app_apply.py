"""The data layer → screen path: the flush that applies what :mod:`.pending_updates`
holds (paced there); the status line, the once-a-second tick, the detail pane.

A mixin of :class:`~etcd_registry_tui.app.RegistryApp` (see :mod:`.app_host`).
"""

from __future__ import annotations

import contextlib
import gc
import traceback

from .app_host import AppHost
from .app_terminal import crash_log_path
from .messages import RegistryDirty, StatusChanged, TaskFailed
from .registry.events import ChangeBatch, ConnectionStatus, ConnState
from .registry.log_entries import LogEntry, LogKind
from .registry.model import Change, Instance
from .registry.sanitize import safe_line
from .registry.supervisor import TaskFailure
from .registry.wording import plural
from .widgets.detail_pane import DetailPane
from .widgets.event_log import EventLog
from .widgets.status_bar import StatusBar

#: From this many instances on, a snapshot is moved out of the cyclic GC's reach.
FREEZE_SNAPSHOT_AT = 1_000


class ApplyMixin(AppHost):
    """What reaches the screen from the session, and when."""

    # -- data layer → UI -----------------------------------------------------
    def _on_session_batch(self, batch: ChangeBatch, entries: list[LogEntry]) -> None:
        pending = self.pending
        if batch.loading:
            # A page of the first snapshot: new keys, shown like any change, so the first
            # screen is drawn before the rest has arrived.
            pending.add_changes(batch.changes)
            if self.session.watcher.snapshots_loaded:  # the last page
                self._freeze_snapshot()
        elif batch.snapshot:
            pending.add_snapshot()
            self._freeze_snapshot()
        else:
            pending.add_changes(batch.changes)
        pending.add_log(entries)

    def _wake_flush(self) -> bool:
        """For :class:`PendingUpdates`: ask for a flush (one message until handled)."""
        return self.post_message(RegistryDirty())

    def _freeze_snapshot(self) -> None:
        if not self._gc_frozen and len(self.session.state) >= FREEZE_SNAPSHOT_AT:
            # The instances of a snapshot live until they change; without this every
            # full collection rescans them all: 40-130 ms pauses at 10,000 instances, every
            # few seconds as the lease tracker's RPCs keep allocating. Frozen objects
            # are still freed by reference counting when the registry drops them.
            # Only once: a reload keeps what did not change, and freezing again would
            # move every young object of the running app out of the collector's reach.
            self._gc_frozen = True
            gc.freeze()

    def _on_session_status(self, status: ConnectionStatus) -> None:
        self.post_message(StatusChanged(status))

    def _on_task_failure(self, failure: TaskFailure) -> None:
        """A supervised task died (it restarts by itself): the traceback goes to the
        crash log, one line to the screen."""
        with contextlib.suppress(OSError), crash_log_path().open("a") as log:
            log.write(f"--- {failure.summary}\n")
            log.write("".join(traceback.format_exception(failure.error)))
        self.post_message(TaskFailed(failure))

    def on_task_failed(self, message: TaskFailed) -> None:
        if not self.is_running:
            return
        text = f"{message.failure.summary} (details in {crash_log_path()})"
        self.query_one(EventLog).add([LogEntry(LogKind.ERROR, "", text)])
        self.query_one(StatusBar).note_error(message.failure.summary)

    def on_registry_dirty(self, _: RegistryDirty) -> None:
        wait = self.pending.woken()
        if not self.is_running or wait is None:
            # Shutting down (the widgets may be gone), or a timed flush is due already.
            return
        if wait <= 0:
            self._apply_pending()
        else:
            self.pending.timer_set()
            self.set_timer(wait, self._timed_flush, name="flush")

    def _timed_flush(self) -> None:
        self.pending.timer_fired()
        if self.is_running:
            self._apply_pending()

    def _apply_pending(self) -> None:
        # Not ``_flush``: that is Textual's App._flush(stderr), called whenever stdout or
        # stderr is flushed while the app runs (print(flush=True), logging's last resort).
        tree = self.registry_tree
        pending = self.pending
        taken = pending.take()
        changes: dict[bytes, Change] | None = taken.changes
        with self.batch_update():
            # Asked before the tree changes: set_state puts the cursor on the first row.
            nothing_highlighted = tree.cursor_index < 0
            if taken.snapshot:
                changes = None
                tree.set_state(self.session.state)
                if nothing_highlighted:
                    self._highlight_first()
            elif taken.changes:
                tree.apply_changes(taken.changes.values())
                if nothing_highlighted:  # the first page of a snapshot
                    self._highlight_first()
            self._follow_inspected(changes)
            self._probe_changes(changes)
            if taken.log:
                self.query_one(EventLog).add(taken.log)
            self._flush_history(taken.history)
            self.live_revision_changed()
            wanted = pending.wanted_key
            if wanted is not None and (tree.select_key(wanted) or wanted in self.session.state):
                pending.selected()  # selected, or hidden by the filter
            self._sync_marks()
            self._show_detail()
            self._update_counts()
        pending.flushed(len(taken.changes))

    def _follow_inspected(self, changes: dict[bytes, Change] | None) -> None:
        """Keep open inspect views on their keys (``None``: after a snapshot)."""
        for screen in self.inspect_screens():
            screen.follow_changes(changes)

    def on_status_changed(self, message: StatusChanged) -> None:
        if not self.is_running:
            # Shutting down (the watcher reports STOPPED as its worker is cancelled):
            # the screens and their widgets may be gone already.
            return
        status = message.status
        self.registry_tree.set_empty_text(self._empty_text(status))
        self.query_one(StatusBar).set_status(status)
        if status.error and status.attempt <= 1:
            self.query_one(EventLog).add([LogEntry(LogKind.ERROR, "", status.describe())])

    def _empty_text(self, status: ConnectionStatus) -> str:
        prefix, where = self.config.prefix, self.config.label
        if status.state is ConnState.LIVE:
            hint = "" if self.read_only else " — press r to register one"
            return f"No instances under {prefix} yet{hint}"
        if status.state is ConnState.TOO_LARGE:
            return safe_line(status.error or "The prefix is too large for the memory budget")
        if status.state is ConnState.RECONNECTING:
            return f"etcd at {where} is out of reach — see the status line"
        return f"Connecting to etcd at {where}…"

    def _update_counts(self) -> None:
        state = self.session.state
        self.query_one(StatusBar).set_counts(state.revision, state.service_count, len(state))

    def _sync_marks(self) -> None:
        tree = self.registry_tree
        own = set(self.session.own)
        paused = self.session.paused_keys()
        if own != tree.own_keys:
            tree.own_keys = own
            # The detail pane says whether its instance is ours: a key the watch brought
            # before its registration call returned is drawn again, now as ours.
            self._show_detail()
        if paused != tree.paused_keys:
            tree.paused_keys = paused
        self._refresh_leader_marks()

    def _tick(self) -> None:
        if not self._widgets_up():
            return
        self.registry_tree.tick()
        self._sync_history_marks()
        self._tick_elections()
        self._sync_marks()
        detail = self.query_one(DetailPane)
        if detail.instance is not None:
            detail.update_ttl(self.session.ttl(detail.instance.lease))
        for screen in self.inspect_screens():
            screen.follow_tick()
        if not self.pending.holds_changes:
            # (A revision moved on by progress notifications alone.) With changes still
            # waiting for their flush, the status line would name a revision the tree
            # does not show yet: the flush updates it.
            self._update_counts()

    # -- highlighted row -----------------------------------------------------
    def _highlight_first(self) -> None:
        for group in self.session.state.sorted_groups():
            for inst in group.sorted_instances():
                self.registry_tree.select_key(inst.raw_key)
                return

    def _highlighted(self) -> Instance | None:
        key = self.registry_tree.highlighted_instance
        return self.session.state.get(key) if key is not None else None

    def _show_detail(self) -> None:
        detail = self.query_one(DetailPane)
        inst = self._highlighted()
        if inst is None:
            service = self.registry_tree.highlighted_service
            group = self.session.state.groups.get(service) if service else None
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
            self.session.ttl(inst.lease),
            len(self.session.state.keys_on_lease(inst.lease)),
            self.session.is_own(inst.raw_key),
        )
