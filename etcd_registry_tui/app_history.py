"""The dashboard's past: history at start, the history view on ``h``, flapping, alarms.

A mixin of :class:`~etcd_registry_tui.app.RegistryApp` (see :mod:`.app_elections`). The
data layer parts are :mod:`.registry.history`, :mod:`.registry.history_view` and
:mod:`.registry.alarms`. Textual collects ``@on`` handlers only from classes its
metaclass builds, so handlers here are named ``on_<widget>_<message>``.
"""

from __future__ import annotations

import asyncio
import time

from .app_host import AppHost
from .registry.history.alarms import FlapDetector, MassExpiryAlarm
from .registry.history.read import value_at
from .registry.history.store import HistoryEvent
from .registry.history.view import PastView
from .registry.log_entries import LogEntry, LogKind
from .registry.model import KeyValue
from .widgets.alarm_banner import AlarmBanner
from .widgets.event_log import EventLog
from .widgets.status_bar import StatusBar


class HistoryMixin(AppHost):
    """Everything of the history that lives in the app."""

    flaps: FlapDetector
    alarm: MassExpiryAlarm

    def _init_history(self, flap: FlapDetector, alarm: MassExpiryAlarm) -> None:
        self.session.on_history = self._on_session_history
        self.session.on_events = self._on_session_events
        self.session.history_gate = asyncio.Event()
        self.flaps = flap
        self.alarm = alarm

    # -- data layer → UI ------------------------------------------------------------
    def _on_session_history(self, entries: list[LogEntry]) -> None:
        self.pending.add_history(entries)

    def _on_session_events(self, events: list[HistoryEvent]) -> None:
        now = time.time()
        self.flaps.observe(events, now)
        alarms = self.alarm.observe(
            events, self.session.state, now, self.session.waiting_removals()
        )
        if alarms:
            self.pending.add_log(LogEntry(LogKind.ALARM, "", text) for text in alarms)

    def _flush_history(self, entries: list[LogEntry] | None) -> None:
        """Called with each flush: history read back (``entries``) goes under the live
        entries (read only once the first snapshot is on screen)."""
        gate = self.session.history_gate
        if gate is not None and not gate.is_set() and self.session.watcher.snapshots_loaded:
            self.call_after_refresh(gate.set)
        if entries is not None:
            self.query_one(EventLog).add_history(entries)
        self._sync_history_marks()

    def _sync_history_marks(self) -> None:
        """With each flush and each tick: the status line's history range (it moves as old
        events are dropped and etcd compacts) and etcd's revision, as far as progress
        notifications vouch for it (never one whose changes still wait for a flush)."""
        bar = self.query_one(StatusBar)
        bar.set_history(self.session.history.describe_reach())
        vouched = self.session.watcher.resume_revision
        if vouched > self.session.state.revision and not self.pending.flush_due:
            bar.set_etcd_revision(vouched)
        now = time.time()
        flapping = self.flaps.flapping_keys(self.session.state, now)
        if flapping != self.registry_tree.flapping:
            self.registry_tree.flapping = flapping
        banner = self.alarm.banner(now)
        self._show_alarm(banner)

    def _show_alarm(self, text: str | None) -> None:
        self.query_one(AlarmBanner).show(text)

    # -- the history view -----------------------------------------------------------
    def action_history(self) -> None:
        from .screens.history import HistoryScreen

        view = PastView(self.session.state, self.session.history)
        if len(view.revisions()) <= 1 and not view.events:
            self.notify("No history held yet", severity="warning", markup=False)
        conn, prefix = self.session.conn, self.config.prefix

        async def read_value(key: bytes, revision: int) -> KeyValue:
            return await value_at(conn, prefix, key, revision)

        self.push_screen(HistoryScreen(view, prefix, read_value))

    def live_revision_changed(self) -> None:
        from .screens.history import HistoryScreen

        for screen in self.screen_stack:
            if isinstance(screen, HistoryScreen):
                screen.set_live(self.session.state.revision, self.session.history)
        for inspect in self.inspect_screens():
            inspect.follow_history()


__all__ = ["HistoryMixin", "LogKind"]
