"""The history view (``h``): the registry as it was at a past revision.

←/→ step through the revisions that changed the registry, Home/End go to the oldest held
and to the live one, ``g`` (or a digit) types a revision. Live updates keep arriving on
the dashboard underneath; Esc returns to it. No writing action is offered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.events import Key
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from ..registry.etcd.errors import RegistryError, RevisionCompacted
from ..registry.history.store import EventKind, History
from ..registry.history.view import PastView
from ..registry.model import KeyValue
from ..registry.sanitize import safe_line
from ..widgets.registry_tree import RegistryTree
from ..widgets.tree_rows import no_ttl

#: Reads a value the history did not keep: (key, mod revision) -> the key-value then.
ValueReader = Callable[[bytes, int], Awaitable[KeyValue]]
#: At most this many values not held are read from etcd for one revision shown.
MAX_READS = 20


class HistoryScreen(Screen[None]):
    DEFAULT_CSS = """
    HistoryScreen #history-banner {
        height: 1; background: $warning; color: $text; text-style: bold; padding: 0 1;
    }
    HistoryScreen #history-main { height: 1fr; }
    HistoryScreen #history-tree { width: 3fr; }
    HistoryScreen #history-changes {
        width: 2fr; border-left: solid $panel; padding: 0 1; height: 1fr;
    }
    HistoryScreen #history-rev { dock: bottom; }
    """

    BINDINGS = [
        Binding("left", "step(-1)", "Back", priority=True),
        Binding("right", "step(1)", "Forward", priority=True),
        Binding("home", "oldest", "Oldest", priority=True),
        Binding("end", "newest", "Live rev", priority=True),
        Binding("g", "type_revision", "Go to rev"),
        Binding("escape", "leave", "Back to live"),
    ]

    def __init__(self, view: PastView, prefix: str, read_value: ValueReader | None = None) -> None:
        super().__init__()
        self.view = view
        self.prefix = prefix
        self.live = view.live_revision
        self.read_value = read_value
        #: Values not held that etcd could not give: (key, mod revision) -> why.
        self.unavailable: dict[tuple[bytes, int], str] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="history-banner")
        with Horizontal(id="history-main"):
            yield RegistryTree(id="history-tree", ttl_source=no_ttl)
            yield Static(id="history-changes")
        yield Input(placeholder="revision (Enter to go, Esc to cancel)", id="history-rev")
        yield Footer()

    @property
    def registry_tree(self) -> RegistryTree:
        return self.query_one("#history-tree", RegistryTree)

    def on_mount(self) -> None:
        self.query_one("#history-rev", Input).display = False
        tree = self.registry_tree
        tree.unknown_ttl_text = "on a lease"  # a past countdown is not known
        tree.border_title = "Services (past)"
        tree.set_empty_text("No instances at this revision")
        tree.set_state(self.view.state)
        tree.focus()
        self._redraw()

    # -- showing ---------------------------------------------------------------------
    def banner_text(self) -> str:
        return (
            f"viewing revision {self.view.revision:,} (live: {self.live:,}) — Esc returns to live"
        )

    def _redraw(self) -> None:
        self.query_one("#history-banner", Static).update(Text(self.banner_text()))
        changes = self.view.changes_at(self.view.revision)
        text = Text()
        text.append(f"rev {self.view.revision:,}", "bold")
        text.append(f"  ({len(self.view.state)} instances)\n", "dim")
        if not changes:
            text.append("no change of the registry at this revision\n", "dim")
        for event in changes[:200]:
            text.append(f"{event.label:<13}", "bold")
            text.append(safe_line(event.key_text.removeprefix(self.prefix)))
            if event.detail:
                text.append(f"  {safe_line(event.detail)}", "dim")
            text.append("\n")
        self._describe_missing(text)
        reach = max(self.view.oldest, 0)
        text.append(f"\nhistory held: rev {reach:,} to {self.view.live_revision:,}", "dim")
        if not self.view.complete:
            text.append(
                "\nincomplete: etcd did not confirm that every past event was read", "bold yellow"
            )
        self.query_one("#history-changes", Static).update(text)
        # What changed at this revision is marked in the tree too (what was removed at it
        # is no longer there: the side lists it).
        self.registry_tree.marked = {
            event.key: event.label.strip()
            for event in changes
            if event.kind is not EventKind.DELETE
        }
        for event in changes:
            if event.kind is not EventKind.DELETE and self.registry_tree.select_key(event.key):
                break

    def _describe_missing(self, text: Text) -> None:
        missing = self.view.missing
        if not missing:
            return
        text.append("\nvalues not held (too large), read from etcd:\n", "dim")
        for key, (revision, held) in list(missing.items())[:MAX_READS]:
            name = key.decode("utf-8", "backslashreplace").removeprefix(self.prefix)
            text.append(safe_line(name) + "\n")
            why = self.unavailable.get((key, revision), "reading…")
            text.append(f"  {safe_line(why)}\n", "yellow")
            text.append(f"  {held.describe()}\n", "dim")
        if len(missing) > MAX_READS:
            text.append(f"… and {len(missing) - MAX_READS} more\n", "dim")

    def _read_missing(self) -> None:
        """Read the values the view lacks at this revision from etcd (while not compacted)."""
        if self.read_value is None or not self.view.missing:
            return
        self.run_worker(self._read_values(), group="values", exclusive=True)

    async def _read_values(self) -> None:
        assert self.read_value is not None
        revision = self.view.revision
        for key, (mod_revision, _held) in list(self.view.missing.items())[:MAX_READS]:
            if (key, mod_revision) in self.unavailable:
                continue
            try:
                kv = await self.read_value(key, mod_revision)
            except RevisionCompacted as exc:
                self.unavailable[(key, mod_revision)] = (
                    f"compacted (etcd keeps rev {exc.compact_revision:,} on)"
                )
                continue
            except RegistryError as exc:
                self.unavailable[(key, mod_revision)] = f"not read: {exc}"
                continue
            if self.view.revision != revision:
                return
            changes = self.view.fill(key, kv)
            if not changes:
                self.unavailable[(key, mod_revision)] = "etcd's value differs from the digest"
            self.registry_tree.apply_changes(changes)
        if self.view.revision == revision:
            self._redraw()

    def set_live(self, revision: int, history: History | None = None) -> None:
        """The live registry is at ``revision`` now; with ``history``, the view can go to
        it (End, →, ``g``)."""
        if history is not None:
            self.view.extend(history, revision)
        if revision != self.live:
            self.live = revision
            self.query_one("#history-banner", Static).update(Text(self.banner_text()))

    def _go(self, target: int) -> None:
        changes = self.view.go(target)
        self.registry_tree.apply_changes(changes)
        self._redraw()
        self._read_missing()

    # -- actions ---------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        self.registry_tree.apply_changes(self.view.step(delta))
        self._redraw()
        self._read_missing()

    def action_oldest(self) -> None:
        self._go(self.view.oldest)

    def action_newest(self) -> None:
        self._go(self.view.live_revision)

    def action_type_revision(self) -> None:
        box = self.query_one("#history-rev", Input)
        box.display = True
        box.focus()

    def action_leave(self) -> None:
        box = self.query_one("#history-rev", Input)
        if box.display:
            box.value = ""
            box.display = False
            self.registry_tree.focus()
            return
        self.dismiss(None)

    def on_key(self, event: Key) -> None:
        box = self.query_one("#history-rev", Input)
        if event.character is not None and event.character.isdigit() and not box.has_focus:
            self.action_type_revision()
            box.value = event.character
            box.cursor_position = 1
            event.stop()

    @on(Input.Submitted, "#history-rev")
    def _submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#history-rev", Input)
        text = event.value.strip().replace(",", "")
        box.value = ""
        box.display = False
        self.registry_tree.focus()
        if not text.isdigit():
            return
        target = int(text)
        if target < self.view.oldest:
            self.notify(
                f"revision {target:,} is older than the history held (from {self.view.oldest:,})",
                severity="warning",
                markup=False,
            )
        elif target > self.view.live_revision:
            self.notify(
                f"revision {target:,} is after the live revision ({self.view.live_revision:,});"
                " showing the live one",
                severity="warning",
                markup=False,
            )
        self._go(target)
