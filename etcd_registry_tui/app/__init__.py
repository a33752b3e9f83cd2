"""The live dashboard: services → instances, lease countdowns, actions on single keys.

This module puts the app together: layout, start-up, quitting, and the routing of Textual's
bindings, messages and hooks (Textual looks for them on the app class) to its parts. Each
part is a plain object that owns its state and is reached only through its public methods
(tests/unit/test_app_privacy.py checks that no part touches another's private attributes or
the app's):

* :class:`~.flush.Flush` (flush.py): the data layer → screen path, the registry view;
* :class:`~.actions.Actions` (actions.py): the keys' actions on keys and leases;
* :class:`~.terminal.Terminal` (terminal.py): signals, the terminal, the crash log;
* :class:`~.elections.Elections` (elections.py): the elections view;
* :class:`~.history.History` (history.py): history, flapping, alarms, the history view;
* :class:`~.probes.Probes` (probes.py): the opt-in address probes.

What they share is public: the session, the :class:`~..pending_updates.PendingUpdates`
pipeline, the supervisor, and the app's widgets.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.markup import escape as escape_markup
from textual.screen import Screen
from textual.widgets import Footer, Header, Input
from textual.worker import Worker, WorkerState

from ..inspect_link import SessionInspectSource
from ..messages import RegistryDirty, StatusChanged, TaskFailed
from ..pending_updates import PendingUpdates
from ..registry.elections.session import ElectionsSession
from ..registry.etcd.aio import within
from ..registry.etcd.config import ConnectionConfig
from ..registry.events import ChangeBatch, ConnectionStatus
from ..registry.history.alarms import FlapDetector, MassExpiryAlarm
from ..registry.history.store import DEFAULT_MAX_ENTRIES, DEFAULT_REVISIONS
from ..registry.log_entries import LogEntry
from ..registry.probes import ProbeOptions, Prober
from ..registry.sanitize import safe_line
from ..registry.session import RegistrySession
from ..registry.supervisor import Supervisor
from ..registry.wording import plural
from ..screens.inspect import InspectScreen
from ..widgets.alarm_banner import AlarmBanner
from ..widgets.detail_pane import DetailPane
from ..widgets.elections_view import ElectionsView
from ..widgets.event_log import EventLog
from ..widgets.registry_tree import RegistryTree
from ..widgets.status_bar import StatusBar
from .actions import Actions, allowed, notify_failed
from .elections import Elections
from .flush import FREEZE_SNAPSHOT_AT, Flush
from .history import History
from .probes import Probes
from .terminal import Terminal, crash_log_path

__all__ = [
    "FREEZE_SNAPSHOT_AT",
    "RegistryApp",
    "SwitchProfile",
    "crash_log_path",
    "run_app",
]

BackgroundTask = Callable[[], Awaitable[Any]]


class RegistryApp(App[int]):
    """The dashboard. ``start_session=False`` shows the session's state without
    connecting (used for snapshot tests of a prepared state)."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "etcd registry"
    ENABLE_COMMAND_PALETTE = True
    #: Classes of the screen by width, for app.tcss (what each width shows).
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (70, "-medium"),
        (80, "-normal"),
        (100, "-wide"),
        (160, "-huge"),
    ]

    BINDINGS = [
        Binding("r", "register", "Register"),
        Binding("x", "revoke", "Revoke"),
        Binding("d", "delete", "Delete"),
        Binding("p", "pause", "Pause"),
        Binding("i", "inspect", "Inspect"),
        Binding("e", "toggle_elections", "Elections"),
        Binding("h", "history", "History"),
        Binding("P", "toggle_probes", "Probes", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        # Listed in ? help (the compact footer leaves the palette hint out).
        Binding("ctrl+p", "command_palette", "Command palette", show=False),
        # As in k9s and most terminal tools (Textual's default only hints at ctrl+q).
        Binding("ctrl+c", "quit", "Quit", show=False),
        # The terminal is in raw mode, so ^Z is a key, not SIGTSTP: suspend as a shell
        # expects (POSIX; a no-op on Windows). `fg` redraws (see terminal.py).
        Binding("ctrl+z", "suspend_process", "Suspend", show=False),
    ]

    def __init__(
        self,
        config: ConnectionConfig | None = None,
        read_only: bool = False,
        session: RegistrySession | None = None,
        start_session: bool = True,
        background: Iterable[BackgroundTask] = (),
        on_shutdown: Iterable[BackgroundTask] = (),
        subtitle: str | None = None,
        elections_prefixes: Iterable[str] = (),
        history_revisions: int = DEFAULT_REVISIONS,
        history_max: int = DEFAULT_MAX_ENTRIES,
        flapping: FlapDetector | None = None,
        alarm: MassExpiryAlarm | None = None,
        profile: str | None = None,
        profiles: Iterable[str] = (),
        probes: ProbeOptions | None = None,
    ) -> None:
        super().__init__()
        #: The connection profile this dashboard runs on, and the others it can switch to.
        self.profile = profile
        self.profiles = tuple(profiles)
        #: Set by a profile switch: run_app raises SwitchProfile after the app has left.
        self.switch_to: str | None = None
        if profile:
            self.title = f"{self.TITLE} · {safe_line(profile)}"
        self.config = config or ConnectionConfig()
        self.session = session or RegistrySession(
            self.config,
            read_only=read_only,
            history_revisions=history_revisions,
            history_max=history_max,
        )
        self.terminal = Terminal(self, self._restore_terminal)
        # Background workers (the demo's fleet) restart after a death, as the session's do.
        self.supervisor = Supervisor(self.terminal.report_task_failure)
        self.read_only = read_only or self.session.read_only
        self.session.read_only = self.read_only
        self.start_session = start_session
        self.background = list(background)
        self.on_shutdown = list(on_shutdown)
        self.sub_title = (
            subtitle or f"{self.config.label}  {' '.join(self.config.watched_prefixes)}"
        )
        #: What the session brought and the screen has not shown yet (the one owner).
        self.pending = PendingUpdates(self._wake_flush)
        self._quitting = False
        # The parts (see the module's docstring), each given what it uses.
        self.history = History(
            self,
            self.session,
            self.pending,
            flapping or FlapDetector(),
            alarm or MassExpiryAlarm(),
            self.config.prefix,
        )
        self.probes = Probes(self, self.session, self.supervisor, probes or ProbeOptions())
        self.elections_ui = Elections(
            self,
            self.session,
            tuple(elections_prefixes),
            self.read_only,
            self.terminal.report_task_failure,
        )
        self.flush = Flush(
            self,
            self.session,
            self.pending,
            self.history,
            self.probes,
            self.elections_ui,
            run_flush=lambda: self._apply_pending(),  # looked up late: benches wrap it
            read_only=self.read_only,
            place=(self.config.prefix, self.config.label),
        )
        self.actions = Actions(self, self.session, self.flush, self.elections_ui)
        session = self.session
        session.on_batch = self._on_session_batch
        session.on_status = self._on_session_status
        session.on_failure = self.terminal.report_task_failure
        session.on_history = self.history.on_session_history
        session.on_events = self.history.on_session_events
        session.history_gate = asyncio.Event()
        #: What an open inspect view follows (see :meth:`inspect_screens`).
        self.inspect_source = SessionInspectSource(self.session, self.probes.inspect_text)

    # -- what tests, benches and scripts read ----------------------------------
    @property
    def elections(self) -> ElectionsSession:
        return self.elections_ui.session

    @property
    def elections_view(self) -> ElectionsView:
        return self.elections_ui.view

    @property
    def showing_elections(self) -> bool:
        return self.elections_ui.showing

    @property
    def prober(self) -> Prober:
        return self.probes.prober

    @property
    def probing(self) -> bool:
        return self.probes.probing

    @property
    def alarm(self) -> MassExpiryAlarm:
        return self.history.alarm

    @property
    def flaps(self) -> FlapDetector:
        return self.history.flaps

    # -- layout --------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◉")
        yield AlarmBanner(id="alarm")
        with Horizontal(id="main"):
            yield RegistryTree(id="tree", ttl_source=self.session.ttl)
            yield self.elections_ui.compose_view()
            with Vertical(id="side"):
                yield DetailPane(id="detail")
                yield self.elections_ui.compose_detail()
                yield EventLog(
                    max_entries=self.session.history.max_entries,
                    prefix=self.config.prefixes,
                    id="events",
                )
        yield Input(placeholder="filter: service name, id or address", id="filter")
        yield StatusBar(self.config.label, read_only=self.read_only, id="status")
        yield Footer(compact=True, show_command_palette=False)  # ^p is in ? help

    @property
    def registry_tree(self) -> RegistryTree:
        return self.query_one(RegistryTree)

    def on_mount(self) -> None:
        tree = self.registry_tree
        tree.border_title = "Services"
        tree.focus()
        self.query_one("#filter", Input).display = False
        if self.start_session:
            self.run_worker(self.session.run(), name="registry", exit_on_error=False)
            self.run_worker(self.elections_ui.run(), name="elections", exit_on_error=False)
            for task in self.background:
                name = getattr(task, "__qualname__", "background task")
                self.run_worker(
                    self.supervisor.run(name, task), name="background", exit_on_error=False
                )
        else:
            self.pending.add_snapshot(wake=False)  # the state given: drawn at once
            self._apply_pending()
        self.set_interval(1.0, self._tick, name="countdown")
        self.probes.start_if_wanted()
        self.terminal.install()

    def on_unmount(self) -> None:
        self.terminal.restore()

    def inspect_screens(self) -> list[InspectScreen]:
        """The open inspect views (each follows its key through :attr:`inspect_source`)."""
        return [s for s in self.screen_stack if isinstance(s, InspectScreen)]

    def _widgets_up(self) -> bool:
        """False while the app is torn down: a timer or a late message may still fire
        after the dashboard's widgets are gone."""
        if not self.is_running:
            return False
        try:
            self.query_one(RegistryTree)
        except NoMatches:
            return False
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            # Textual's "Keys" panel lists its own keys too; ours (?) lists this view's.
            if command.title != "Keys":
                yield command
        commands = [
            ("Register a test instance", "Grant a lease and register an instance", "register"),
            ("Revoke lease", "Revoke the highlighted instance's lease", "revoke"),
            ("Delete key", "Delete the highlighted key", "delete"),
            ("Pause / resume heartbeat", "Of an instance registered here", "pause"),
            ("Inspect instance", "Full value and metadata", "inspect"),
            (
                "Elections view",
                "Switch between the registry and elections/locks",
                "toggle_elections",
            ),
            ("History", "Step through the registry's past revisions", "history"),
            ("Filter", "Filter by service, id or address", "filter"),
            ("Probes on / off", "Check that each instance's address answers (P)", "toggle_probes"),
            ("Keys", "Every key of this view, and what the colours and marks mean (?)", "help"),
        ]
        for title, help_text, action in commands:
            if self.check_action(action, ()):
                yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
        for name in self.profiles:
            if name != self.profile:
                yield SystemCommand(
                    # The palette reads titles as markup: a profile is named as written.
                    f"Switch to profile {escape_markup(safe_line(name))}",
                    "Restart the dashboard on that profile (instances registered here go)",
                    functools.partial(self.switch_profile, name),
                )

    async def switch_profile(self, name: str) -> None:
        """Leave as ``q`` does, then run_app starts again on profile ``name``."""
        self.switch_to = name
        await self.action_quit()

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        own = len(self.session.own)
        if own:
            self.notify(f"Unregistering {plural(own, 'instance')} registered here…", markup=False)
        await self.shutdown_session()
        self.exit(0)

    async def shutdown_session(self) -> None:
        with contextlib.suppress(Exception):
            await self.probes.stop()
        with contextlib.suppress(Exception):
            await self.elections_ui.shutdown()
        with contextlib.suppress(Exception):
            await self.session.shutdown()
        for hook in self.on_shutdown:
            with contextlib.suppress(Exception):
                await within(hook(), 5)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            notify_failed(self, event.worker.error, event.worker.name or "background task")

    # -- the data layer → the flush (Flush) ------------------------------------
    def _on_session_batch(self, batch: ChangeBatch, entries: list[LogEntry]) -> None:
        self.flush.on_session_batch(batch, entries)

    def _on_session_status(self, status: ConnectionStatus) -> None:
        self.post_message(StatusChanged(status))

    def _wake_flush(self) -> bool:
        """For :class:`PendingUpdates`: ask for a flush (one message until handled)."""
        return self.post_message(RegistryDirty())

    def on_registry_dirty(self, _: RegistryDirty) -> None:
        self.flush.woken()

    def _apply_pending(self) -> None:
        """Every flush goes through here (benches and tests wrap it to count or hold them).
        Not ``_flush``: that is Textual's App._flush(stderr), called whenever stdout or
        stderr is flushed while the app runs (print(flush=True), logging's last resort)."""
        self.flush.apply()

    def on_status_changed(self, message: StatusChanged) -> None:
        self.flush.show_status(message.status)

    def on_task_failed(self, message: TaskFailed) -> None:
        self.terminal.show_task_failure(message.failure)

    def _tick(self) -> None:
        if not self._widgets_up():
            return
        self.registry_tree.tick()
        self.history.sync_marks()
        self.elections_ui.tick()
        self.flush.tick()
        for screen in self.inspect_screens():
            screen.follow_tick()

    @on(RegistryTree.Highlighted)
    def _highlight_changed(self, _: RegistryTree.Highlighted) -> None:
        if self._widgets_up():
            self.flush.show_detail()

    @on(RegistryTree.Selected)
    def _selected(self, _: RegistryTree.Selected) -> None:
        self.action_inspect()

    # -- bindings → the parts -----------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # self._is_mounted: Textual's private flag (tests/unit/test_private_apis.py checks it)
        showing = self._is_mounted and self.showing_elections
        return allowed(action, self.read_only, len(self.screen_stack), showing)

    def action_register(self) -> None:
        self.actions.register()

    def action_revoke(self) -> None:
        self.actions.revoke()

    def action_delete(self) -> None:
        self.actions.delete()

    def action_pause(self) -> None:
        self.actions.pause()

    def action_inspect(self) -> None:
        self.actions.inspect()

    def action_filter(self) -> None:
        self.actions.filter()

    def action_clear_filter(self) -> None:
        self.actions.clear_filter()

    def action_help(self) -> None:
        self.actions.help()

    def action_toggle_elections(self) -> None:
        self.elections_ui.toggle()

    def action_history(self) -> None:
        self.history.open_view()

    def action_toggle_probes(self) -> None:
        self.probes.toggle()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.actions.filter_changed(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.actions.filter_submitted(event.value)

    @on(ElectionsView.Highlighted)
    def _election_highlighted(self, _: ElectionsView.Highlighted) -> None:
        self.elections_ui.highlighted()

    @on(ElectionsView.ActionRequested)
    def _election_action(self, message: ElectionsView.ActionRequested) -> None:
        self.elections_ui.action_requested(message)

    # -- Textual's private hooks (tests/unit/test_private_apis.py checks both) -------------
    def _restore_terminal(self) -> None:
        """Put the terminal back as a normal exit would: tty modes, main screen, no mouse
        reporting, cursor shown. The terminal is usually gone after a hangup, but a tmux
        pane or terminal window that survives must be usable. Blocks at most until the
        signal watchdog fires if the terminal no longer takes output."""
        driver = self._driver  # Textual's private App._driver
        if driver is None:
            return
        with contextlib.suppress(Exception):
            driver.stop_application_mode()
        with contextlib.suppress(Exception):
            driver.close()  # waits until the writer thread has put everything out

    # Overrides Textual's private hook, reads App._exit_renderables
    def _print_error_renderables(self) -> None:
        """An internal error: the traceback goes to a file, the terminal gets one line."""
        if not self._exit_renderables:
            return
        self.terminal.write_error_renderables(self._exit_renderables)
        self._exit_renderables.clear()


class SwitchProfile(Exception):
    """The dashboard was left to start again on another profile."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def run_app(
    config: ConnectionConfig,
    read_only: bool = False,
    background: Iterable[BackgroundTask] = (),
    on_shutdown: Iterable[BackgroundTask] = (),
    subtitle: str | None = None,
    elections_prefixes: Iterable[str] = (),
    history_revisions: int = DEFAULT_REVISIONS,
    profile: str | None = None,
    profiles: Iterable[str] = (),
    probes: ProbeOptions | None = None,
    alarms: tuple[FlapDetector, MassExpiryAlarm] | None = None,
) -> int:
    flapping, alarm = alarms if alarms is not None else (None, None)
    app = RegistryApp(
        config,
        flapping=flapping,
        alarm=alarm,
        history_revisions=history_revisions,
        probes=probes,
        profile=profile,
        profiles=profiles,
        read_only=read_only,
        elections_prefixes=elections_prefixes,
        background=background,
        on_shutdown=on_shutdown,
        subtitle=subtitle,
    )
    app.run()
    if app.switch_to is not None and app.return_code in (None, 0):
        raise SwitchProfile(app.switch_to)
    if app.return_code not in (None, 0):
        return int(app.return_code)
    return 0
