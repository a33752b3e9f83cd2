"""The live dashboard: services → instances, lease countdowns, actions on single keys.

This file puts the app together (layout, start-up, the handlers Textual only collects from
the app class itself, quitting). Its parts, one concern each, are mixins: app_apply (data
layer → screen), app_actions (the keys' actions), app_terminal (signals, the terminal, the
crash log), app_elections, app_history, app_probes; app_host types what they share.
"""

from __future__ import annotations

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

from .app_actions import ActionsMixin
from .app_apply import FREEZE_SNAPSHOT_AT, ApplyMixin
from .app_elections import ElectionsMixin
from .app_history import HistoryMixin
from .app_probes import ProbesMixin
from .app_terminal import TerminalMixin, crash_log_path
from .inspect_link import SessionInspectSource
from .pending_updates import PendingUpdates
from .registry.etcd.aio import within
from .registry.etcd.config import ConnectionConfig
from .registry.history.alarms import FlapDetector, MassExpiryAlarm
from .registry.history.store import DEFAULT_MAX_ENTRIES, DEFAULT_REVISIONS
from .registry.probes import ProbeOptions
from .registry.sanitize import safe_line
from .registry.session import RegistrySession
from .registry.supervisor import Supervisor
from .registry.wording import plural
from .screens.inspect import InspectScreen
from .widgets.alarm_banner import AlarmBanner
from .widgets.detail_pane import DetailPane
from .widgets.event_log import EventLog
from .widgets.registry_tree import RegistryTree
from .widgets.status_bar import StatusBar

__all__ = [
    "FREEZE_SNAPSHOT_AT",
    "RegistryApp",
    "SwitchProfile",
    "crash_log_path",
    "run_app",
]

BackgroundTask = Callable[[], Awaitable[Any]]


class RegistryApp(
    ApplyMixin,
    ActionsMixin,
    TerminalMixin,
    HistoryMixin,
    ProbesMixin,
    ElectionsMixin,
    App[int],
):
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
        # expects (POSIX; a no-op on Windows). `fg` redraws, see _redraw_after_resume.
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
        self.session.on_batch = self._on_session_batch
        self.session.on_status = self._on_session_status
        self.session.on_failure = self._on_task_failure
        # Background workers (the demo's fleet) restart after a death, as the session's do.
        self.supervisor = Supervisor(self._on_task_failure)
        self._gc_frozen = False
        self.read_only = read_only or self.session.read_only
        self.session.read_only = self.read_only
        self.start_session = start_session
        self.background = list(background)
        self.on_shutdown = list(on_shutdown)
        self.sub_title = subtitle or f"{self.config.label}  {self.config.prefix}"
        #: What the session brought and the screen has not shown yet (the one owner).
        self.pending = PendingUpdates(self._wake_flush)
        self._quitting = False
        self._init_elections(tuple(elections_prefixes))
        self._init_history(flapping or FlapDetector(), alarm or MassExpiryAlarm())
        self._init_probes(probes or ProbeOptions())
        #: What an open inspect view follows (see :meth:`inspect_screens`).
        self.inspect_source = SessionInspectSource(self.session, self._inspect_probe_text)

    # -- layout --------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◉")
        yield AlarmBanner(id="alarm")
        with Horizontal(id="main"):
            yield RegistryTree(id="tree", ttl_source=self.session.ttl)
            yield self._compose_elections()
            with Vertical(id="side"):
                yield DetailPane(id="detail")
                yield self._compose_election_detail()
                yield EventLog(
                    max_entries=self.session.history.max_entries,
                    prefix=self.config.prefix,
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
            self.run_worker(self._run_elections(), name="elections", exit_on_error=False)
            for task in self.background:
                name = getattr(task, "__qualname__", "background task")
                self.run_worker(
                    self.supervisor.run(name, task), name="background", exit_on_error=False
                )
        else:
            self.pending.add_snapshot(wake=False)  # the state given: drawn at once
            self._apply_pending()
        self.set_interval(1.0, self._tick, name="countdown")
        self._start_probes_if_wanted()
        self._install_signal_handlers()

    def on_unmount(self) -> None:
        self._restore_signal_handlers()

    @on(RegistryTree.Highlighted)
    def _highlight_changed(self, _: RegistryTree.Highlighted) -> None:
        if self._widgets_up():
            self._show_detail()

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

    @on(RegistryTree.Selected)
    def _selected(self, _: RegistryTree.Selected) -> None:
        self.action_inspect()

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

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.registry_tree.set_filter(event.value)
        self.query_one(StatusBar).set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self.query_one("#filter", Input).display = False
        self.registry_tree.focus()

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
            await self._stop_probes()
        with contextlib.suppress(Exception):
            await self.elections.shutdown()
        with contextlib.suppress(Exception):
            await self.session.shutdown()
        for hook in self.on_shutdown:
            with contextlib.suppress(Exception):
                await within(hook(), 5)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self._fail(event.worker.error, event.worker.name or "background task")


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
