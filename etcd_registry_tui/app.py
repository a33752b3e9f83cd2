"""The live dashboard: services → instances, lease countdowns, actions on single keys."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input
from textual.worker import Worker, WorkerState

from .app_elections import ElectionsMixin
from .app_history import HistoryMixin
from .app_probes import ProbeOptions, ProbesMixin
from .messages import RegistryDirty, StatusChanged, TaskFailed
from .registry.alarms import FlapDetector, MassExpiryAlarm
from .registry.config import ConnectionConfig
from .registry.errors import RegistryError
from .registry.events import ChangeBatch, ConnectionStatus, ConnState
from .registry.history import DEFAULT_MAX_ENTRIES, DEFAULT_REVISIONS
from .registry.model import UNRECOGNISED, Change, ChangeKind, Instance
from .registry.sanitize import safe_line, safe_text
from .registry.session import LogEntry, LogKind, RegistrySession
from .registry.supervisor import Supervisor, TaskFailure
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.inspect import InspectScreen
from .screens.register import RegisterRequest, RegisterScreen, free_port
from .widgets.alarm_banner import AlarmBanner
from .widgets.detail_pane import DetailPane
from .widgets.event_log import EventLog
from .widgets.registry_tree import RegistryTree
from .widgets.status_bar import StatusBar

WRITE_ACTIONS = {"register", "revoke", "delete", "pause"}
DASHBOARD_ACTIONS = WRITE_ACTIONS | {
    "inspect", "filter", "clear_filter", "toggle_elections", "history"
}  # fmt: skip
#: Registry-tree actions that make no sense while the elections view is shown.
TREE_ACTIONS = {"inspect", "filter"}

BackgroundTask = Callable[[], Awaitable[Any]]

#: From this many instances on, a snapshot is moved out of the cyclic GC's reach.
FREEZE_SNAPSHOT_AT = 1_000

#: The screen takes in what the watch brought at most this often. In between, changes are
#: coalesced per key (the latest state of a key wins), so the UI's work follows what is on
#: screen, not how fast etcd changes; a lone change after a quiet spell is shown at once.
FLUSH_INTERVAL = 1 / 20
#: Under sustained load (the last flush applied at least BUSY_CHANGES changes) the screen
#: takes them in ten times a second: a frame costs about as much whatever it shows, and the
#: event loop's time goes to keeping up with etcd instead.
BUSY_FLUSH_INTERVAL = 0.1
BUSY_CHANGES = 20


def crash_log_path() -> Path:
    """Where tracebacks of internal errors go (the terminal gets one line)."""
    return Path(tempfile.gettempdir()) / f"etcd-registry-tui-crash-{os.getpid()}.log"


class RegistryApp(HistoryMixin, ProbesMixin, ElectionsMixin, App[int]):
    """The dashboard. ``start_session=False`` shows the session's state without
    connecting (used for snapshot tests of a prepared state)."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "etcd registry"
    ENABLE_COMMAND_PALETTE = True

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
        #: Latest change per key since the last flush.
        self._pending_changes: dict[bytes, Change] = {}
        self._pending_log: list[LogEntry] = []
        self._pending_snapshot = False
        self._last_flush = 0.0
        self._last_flush_size = 0
        self._flush_timer: Timer | None = None
        self._dirty_posted = False
        self._quitting = False
        self._select_when_shown: bytes | None = None
        self._init_elections(tuple(elections_prefixes))
        self._init_history(flapping or FlapDetector(), alarm or MassExpiryAlarm())
        self._init_probes(probes or ProbeOptions())

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
            self.run_worker(self.elections.run(), name="elections", exit_on_error=False)
            for task in self.background:
                name = getattr(task, "__qualname__", "background task")
                self.run_worker(
                    self.supervisor.run(name, task), name="background", exit_on_error=False
                )
        else:
            self._pending_snapshot = True
            self._apply_pending()
        self.set_interval(1.0, self._tick, name="countdown")
        self._start_probes_if_wanted()
        self.app_resume_signal.subscribe(self, self._redraw_after_resume)
        self._signal_loop = asyncio.get_running_loop()
        self._previous_handlers: dict[int, Any] = {}
        with contextlib.suppress(ValueError):  # only possible in the main thread
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def on_unmount(self) -> None:
        for sig, previous in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)

    def _on_signal(self, signum: int, _frame: object) -> None:
        """SIGTERM: quit as with ``q``. SIGHUP (the terminal is gone): clean up without
        drawing anything more. Either way a watchdog ends the process if the cleanup
        cannot finish, e.g. when Textual blocks writing to a terminal that vanished.

        A plain signal handler rather than the event loop's: it still runs when the
        main thread is blocked outside the loop.
        """
        grace = 10.0 if signum == signal.SIGTERM else 5.0
        watchdog = threading.Timer(grace, os._exit, (128 + signum,))
        watchdog.daemon = True
        watchdog.start()
        handler = self._quit_on_signal if signum == signal.SIGTERM else self._hangup
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self._signal_loop.call_soon_threadsafe(handler)

    def _quit_on_signal(self) -> None:
        self.run_worker(self.action_quit(), name="quit", exit_on_error=False)

    def _hangup(self) -> None:
        async def leave() -> None:
            await self.shutdown_session()
            self._restore_terminal()
            os._exit(129)

        self.run_worker(leave(), name="hangup", exit_on_error=False)

    def _restore_terminal(self) -> None:
        """Put the terminal back as a normal exit would: tty modes, main screen, no mouse
        reporting, cursor shown. The terminal is usually gone after a hangup, but a tmux
        pane or terminal window that survives must be usable. Blocks at most until the
        signal watchdog fires if the terminal no longer takes output."""
        driver = self._driver
        if driver is None:
            return
        with contextlib.suppress(Exception):
            driver.stop_application_mode()
        with contextlib.suppress(Exception):
            driver.close()  # waits until the writer thread has put everything out

    def _redraw_after_resume(self, _app: App[int]) -> None:
        # Back from ^Z (`fg`): the driver re-entered the alternate screen, which the
        # terminal cleared; only a full repaint brings the dashboard back.
        self.refresh(repaint=True, layout=True)

    # -- data layer → UI -----------------------------------------------------
    def _on_session_batch(self, batch: ChangeBatch, entries: list[LogEntry]) -> None:
        if batch.loading:
            # A page of the first snapshot: new keys, shown like any change, so the first
            # screen is drawn before the rest has arrived.
            pending = self._pending_changes
            for change in batch.changes:
                pending[change.key] = change
            if self.session.watcher.snapshots_loaded:  # the last page
                self._freeze_snapshot()
        elif batch.snapshot:
            self._pending_snapshot = True
            self._pending_changes.clear()
            self._freeze_snapshot()
        else:
            pending = self._pending_changes
            for change in batch.changes:
                pending[change.key] = change
        self._pending_log.extend(entries)
        if not self._dirty_posted and self._flush_timer is None:
            # One message until it is handled, not one per watch response: a message costs
            # Textual more than applying a change costs the session.
            self._dirty_posted = self.post_message(RegistryDirty())

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
        self._dirty_posted = False
        if not self.is_running:  # not while shutting down: the widgets may be gone
            return
        if self._flush_timer is not None:
            return  # a flush is due already; it takes these changes too
        busy = self._last_flush_size >= BUSY_CHANGES
        interval = BUSY_FLUSH_INTERVAL if busy else FLUSH_INTERVAL
        wait = self._last_flush + interval - time.monotonic()
        if wait <= 0:
            self._apply_pending()
        else:
            self._flush_timer = self.set_timer(wait, self._timed_flush, name="flush")

    def _timed_flush(self) -> None:
        self._flush_timer = None
        if self.is_running:
            self._apply_pending()

    def _apply_pending(self) -> None:
        # Not ``_flush``: that is Textual's App._flush(stderr), called whenever stdout or
        # stderr is flushed while the app runs (print(flush=True), logging's last resort).
        tree = self.registry_tree
        changes: dict[bytes, Change] | None = None
        with self.batch_update():
            if self._pending_snapshot:
                self._pending_snapshot = False
                self._pending_changes.clear()
                # Asked before set_state, which puts the cursor on the first row (a header).
                nothing_highlighted = tree.cursor_index < 0
                tree.set_state(self.session.state)
                if nothing_highlighted:
                    self._highlight_first()
            elif self._pending_changes:
                changes, self._pending_changes = self._pending_changes, {}
                nothing_highlighted = tree.cursor_index < 0
                tree.apply_changes(changes.values())
                if nothing_highlighted:  # the first page of a snapshot
                    self._highlight_first()
            else:
                changes = {}
            self._last_flush_size = len(changes) if changes else 0
            self._follow_inspected(changes)
            self._probe_changes(changes)
            if self._pending_log:
                entries, self._pending_log = self._pending_log, []
                self.query_one(EventLog).add(entries)
            self._flush_history()
            self.live_revision_changed()
            wanted = self._select_when_shown
            if wanted is not None and (tree.select_key(wanted) or wanted in self.session.state):
                self._select_when_shown = None  # selected, or hidden by the filter
            self._sync_marks()
            self._show_detail()
            self._update_counts()
        self._last_flush = time.monotonic()

    def _follow_inspected(self, changes: dict[bytes, Change] | None) -> None:
        """Keep an open inspect view on its key: new value, or deleted at which revision.

        ``changes`` are the changes just applied, ``None`` after a snapshot (then the
        state is compared, and a key found missing was deleted by the snapshot's revision).
        """
        state = self.session.state
        for screen in self.screen_stack:
            if not isinstance(screen, InspectScreen):
                continue
            key = screen.instance.raw_key
            change = changes.get(key) if changes is not None else None
            if change is not None and change.kind is ChangeKind.DELETE:
                screen.show_deleted(change.revision)
                continue
            inst = state.get(key)
            if inst is None:
                if changes is None and screen.deleted_at is None:
                    screen.show_deleted(state.revision, exact=False)
                continue
            screen.show_instance(
                inst,
                self.session.ttl(inst.lease),
                len(state.keys_on_lease(inst.lease)),
                self.session.is_own(key),
            )

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
        if paused != tree.paused_keys:
            tree.paused_keys = paused
        self._refresh_leader_marks()

    def _tick(self) -> None:
        self.registry_tree.tick()
        self._sync_history_marks()
        self._tick_elections()
        self._sync_marks()
        detail = self.query_one(DetailPane)
        if detail.instance is not None:
            detail.update_ttl(self.session.ttl(detail.instance.lease))
        screen = self.screen
        if isinstance(screen, InspectScreen) and screen.deleted_at is None:
            screen.update_ttl(self.session.ttl(screen.instance.lease))
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
                    f"{safe_line(group.name)}: {len(group.instances)} instance(s)"
                    f" on {len(leases)} lease(s)"
                )
            detail.show(None, service_summary=summary)
            return
        detail.show(
            inst,
            self.session.ttl(inst.lease),
            len(self.session.state.keys_on_lease(inst.lease)),
            self.session.is_own(inst.raw_key),
        )

    @on(RegistryTree.Highlighted)
    def _highlight_changed(self, _: RegistryTree.Highlighted) -> None:
        self._show_detail()

    @on(RegistryTree.Selected)
    def _selected(self, _: RegistryTree.Selected) -> None:
        self.action_inspect()

    # -- actions -------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS and self.read_only:
            return False
        if action in DASHBOARD_ACTIONS and len(self.screen_stack) > 1:
            return False  # they act on the tree, which is behind the inspect/help screen
        if action in TREE_ACTIONS and self._is_mounted and self.showing_elections:
            return False
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
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
            ("Keys", "Show every key", "help"),
        ]
        for title, help_text, action in commands:
            if self.check_action(action, ()):
                yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))
        for name in self.profiles:
            if name != self.profile:
                yield SystemCommand(
                    f"Switch to profile {safe_line(name)}",
                    "Restart the dashboard on that profile (instances registered here go)",
                    functools.partial(self.switch_profile, name),
                )

    async def switch_profile(self, name: str) -> None:
        """Leave as ``q`` does, then run_app starts again on profile ``name``."""
        self.switch_to = name
        await self.action_quit()

    def _fail(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, RegistryError):
            message = exc.user_message()
        else:
            message = f"{type(exc).__name__}: {exc}"
        self.notify(
            f"{what} failed: {safe_text(message)}", severity="error", timeout=8, markup=False
        )

    def action_register(self) -> None:
        service = self.registry_tree.highlighted_service
        default = service if service and service != UNRECOGNISED else "TestService"
        screen = RegisterScreen(
            default_name=default, default_address=f"http://localhost:{free_port()}"
        )
        self.push_screen(screen, self._register_submitted)

    def _register_submitted(self, request: RegisterRequest | None) -> None:
        if request is not None:
            self._do_register(request)

    @work(exclusive=False, group="actions", exit_on_error=False)
    async def _do_register(self, request: RegisterRequest) -> None:
        try:
            reg = await self.session.register(
                request.name, request.address, request.ttl, request.extra
            )
        except Exception as exc:
            self._fail(exc, "Register")
            return
        self.notify(
            f"Registered {safe_line(reg.key)} (lease {reg.lease_id:x}, TTL {reg.ttl}s)",
            markup=False,
        )
        self._sync_marks()
        key = reg.key.encode()
        # The watch may not have brought the new key to the tree yet: then select it
        # when it arrives.
        self._select_when_shown = None if self.registry_tree.select_key(key) else key

    def _revoke_target(self) -> tuple[set[int], str] | None:
        inst = self._highlighted()
        state = self.session.state
        if inst is not None:
            if not inst.lease:
                self.notify(
                    f"{inst.display_key} has no lease (a permanent key); use d to delete it",
                    severity="warning",
                    markup=False,
                )
                return None
            keys = state.keys_on_lease(inst.lease)
            return {inst.lease}, f"Revoke lease {inst.lease_hex}? {_keys_phrase(keys)}"
        service = self.registry_tree.highlighted_service
        group = state.groups.get(service) if service else None
        if group is None:
            self.notify(
                "Highlight an instance or a service first", severity="warning", markup=False
            )
            return None
        leases = {i.lease for i in group.instances.values() if i.lease}
        if not leases:
            self.notify(
                f"No instance of {safe_line(group.name)} has a lease",
                severity="warning",
                markup=False,
            )
            return None
        keys = set().union(*(state.keys_on_lease(lease) for lease in leases))
        return leases, (
            f"Revoke all {len(leases)} lease(s) of {safe_line(group.name)}? {_keys_phrase(keys)}"
        )

    def action_revoke(self) -> None:
        target = self._revoke_target()
        if target is None:
            return
        leases, message = target

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._do_revoke(leases)

        self.push_screen(ConfirmScreen("Revoke", message), confirmed)

    @work(exclusive=False, group="actions", exit_on_error=False)
    async def _do_revoke(self, leases: set[int]) -> None:
        try:
            gone, expired = await self.session.revoke_many(leases)
        except Exception as exc:
            self._fail(exc, "Revoke")
            return
        if expired and not gone:
            self.notify(
                "The lease had already expired; nothing to revoke", severity="warning", markup=False
            )
        elif expired:
            self.notify(
                f"Revoked: {gone} key(s) went; {expired} lease(s) had already expired", markup=False
            )
        else:
            self.notify(
                f"Revoked {len(leases)} lease(s); {gone} key(s) went with them", markup=False
            )

    def action_delete(self) -> None:
        inst = self._highlighted()
        if inst is None:
            self.notify("Highlight an instance to delete its key", severity="warning", markup=False)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._do_delete(inst.raw_key, inst.display_key)

        self.push_screen(ConfirmScreen("Delete", f"Delete key {inst.display_key}?"), confirmed)

    @work(exclusive=False, group="actions", exit_on_error=False)
    async def _do_delete(self, raw_key: bytes, key: str) -> None:
        try:
            deleted = await self.session.delete(raw_key)
        except Exception as exc:
            self._fail(exc, "Delete")
            return
        if deleted:
            self.notify(f"Deleted {safe_line(key)}", markup=False)
        else:
            self.notify(f"{safe_line(key)} was already gone", severity="warning", markup=False)

    def action_pause(self) -> None:
        inst = self._highlighted()
        if inst is None or not self.session.is_own(inst.raw_key):
            self.notify(
                "Only instances registered from this dashboard (★) can be paused",
                severity="warning",
                markup=False,
            )
            return
        try:
            paused = self.session.toggle_pause(inst.raw_key)
        except RegistryError as exc:
            self._fail(exc, "Pause")
            return
        self._sync_marks()
        self.notify(
            f"Heartbeats of {safe_line(inst.instance_id[:8])} paused: watch its lease run out"
            if paused
            else f"Heartbeats of {safe_line(inst.instance_id[:8])} resumed",
            markup=False,
        )

    def action_inspect(self) -> None:
        inst = self._highlighted()
        if inst is None:
            self.notify("Highlight an instance to inspect it", severity="warning", markup=False)
            return
        screen = InspectScreen(
            inst,
            self.session.ttl(inst.lease),
            len(self.session.state.keys_on_lease(inst.lease)),
            self.session.is_own(inst.raw_key),
            timeline=self.timeline_of(inst),
        )
        screen.probe_text = self._inspect_probe_text(inst.raw_key)
        self.push_screen(screen)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.registry_tree.set_filter("")
        self.query_one(StatusBar).set_filter("")
        self.registry_tree.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.registry_tree.set_filter(event.value)
        self.query_one(StatusBar).set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self.query_one("#filter", Input).display = False
        self.registry_tree.focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        own = len(self.session.own)
        if own:
            self.notify(f"Unregistering {own} instance(s) registered here…", markup=False)
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
                await asyncio.wait_for(hook(), 5)

    def _print_error_renderables(self) -> None:
        """An internal error: the traceback goes to a file, the terminal gets one line."""
        if not self._exit_renderables:
            return
        path = crash_log_path()
        with contextlib.suppress(OSError), path.open("a") as log:
            console = Console(file=log, width=120, color_system=None)
            for renderable in self._exit_renderables:
                console.print(renderable)
        self._exit_renderables.clear()
        print(
            f"etcd-registry-tui: error: the dashboard stopped on an internal error;"
            f" details in {path}",
            file=sys.stderr,
        )

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self._fail(event.worker.error, event.worker.name or "background task")


def _keys_phrase(keys: set[bytes]) -> str:
    count = len(keys)
    if count == 0:
        return "No key is attached to it."
    names = sorted(safe_line(k.decode("utf-8", "backslashreplace")) for k in keys)
    shown = ", ".join(names[:3]) + (f" and {count - 3} more" if count > 3 else "")
    return f"{count} key{'s' if count != 1 else ''} go with it: {shown}"


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
) -> int:
    app = RegistryApp(
        config,
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
