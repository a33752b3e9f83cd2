"""A virtualised services → instances tree built on Textual's Line API.

The stock ``Tree`` rebuilds every line on each change and ``DataTable`` repaints the
whole viewport on any cell update; neither copes with a registry of 10,000+ keys that
changes all the time. :class:`RegistryTree` holds a :class:`~.tree_model.TreeModel`, which keeps:

* one *block* per group (service): its instances sorted by id, plus the block's visible
  rows (header + instances that pass the filter, or just the header when collapsed);
* a flat list of rows, re-concatenated from the blocks once per batch of changes (a list
  concatenation of references: well under a millisecond at 10,000 rows).

A row is either a ``str`` (a service header, the group name) or an :class:`Instance`.
Only the static part of a row is cached (as segments); the lease countdown and the
"(N expiring)" count are worked out in :meth:`RegistryTree.render_line`, so a one-second
tick only repaints the visible lines.

The tree is four files: :mod:`.tree_rows` (rows, their order, the blocks: no Textual),
:mod:`.tree_model` (what the tree holds and shows: state, changes, filter, collapsing; no
Textual), :mod:`.tree_render` (drawing the lines, with its caches), and this one (the
widget: it holds the model and does the layout, cursor, keys, mouse). Each change to the
model returns a :class:`~.tree_model.TreeChange`; the widget moves the cursor and redraws
from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView

from etcd_registry_tui.registry.model import Change, RegistryState
from etcd_registry_tui.widgets.tree_model import TreeChange, TreeModel
from etcd_registry_tui.widgets.tree_render import COUNTDOWN_WIDTH, TreeRendering
from etcd_registry_tui.widgets.tree_rows import TtlSource, no_ttl, row_group, row_key

__all__ = ["COUNTDOWN_WIDTH", "RegistryTree", "TtlSource"]


class RegistryTree(TreeRendering, ScrollView, can_focus=True):
    """Services and their instances, one line each, rendered line by line.

    Args:
        ttl_source: ``lease_id -> (remaining seconds | None, granted TTL | None)``,
            asked at render time for the countdown column.
        own_keys: keys registered by this process (marked ``★``).
        paused_keys: own keys whose keep-alive is paused (marked "paused").
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("home", "cursor_home", "First", show=False),
        Binding("end", "cursor_end", "Last", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("left", "cursor_parent", "Collapse", show=False),
        Binding("right", "expand", "Expand", show=False),
        Binding("enter", "select", "Select", show=False),
        Binding("space", "toggle_service", "Toggle", show=False),
    ]

    COMPONENT_CLASSES = {
        "registry-tree--service",
        "registry-tree--instance",
        "registry-tree--healthy",
        "registry-tree--warning",
        "registry-tree--critical",
        "registry-tree--nolease",
        "registry-tree--problem",
        "registry-tree--unrecognised",
        "registry-tree--cursor",
        "registry-tree--own",
        "registry-tree--paused",
    }

    DEFAULT_CSS = """
    RegistryTree {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;

        & > .registry-tree--service { text-style: bold; }
        & > .registry-tree--instance { }
        & > .registry-tree--healthy { color: $success; }
        & > .registry-tree--warning { color: $warning; }
        & > .registry-tree--critical { color: $error; text-style: bold; }
        & > .registry-tree--nolease { color: $text-muted; text-style: dim; }
        & > .registry-tree--problem { color: $warning; }
        & > .registry-tree--unrecognised { color: $warning; text-style: bold italic; }
        & > .registry-tree--own { color: $accent; text-style: bold; }
        & > .registry-tree--paused { color: $warning; text-style: italic; }
        & > .registry-tree--cursor {
            background: $block-cursor-blurred-background;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .registry-tree--cursor {
                background: $block-cursor-background;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    class Highlighted(Message):
        """The highlighted row changed (an instance row sets ``raw_key``, a header ``service``)."""

        def __init__(
            self, registry_tree: RegistryTree, raw_key: bytes | None, service: str | None
        ) -> None:
            super().__init__()
            self.registry_tree = registry_tree
            self.raw_key = raw_key
            self.service = service

        @property
        def control(self) -> RegistryTree:
            return self.registry_tree

    class Selected(Message):
        """Enter (or a double click) on an instance row."""

        def __init__(self, registry_tree: RegistryTree, raw_key: bytes) -> None:
            super().__init__()
            self.registry_tree = registry_tree
            self.raw_key = raw_key

        @property
        def control(self) -> RegistryTree:
            return self.registry_tree

    def __init__(
        self,
        *,
        ttl_source: TtlSource | None = None,
        own_keys: Iterable[bytes] = (),
        paused_keys: Iterable[bytes] = (),
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        #: What the tree holds: groups, rows, filter, collapsed services (no Textual).
        self.model = TreeModel()
        self.ttl_source: TtlSource = ttl_source or no_ttl
        #: What a lease whose countdown is not known yet reads as.
        self.unknown_ttl_text = "lease ?"
        #: Shown when there is nothing to list (set by the app: connecting, empty, ...).
        self.empty_text = ""
        self._own_keys: set[bytes] = set(own_keys)
        self._paused_keys: set[bytes] = set(paused_keys)
        self._leader_keys: set[bytes] = set()
        self._marked: dict[bytes, str] = {}
        self._flapping: dict[bytes, int] = {}
        self._probe_marks: dict[bytes, tuple[str, str]] = {}
        self._cursor = -1
        self._posted: tuple[bytes | None, str | None] | None = None

    # -- public queries ------------------------------------------------------
    @property
    def row_count(self) -> int:
        return self.model.row_count

    @property
    def cursor_index(self) -> int:
        """Index of the highlighted row, -1 when there are no rows."""
        return self._cursor

    @property
    def filter_text(self) -> str:
        return self.model.filter_text

    @property
    def highlighted_instance(self) -> bytes | None:
        row = self.model.row_at(self._cursor)
        return None if row is None or row.__class__ is str else row.raw_key  # type: ignore[union-attr]

    @property
    def highlighted_service(self) -> str | None:
        row = self.model.row_at(self._cursor)
        return None if row is None else row_group(row)

    def is_collapsed(self, service: str) -> bool:
        return self.model.is_collapsed(service)

    @property
    def own_keys(self) -> set[bytes]:
        return self._own_keys

    @own_keys.setter
    def own_keys(self, keys: Iterable[bytes]) -> None:
        self._own_keys = set(keys)
        self.refresh()

    @property
    def paused_keys(self) -> set[bytes]:
        return self._paused_keys

    @paused_keys.setter
    def paused_keys(self, keys: Iterable[bytes]) -> None:
        self._paused_keys = set(keys)
        self.refresh()

    @property
    def leader_keys(self) -> set[bytes]:
        """Instances leading their service's election (marked "♛ leader")."""
        return self._leader_keys

    @leader_keys.setter
    def leader_keys(self, keys: Iterable[bytes]) -> None:
        self._leader_keys = set(keys)
        self.refresh()

    @property
    def marked(self) -> dict[bytes, str]:
        """Instances marked with a word (the history view: what changed at its revision)."""
        return self._marked

    @marked.setter
    def marked(self, marks: dict[bytes, str]) -> None:
        if marks != self._marked:
            self._marked = dict(marks)
            self.refresh()

    @property
    def flapping(self) -> dict[bytes, int]:
        """Flapping instances (registered again and again) -> how often (marked)."""
        return self._flapping

    @flapping.setter
    def flapping(self, keys: dict[bytes, int]) -> None:
        self._flapping = dict(keys)
        self.refresh()

    @property
    def probe_marks(self) -> Mapping[bytes, tuple[str, str]]:
        """Probe results (key -> (text, "up"/"down"/"unknown")); a new mapping on each change."""
        return self._probe_marks

    def set_probe_marks(self, marks: Mapping[bytes, tuple[str, str]]) -> None:
        """Probe results to show: ``✓ 12 ms`` after the address; services count the ``✗``."""
        marks = dict(marks)
        if marks == self._probe_marks:
            return
        self._probe_marks = marks
        self.refresh()

    def empty_message(self) -> str:
        """What an empty tree says: the filter's doing when it hides every instance."""
        model = self.model
        if model.filter_text and model.groups:
            return f"No instance matches '{model.filter_text}' — press Esc to clear the filter"
        return self.empty_text

    # -- following the registry and the viewer ---------------------------------
    def set_state(self, state: RegistryState) -> None:
        """Show everything in ``state`` (a :class:`RegistryState`), replacing what was shown.

        The cursor stays on the same key, or the nearest row when it is gone.
        """
        change = self.model.set_state(state)
        self._forget_counts(change.counts)
        self._relayout(change)

    def apply_changes(self, changes: Iterable[Change]) -> None:
        """Apply a batch of changes (as returned by the model) in one go.

        A new value of a key that keeps its row is swapped in place: only that row and its
        service's header are redrawn, and only if they are on screen. Anything else lays
        out the groups it touched again.
        """
        change = self.model.apply_changes(changes)
        self._forget_counts(change.counts)
        if change.redraw:
            top = round(self.scroll_y)
            bottom = top + self.scrollable_content_region.height
            for line in change.redraw:
                if top <= line < bottom:
                    self.refresh_lines(line)
        if change.relaid:
            self._relayout(change)

    def set_filter(self, text: str) -> None:
        """Show only instances whose service name, id or address contains ``text``.

        Case-insensitive; a service whose name matches shows all its instances; an empty
        text shows everything.
        """
        change = self.model.set_filter(text)
        if change.relaid:
            self._relayout(change)

    def toggle_service(self, service: str) -> None:
        if self.model.is_collapsed(service):
            self.expand_service(service)
        else:
            self.collapse_service(service)

    def collapse_service(self, service: str) -> None:
        model = self.model
        row = model.row_at(self._cursor)
        offset = model.offset(service)
        change = model.collapse(service)
        if not change.relaid:
            return
        if row is not None and row.__class__ is not str and row.group == service:  # type: ignore[union-attr]
            # The cursor's row is gone: keep it on the service.
            self._cursor = offset if offset is not None else self._cursor
        self._relayout(change)

    def expand_service(self, service: str) -> None:
        change = self.model.expand(service)
        if change.relaid:
            self._relayout(change)

    def select_key(self, raw_key: bytes) -> bool:
        """Move the cursor to the row of ``raw_key``; False when it is not shown."""
        index = self.model.index_of(raw_key)
        if index < 0:
            return False
        self._move_cursor(index)
        return True

    def set_empty_text(self, text: str) -> None:
        if text != self.empty_text:
            self.empty_text = text
            if not self.model.row_count:
                self.refresh()

    # -- layout --------------------------------------------------------------
    def _relayout(self, change: TreeChange) -> None:
        """After the rows were laid out again: keep cursor and view on the same rows, and
        redraw what moved on screen."""
        old_rows = change.previous
        old_cursor = self._cursor
        cursor_row = old_rows[old_cursor] if 0 <= old_cursor < len(old_rows) else None
        scroll_y = round(self.scroll_y)
        height = self.scrollable_content_region.height
        cursor_visible = scroll_y <= old_cursor < scroll_y + height
        anchor_key = row_key(old_rows[scroll_y]) if 0 < scroll_y < len(old_rows) else None

        model = self.model
        rows = model.rows
        if cursor_row is not None:
            self._cursor = model.nearest(row_key(cursor_row))
        else:
            self._cursor = 0 if rows else -1

        width = self.scrollable_content_region.width
        self.virtual_size = Size(width, len(rows))
        new_scroll = scroll_y
        if anchor_key is not None:
            new_scroll = model.position(anchor_key)
            if new_scroll != scroll_y:
                self.scroll_to(y=new_scroll, animate=False, immediate=True)
                new_scroll = round(self.scroll_y)
        if cursor_visible and self.is_mounted:
            self._scroll_to_cursor()
            new_scroll = round(self.scroll_y)

        if new_scroll != scroll_y or change.groups is None:
            self.refresh()
        else:
            first = change.first
            end = scroll_y + height
            if first < end:
                start = max(first, scroll_y)
                self.refresh_lines(start, end - start)
            if self._cursor != old_cursor:
                for line in (old_cursor, self._cursor):
                    if scroll_y <= line < end and line < first:
                        self.refresh_lines(line)
        self._post_highlight()

    def _post_highlight(self) -> None:
        row = self.model.row_at(self._cursor)
        if row is None:
            current: tuple[bytes | None, str | None] | None = None
        elif row.__class__ is str:
            current = (None, row)
        else:
            current = (row.raw_key, row.group)  # type: ignore[union-attr]
        if current != self._posted:
            self._posted = current
            raw_key, service = current if current is not None else (None, None)
            self.post_message(
                self.Highlighted(self, raw_key, None if raw_key is not None else service)
            )

    # -- cursor --------------------------------------------------------------
    def _move_cursor(self, index: int) -> None:
        rows = self.model.rows
        if not rows:
            return
        index = max(0, min(index, len(rows) - 1))
        old = self._cursor
        if index != old:
            self._cursor = index
            self.refresh_lines(old)
            self.refresh_lines(index)
        self._scroll_to_cursor()
        self._post_highlight()

    def _scroll_to_cursor(self) -> None:
        if self._cursor >= 0:
            self.scroll_to_region(
                Region(0, self._cursor, 1, 1),
                animate=False,
                force=True,
                x_axis=False,
                immediate=True,
            )

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        self._move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self._cursor + 1)

    def action_cursor_home(self) -> None:
        self._move_cursor(0)

    def action_cursor_end(self) -> None:
        self._move_cursor(self.model.row_count - 1)

    def action_page_up(self) -> None:
        self._move_cursor(self._cursor - self._page())

    def action_page_down(self) -> None:
        self._move_cursor(self._cursor + self._page())

    def action_cursor_parent(self) -> None:
        """Left: from an instance go to its service; on a service, collapse it."""
        row = self.model.row_at(self._cursor)
        if row is None:
            return
        if row.__class__ is str:
            self.collapse_service(row)
        else:
            offset = self.model.offset(row.group)  # type: ignore[union-attr]
            self._move_cursor(self._cursor if offset is None else offset)

    def action_expand(self) -> None:
        row = self.model.row_at(self._cursor)
        if row is not None and row.__class__ is str:
            self.expand_service(row)

    def action_toggle_service(self) -> None:
        row = self.model.row_at(self._cursor)
        if row is not None:
            self.toggle_service(row_group(row))

    def action_select(self) -> None:
        row = self.model.row_at(self._cursor)
        if row is None:
            return
        if row.__class__ is str:
            self.toggle_service(row)
        else:
            self.post_message(self.Selected(self, row.raw_key))  # type: ignore[union-attr]

    # Overrides Textual's private Widget._on_click (tests/unit/test_private_apis.py checks it).
    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = round(self.scroll_y) + offset.y
        row = self.model.row_at(index)
        if row is None:
            return
        event.stop()
        self._move_cursor(index)
        if row.__class__ is str:
            self.toggle_service(row)
        elif event.chain >= 2:
            self.post_message(self.Selected(self, row.raw_key))  # type: ignore[union-attr]

    def _on_resize(self, event: events.Resize) -> None:
        self._fit_caches(event.size.height)
        self.virtual_size = Size(self.scrollable_content_region.width, self.model.row_count)
        self.refresh()
