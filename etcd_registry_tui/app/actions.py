"""The dashboard's actions on keys and leases: register, revoke, delete, pause, inspect,
filter, help; and which of them apply right now.

A part of :class:`~etcd_registry_tui.app.RegistryApp`: :class:`Actions` acts on what the
registry view (:class:`~.flush.Flush`) highlights; the app routes its bindings here.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.widgets import Input

from ..registry.etcd.errors import RegistryError
from ..registry.model import UNRECOGNISED
from ..registry.sanitize import safe_line, safe_text
from ..registry.wording import lease_text, plural
from ..revoke_prompt import keys_on_leases, keys_phrase
from ..screens.confirm import ConfirmScreen
from ..screens.help import HelpScreen
from ..screens.inspect import InspectScreen
from ..screens.register import RegisterRequest, RegisterScreen, free_port
from ..widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from ..registry.session import RegistrySession
    from . import RegistryApp
    from .elections import Elections
    from .flush import Flush

WRITE_ACTIONS = {"register", "revoke", "delete", "pause"}
DASHBOARD_ACTIONS = WRITE_ACTIONS | {
    "inspect", "filter", "clear_filter", "toggle_elections", "history"
}  # fmt: skip
#: Registry-tree actions that make no sense while the elections view is shown.
TREE_ACTIONS = {"inspect", "filter"}


def notify_failed(app: App[Any], exc: BaseException, what: str) -> None:
    """``<what> failed: <why>`` as an error notification."""
    if isinstance(exc, RegistryError):
        message = exc.user_message()
    else:
        message = f"{type(exc).__name__}: {exc}"
    app.notify(f"{what} failed: {safe_text(message)}", severity="error", timeout=8, markup=False)


def run_action(app: App[Any], work: Coroutine[Any, Any, None], name: str) -> None:
    """Run an action's etcd work on the app (its errors reach ``on_worker_state_changed``)."""
    app.run_worker(work, name=name, group="actions", exit_on_error=False)


def allowed(action: str, read_only: bool, screens: int, showing_elections: bool) -> bool:
    """Whether ``action`` applies: writes not when read-only, the dashboard's actions not
    while a screen is above it, the tree's not while the elections view is shown."""
    if action in WRITE_ACTIONS and read_only:
        return False
    if action in DASHBOARD_ACTIONS and screens > 1:
        return False  # they act on the tree, which is behind the inspect/help screen
    return not (action in TREE_ACTIONS and showing_elections)


class Actions:
    """The keys' actions (``r x d p i / Esc ?``)."""

    def __init__(
        self, app: RegistryApp, session: RegistrySession, flush: Flush, elections: Elections
    ) -> None:
        self._app = app
        self._session = session
        self._flush = flush
        self._elections = elections

    def register(self) -> None:
        service = self._app.registry_tree.highlighted_service
        default = service if service and service != UNRECOGNISED else "TestService"
        screen = RegisterScreen(
            default_name=default, default_address=f"http://localhost:{free_port()}"
        )
        self._app.push_screen(screen, self._register_submitted)

    def _register_submitted(self, request: RegisterRequest | None) -> None:
        if request is not None:
            run_action(self._app, self._do_register(request), "_do_register")

    async def _do_register(self, request: RegisterRequest) -> None:
        app = self._app
        try:
            reg = await self._session.register(
                request.name, request.address, request.ttl, request.extra, request.layout
            )
        except Exception as exc:
            notify_failed(app, exc, "Register")
            return
        app.notify(
            f"Registered {safe_line(reg.key)} (lease {lease_text(reg.lease_id)}, TTL {reg.ttl}s)",
            markup=False,
        )
        self._flush.sync_marks()
        key = reg.key.encode()
        watched = self._session.config.watched_prefixes
        if not any(key.startswith(prefix.encode()) for prefix in watched):
            app.notify(
                f"{safe_line(reg.key)} is outside the watched prefixes"
                f" {safe_line(' '.join(watched))!r}: add its --prefix to see it",
                severity="warning",
                markup=False,
            )
            return
        # The watch may not have brought the new key to the tree yet: then the flush
        # selects it when it arrives.
        # (A key already held but hidden by the filter is not waited for.)
        shown = app.registry_tree.select_key(key) or key in self._session.state
        self._flush.select_when_shown(None if shown else key)

    def _revoke_target(self) -> tuple[set[int], str] | None:
        """The leases to revoke and the question's start (the keys are named after it)."""
        app = self._app
        inst = self._flush.highlighted()
        state = self._session.state
        if inst is not None:
            if not inst.lease:
                app.notify(
                    f"{inst.display_key} has no lease (a permanent key); use d to delete it",
                    severity="warning",
                    markup=False,
                )
                return None
            return {inst.lease}, f"Revoke lease {inst.lease_hex}?"
        service = app.registry_tree.highlighted_service
        group = state.groups.get(service) if service else None
        if group is None:
            app.notify("Highlight an instance or a service first", severity="warning", markup=False)
            return None
        leases = {i.lease for i in group.instances.values() if i.lease}
        if not leases:
            app.notify(
                f"No instance of {safe_line(group.name)} has a lease",
                severity="warning",
                markup=False,
            )
            return None
        count = len(leases)
        what = "its lease" if count == 1 else f"all {count} leases"
        return leases, f"Revoke {what} of {safe_line(group.name, 60)}?"

    def revoke(self) -> None:
        target = self._revoke_target()
        if target is not None:
            run_action(self._app, self._ask_revoke(*target), "_ask_revoke")

    async def _ask_revoke(self, leases: set[int], question: str) -> None:
        keys, exact = await keys_on_leases(self._session.conn, leases, self._elections.keys_held_on)

        def confirmed(yes: bool | None) -> None:
            if yes:
                run_action(self._app, self._do_revoke(leases), "_do_revoke")

        message = f"{question} {keys_phrase(keys, len(leases), exact)}"
        self._app.push_screen(ConfirmScreen("Revoke", message), confirmed)

    async def _do_revoke(self, leases: set[int]) -> None:
        app = self._app
        try:
            gone, expired = await self._session.revoke_many(leases)
        except Exception as exc:
            notify_failed(app, exc, "Revoke")
            return
        if expired and not gone:
            app.notify(
                "The lease had already expired; nothing to revoke", severity="warning", markup=False
            )
        else:
            app.notify(revoked_text(len(leases), gone, expired), markup=False)

    def delete(self) -> None:
        inst = self._flush.highlighted()
        if inst is None:
            self._app.notify(
                "Highlight an instance to delete its key", severity="warning", markup=False
            )
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                run_action(self._app, self._do_delete(inst.raw_key, inst.display_key), "_do_delete")

        self._app.push_screen(ConfirmScreen("Delete", f"Delete key {inst.display_key}?"), confirmed)

    async def _do_delete(self, raw_key: bytes, key: str) -> None:
        app = self._app
        try:
            deleted = await self._session.delete(raw_key)
        except Exception as exc:
            notify_failed(app, exc, "Delete")
            return
        if deleted:
            app.notify(f"Deleted {safe_line(key)}", markup=False)
        else:
            app.notify(f"{safe_line(key)} was already gone", severity="warning", markup=False)

    def pause(self) -> None:
        app = self._app
        inst = self._flush.highlighted()
        if inst is None or not self._session.is_own(inst.raw_key):
            app.notify(
                "Only instances registered from this dashboard (★) can be paused",
                severity="warning",
                markup=False,
            )
            return
        try:
            paused = self._session.toggle_pause(inst.raw_key)
        except RegistryError as exc:
            notify_failed(app, exc, "Pause")
            return
        self._flush.sync_marks()
        app.notify(
            f"Heartbeats of {safe_line(inst.instance_id[:8])} paused: watch its lease run out"
            if paused
            else f"Heartbeats of {safe_line(inst.instance_id[:8])} resumed",
            markup=False,
        )

    def inspect(self) -> None:
        inst = self._flush.highlighted()
        if inst is None:
            self._app.notify(
                "Highlight an instance to inspect it", severity="warning", markup=False
            )
            return
        screen = InspectScreen.opened(inst, self._app.inspect_source)
        self._app.push_screen(screen)

    # -- the filter -----------------------------------------------------------------
    def filter(self) -> None:
        box = self._app.query_one("#filter", Input)
        box.display = True
        box.focus()

    def filter_changed(self, value: str) -> None:
        self._app.registry_tree.set_filter(value)
        self._app.query_one(StatusBar).set_filter(value)

    def filter_submitted(self, value: str) -> None:
        if not value:
            self._app.query_one("#filter", Input).display = False
        self._app.registry_tree.focus()

    def clear_filter(self) -> None:
        app = self._app
        box = app.query_one("#filter", Input)
        box.value = ""
        box.display = False
        app.registry_tree.set_filter("")
        app.query_one(StatusBar).set_filter("")
        app.registry_tree.focus()

    def help(self) -> None:
        self._app.push_screen(HelpScreen())


def revoked_text(leases: int, gone: int, expired: int) -> str:
    """What a revoke did: how many leases, how many keys went, how many had expired."""
    if expired:
        return (
            f"Revoked: {plural(gone, 'key')} went; {plural(expired, 'lease')} had already expired"
        )
    them = "it" if leases == 1 else "them"
    return f"Revoked {plural(leases, 'lease')}; {plural(gone, 'key')} went with {them}"
