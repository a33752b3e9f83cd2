"""The dashboard's actions on keys and leases: register, revoke, delete, pause, inspect,
filter, help; and which of them apply right now.

A mixin of :class:`~etcd_registry_tui.app.RegistryApp` (see :mod:`.app_host`).
"""

from __future__ import annotations

from textual import work
from textual.widgets import Input

from .app_host import AppHost
from .registry.etcd.errors import RegistryError
from .registry.model import UNRECOGNISED
from .registry.sanitize import safe_line, safe_text
from .registry.wording import lease_text, plural
from .revoke_prompt import keys_on_leases, keys_phrase
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.inspect import InspectScreen
from .screens.register import RegisterRequest, RegisterScreen, free_port
from .widgets.status_bar import StatusBar

WRITE_ACTIONS = {"register", "revoke", "delete", "pause"}
DASHBOARD_ACTIONS = WRITE_ACTIONS | {
    "inspect", "filter", "clear_filter", "toggle_elections", "history"
}  # fmt: skip
#: Registry-tree actions that make no sense while the elections view is shown.
TREE_ACTIONS = {"inspect", "filter"}


class ActionsMixin(AppHost):
    """The keys' actions (``r x d p i / Esc ?``)."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in WRITE_ACTIONS and self.read_only:
            return False
        if action in DASHBOARD_ACTIONS and len(self.screen_stack) > 1:
            return False  # they act on the tree, which is behind the inspect/help screen
        # self._is_mounted: Textual's private flag (tests/unit/test_private_apis.py checks it)
        if action in TREE_ACTIONS and self._is_mounted and self.showing_elections:
            return False
        return True

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
            f"Registered {safe_line(reg.key)} (lease {lease_text(reg.lease_id)}, TTL {reg.ttl}s)",
            markup=False,
        )
        self._sync_marks()
        key = reg.key.encode()
        # The watch may not have brought the new key to the tree yet: then select it
        # when it arrives.
        # (A key already held but hidden by the filter is not waited for.)
        shown = self.registry_tree.select_key(key) or key in self.session.state
        self.pending.select_when_shown(None if shown else key)

    def _revoke_target(self) -> tuple[set[int], str] | None:
        """The leases to revoke and the question's start (the keys are named after it)."""
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
            return {inst.lease}, f"Revoke lease {inst.lease_hex}?"
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
        count = len(leases)
        what = "its lease" if count == 1 else f"all {count} leases"
        return leases, f"Revoke {what} of {safe_line(group.name, 60)}?"

    def action_revoke(self) -> None:
        target = self._revoke_target()
        if target is not None:
            self._ask_revoke(*target)

    @work(exclusive=False, group="actions", exit_on_error=False)
    async def _ask_revoke(self, leases: set[int], question: str) -> None:
        keys, exact = await keys_on_leases(self.session.conn, leases, self._keys_held_on)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._do_revoke(leases)

        message = f"{question} {keys_phrase(keys, len(leases), exact)}"
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
        else:
            self.notify(revoked_text(len(leases), gone, expired), markup=False)

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
        screen = InspectScreen.opened(inst, self.inspect_source)
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

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def revoked_text(leases: int, gone: int, expired: int) -> str:
    """What a revoke did: how many leases, how many keys went, how many had expired."""
    if expired:
        return (
            f"Revoked: {plural(gone, 'key')} went; {plural(expired, 'lease')} had already expired"
        )
    them = "it" if leases == 1 else "them"
    return f"Revoked {plural(leases, 'lease')}; {plural(gone, 'key')} went with {them}"
