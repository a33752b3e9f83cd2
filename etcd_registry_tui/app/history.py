"""The dashboard's past: history at start, the history view on ``h``, flapping, alarms.

A part of :class:`~etcd_registry_tui.app.RegistryApp`: :class:`History` owns the flap
detector and the mass-expiry alarm. The data layer parts are :mod:`..registry.history`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..pending_updates import PendingUpdates
from ..registry.history.alarms import FlapDetector, MassExpiryAlarm
from ..registry.history.read import value_at
from ..registry.history.store import HistoryEvent
from ..registry.history.view import PastView
from ..registry.log_entries import LogEntry, LogKind
from ..registry.model import KeyValue
from ..registry.session import RegistrySession
from ..widgets.alarm_banner import AlarmBanner
from ..widgets.event_log import EventLog
from ..widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from . import RegistryApp


class History:
    """Everything of the history that lives in the app. The session's ``on_history`` and
    ``on_events`` are :meth:`on_session_history` and :meth:`on_session_events`."""

    def __init__(
        self,
        app: RegistryApp,
        session: RegistrySession,
        pending: PendingUpdates,
        flaps: FlapDetector,
        alarm: MassExpiryAlarm,
        prefix: str,
    ) -> None:
        self._app = app
        self._prefix = prefix
        self._session = session
        self._pending = pending
        self.flaps = flaps
        self.alarm = alarm

    # -- data layer → UI ------------------------------------------------------------
    def on_session_history(self, entries: list[LogEntry]) -> None:
        self._pending.add_history(entries)

    def on_session_events(self, events: list[HistoryEvent]) -> None:
        now = time.time()
        self.flaps.observe(events, now)
        alarms = self.alarm.observe(
            events, self._session.state, now, self._session.waiting_removals()
        )
        if alarms:
            self._pending.add_log(LogEntry(LogKind.ALARM, "", text) for text in alarms)

    def after_flush(self, entries: list[LogEntry] | None) -> None:
        """Called with each flush: history read back (``entries``) goes under the live
        entries (read only once the first snapshot is on screen)."""
        session = self._session
        gate = session.history_gate
        if gate is not None and not gate.is_set() and session.watcher.snapshots_loaded:
            self._app.call_after_refresh(gate.set)
        if entries is not None:
            self._app.query_one(EventLog).add_history(entries)
        self.sync_marks()

    def sync_marks(self) -> None:
        """With each flush and each tick: the status line's history range (it moves as old
        events are dropped and etcd compacts) and etcd's revision, as far as progress
        notifications vouch for it (never one whose changes still wait for a flush)."""
        app, session = self._app, self._session
        bar = app.query_one(StatusBar)
        bar.set_history(session.history.describe_reach())
        vouched = session.watcher.resume_revision
        if vouched > session.state.revision and not self._pending.flush_due:
            bar.set_etcd_revision(vouched)
        now = time.time()
        tree = app.registry_tree
        flapping = self.flaps.flapping_keys(session.state, now)
        if flapping != tree.flapping:
            tree.flapping = flapping
        app.query_one(AlarmBanner).show(self.alarm.banner(now))

    # -- the history view -----------------------------------------------------------
    def open_view(self) -> None:
        """``h``: the history view over what the session holds."""
        from ..screens.history import HistoryScreen

        session = self._session
        view = PastView(session.state, session.history)
        if len(view.revisions()) <= 1 and not view.events:
            self._app.notify("No history held yet", severity="warning", markup=False)
        conn, prefix = session.conn, self._prefix

        async def read_value(key: bytes, revision: int) -> KeyValue:
            return await value_at(conn, prefix, key, revision)

        self._app.push_screen(HistoryScreen(view, prefix, read_value))

    def live_revision_changed(self) -> None:
        from ..screens.history import HistoryScreen

        app = self._app
        for screen in app.screen_stack:
            if isinstance(screen, HistoryScreen):
                screen.set_live(self._session.state.revision, self._session.history)
        for inspect in app.inspect_screens():
            inspect.follow_history()
