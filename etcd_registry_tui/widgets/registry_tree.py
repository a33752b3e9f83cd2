"""A virtualised services → instances tree built on Textual's Line API.

The stock ``Tree`` rebuilds every line on each change and ``DataTable`` repaints the
whole viewport on any cell update; neither copes with a registry of 10,000+ keys that
changes all the time. :class:`RegistryTree` keeps:

* one *block* per group (service): its instances sorted by id, plus the block's visible
  rows (header + instances that pass the filter, or just the header when collapsed);
* a flat list of rows, re-concatenated from the blocks once per batch of changes (a list
  concatenation of references: well under a millisecond at 10,000 rows).

A row is either a ``str`` (a service header, the group name) or an :class:`Instance`.
Only the static part of a row is cached (as segments); the lease countdown and the
"(N expiring)" count are worked out in :meth:`RegistryTree.render_line`, so a one-second
tick only repaints the visible lines.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from etcd_registry_tui.registry.model import (
    UNRECOGNISED,
    Change,
    ChangeKind,
    Instance,
    RegistryState,
)
from etcd_registry_tui.registry.sanitize import safe_line
from etcd_registry_tui.widgets.ttl_text import format_remaining, lease_level

__all__ = ["RegistryTree", "TtlSource"]

#: ``ttl_source(lease_id) -> (remaining seconds or None, granted TTL or None)``.
TtlSource = Callable[[int], tuple[float | None, int | None]]

Row = str | Instance
"""A row: the group name for a service header, or the instance itself."""

_SortKey = tuple[bool, str, int, str, bytes]

#: Cells reserved on the right of each row for the lease countdown.
COUNTDOWN_WIDTH = 24


def _no_ttl(lease: int) -> tuple[float | None, int | None]:
    return None, None


def _clean(text: str) -> str:
    """Text safe to put in a single segment: controls, C1 and bidi characters escaped."""
    return safe_line(text)


@lru_cache(maxsize=4096)
def _whole_seconds_text(seconds: int) -> str:
    """:func:`format_remaining` of a whole number of seconds, worked out once per number."""
    return format_remaining(seconds)


def _remaining_text(remaining: float) -> str:
    # format_remaining rounds up to whole seconds; so does this, then asks the cache.
    return _whole_seconds_text(math.ceil(remaining))


@lru_cache(maxsize=8192)
def _group_key(name: str) -> tuple[bool, str]:
    return (name == UNRECOGNISED, name)


def _inst_key(inst: Instance) -> tuple[str, bytes]:
    return (inst.instance_id, inst.raw_key)


def _row_group(row: Row) -> str:
    return row if row.__class__ is str else row.group  # type: ignore[union-attr,return-value]


def _row_key(row: Row) -> _SortKey:
    """The row's position in the tree: groups (unrecognised last), header, instances by id."""
    if row.__class__ is str:
        return (row == UNRECOGNISED, row, 0, "", b"")  # type: ignore[return-value]
    group = row.group  # type: ignore[union-attr]
    return (group == UNRECOGNISED, group, 1, row.instance_id, row.raw_key)  # type: ignore[union-attr]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _short_reason(inst: Instance) -> str:
    reasons = [p.split(": ", 1)[0] for p in inst.problems]
    return "; ".join(reasons)


class _Block:
    """One group: its instances sorted by id and the rows it currently shows."""

    __slots__ = ("name", "instances", "rows", "problems", "leases")

    def __init__(self, name: str, instances: list[Instance] | None = None) -> None:
        self.name = name
        self.instances: list[Instance] = instances if instances is not None else []
        self.rows: list[Row] = []
        self.problems = sum(1 for inst in self.instances if inst.has_problem)
        self.leases: Counter[int] = Counter(inst.lease for inst in self.instances)

    def find(self, inst: Instance) -> int:
        """Index of the instance with this key, or -1."""
        instances = self.instances
        index = bisect_left(instances, _inst_key(inst), key=_inst_key)
        if index < len(instances) and instances[index].raw_key == inst.raw_key:
            return index
        return -1

    def insert(self, inst: Instance) -> None:
        instances = self.instances
        index = bisect_left(instances, _inst_key(inst), key=_inst_key)
        instances.insert(index, inst)
        self._count(inst, 1)

    def remove(self, inst: Instance) -> bool:
        index = self.find(inst)
        if index < 0:
            return False
        del self.instances[index]
        self._count(inst, -1)
        return True

    def replace(self, old: Instance, new: Instance) -> bool:
        index = self.find(old)
        if index < 0:
            return False
        self.instances[index] = new
        self._count(old, -1)
        self._count(new, 1)
        return True

    def _count(self, inst: Instance, delta: int) -> None:
        if inst.has_problem:
            self.problems += delta
        leases = self.leases
        count = leases[inst.lease] + delta
        if count > 0:
            leases[inst.lease] = count
        else:
            leases.pop(inst.lease, None)


class RegistryTree(ScrollView, can_focus=True):
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
        self.ttl_source: TtlSource = ttl_source or _no_ttl
        #: Shown when there is nothing to list (set by the app: connecting, empty, ...).
        self.empty_text = ""
        self._own_keys: set[bytes] = set(own_keys)
        self._paused_keys: set[bytes] = set(paused_keys)
        self._leader_keys: set[bytes] = set()
        self._flapping: dict[bytes, int] = {}
        #: Probe marks (key -> (text, "up"/"down"/"unknown")) and unreachable per service.
        self._probe_marks: dict[bytes, tuple[str, str]] = {}
        self._probe_down: dict[str, int] = {}
        self._filter = ""
        self._collapsed: set[str] = set()
        self._blocks: dict[str, _Block] = {}
        self._order: list[str] = []  # group names in display order
        self._where: dict[bytes, Instance] = {}  # raw_key -> the instance held
        self._rows: list[Row] = []
        self._offsets: dict[str, int] = {}
        self._cursor = -1
        self._posted: tuple[bytes | None, str | None] | None = None
        self._expiring: dict[str, int] = {}
        self._line_cache: LRUCache[tuple[object, ...], list[Segment]] = LRUCache(1024)
        self._countdown_cache: dict[tuple[object, ...], list[Segment]] = {}
        self._styles: dict[tuple[str, ...], Style] = {}
        self._pseudo_state: object = None

    # -- public queries ------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def cursor_index(self) -> int:
        """Index of the highlighted row, -1 when there are no rows."""
        return self._cursor

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def highlighted_instance(self) -> bytes | None:
        row = self._cursor_row()
        return None if row is None or row.__class__ is str else row.raw_key  # type: ignore[union-attr]

    @property
    def highlighted_service(self) -> str | None:
        row = self._cursor_row()
        return None if row is None else _row_group(row)

    def is_collapsed(self, service: str) -> bool:
        return service in self._collapsed

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
    def flapping(self) -> dict[bytes, int]:
        """Flapping instances (registered again and again) -> how often (marked)."""
        return self._flapping

    @flapping.setter
    def flapping(self, keys: dict[bytes, int]) -> None:
        self._flapping = dict(keys)
        self.refresh()

    def _flapping_in(self, name: str) -> int:
        where = self._where
        return sum(1 for key in self._flapping if (i := where.get(key)) and i.group == name)

    def set_probe_marks(self, marks: Mapping[bytes, tuple[str, str]]) -> None:
        """Probe results to show: ``✓ 12 ms`` after the address; services count the ``✗``."""
        marks = dict(marks)
        if marks == self._probe_marks:
            return
        self._probe_marks = marks
        self._probe_down = {}
        self.refresh()

    def _down_count(self, block: _Block) -> int:
        count = self._probe_down.get(block.name)
        if count is None:
            marks = self._probe_marks
            count = 0
            if marks:
                for inst in block.instances:
                    mark = marks.get(inst.raw_key)
                    if mark is not None and mark[1] == "down":
                        count += 1
            self._probe_down[block.name] = count
        return count

    # -- updates -------------------------------------------------------------
    def set_state(self, state: RegistryState) -> None:
        """Show everything in ``state`` (a :class:`RegistryState`), replacing what was shown.

        The cursor stays on the same key, or the nearest row when it is gone.
        """
        blocks: dict[str, _Block] = {}
        order: list[str] = []
        where: dict[bytes, Instance] = {}
        for service in state.sorted_groups():
            instances = service.sorted_instances()
            if not instances:
                continue
            block = blocks[service.name] = _Block(service.name, instances)
            order.append(service.name)
            where.update((inst.raw_key, inst) for inst in instances)
            block.rows = self._block_rows(block)
        self._blocks, self._order, self._where = blocks, order, where
        self._collapsed &= set(blocks)
        self._expiring.clear()
        self._line_cache.clear()
        self._relayout(None)

    def apply_changes(self, changes: Iterable[Change]) -> None:
        """Apply a batch of changes (as returned by the model) in one go.

        A new value of a key that keeps its row (same service, same visibility under the
        filter) is swapped in place: only that row and its service's header are redrawn,
        and only if they are on screen. Anything else rebuilds the groups it touched.
        """
        dirty: set[str] = set()
        swapped: dict[bytes, tuple[Instance, Instance]] = {}
        where = self._where
        for change in changes:
            inst = change.instance
            held = where.get(inst.raw_key)
            if change.kind is ChangeKind.DELETE:
                if held is not None:
                    del where[inst.raw_key]
                    self._block_remove(held, dirty)
                continue
            where[inst.raw_key] = inst
            if held is not None:
                if held.group == inst.group:
                    block = self._blocks[inst.group]
                    if block.replace(held, inst):
                        if self._keeps_row(held, inst):
                            first = swapped.pop(inst.raw_key, (held, inst))[0]
                            swapped[inst.raw_key] = (first, inst)
                        else:
                            dirty.add(inst.group)
                        continue
                self._block_remove(held, dirty)
            self._block_insert(inst, dirty)
        if swapped:
            self._swap_rows([pair for pair in swapped.values() if pair[1].group not in dirty])
        if not dirty:
            return
        for name in dirty:
            self._expiring.pop(name, None)
            shown = self._blocks.get(name)
            if shown is not None:
                shown.rows = self._block_rows(shown)
        self._relayout(dirty)

    def _keeps_row(self, old: Instance, new: Instance) -> bool:
        """Whether ``new`` is shown exactly where ``old`` was (or hidden as it was)."""
        text = self._filter
        if not text or text in old.group.lower():
            return True
        return self._matches(old, text) == self._matches(new, text)

    def _swap_rows(self, pairs: list[tuple[Instance, Instance]]) -> None:
        """Put new instances in their predecessors' rows; redraw those on screen."""
        if not pairs:
            return
        rows, offsets, blocks = self._rows, self._offsets, self._blocks
        top = round(self.scroll_y)
        bottom = top + self.scrollable_content_region.height
        redraw: set[int] = set()
        for old, new in pairs:
            name = new.group
            self._expiring.pop(name, None)  # the lease may have changed
            offset = offsets.get(name)
            if offset is None:
                continue  # the service is hidden by the filter
            if top <= offset < bottom:
                redraw.add(offset)  # its header: problem and expiring counts
            block = blocks[name]
            index = bisect_left(block.rows, _row_key(old), key=_row_key)
            if index < len(block.rows) and block.rows[index] is old:
                block.rows[index] = new
                line = offset + index
                rows[line] = new
                if top <= line < bottom:
                    redraw.add(line)
        for line in sorted(redraw):
            self.refresh_lines(line)

    def set_filter(self, text: str) -> None:
        """Show only instances whose service name, id or address contains ``text``.

        Case-insensitive; a service whose name matches shows all its instances; an empty
        text shows everything.
        """
        text = text.strip().lower()
        if text == self._filter:
            return
        self._filter = text
        for block in self._blocks.values():
            block.rows = self._block_rows(block)
        self._relayout(None)

    def toggle_service(self, service: str) -> None:
        if service in self._collapsed:
            self.expand_service(service)
        else:
            self.collapse_service(service)

    def collapse_service(self, service: str) -> None:
        block = self._blocks.get(service)
        if block is None or service in self._collapsed:
            return
        self._collapsed.add(service)
        row = self._cursor_row()
        if row is not None and row.__class__ is not str and row.group == service:  # type: ignore[union-attr]
            # The cursor's row is about to disappear: keep it on the service.
            self._cursor = self._offsets.get(service, self._cursor)
        block.rows = self._block_rows(block)
        self._relayout({service})

    def expand_service(self, service: str) -> None:
        block = self._blocks.get(service)
        if block is None or service not in self._collapsed:
            return
        self._collapsed.discard(service)
        block.rows = self._block_rows(block)
        self._relayout({service})

    def select_key(self, raw_key: bytes) -> bool:
        """Move the cursor to the row of ``raw_key``; False when it is not shown."""
        inst = self._where.get(raw_key)
        if inst is None:
            return False
        rows = self._rows
        index = bisect_left(rows, _row_key(inst), key=_row_key)
        if index < len(rows) and rows[index] is inst:
            self._move_cursor(index)
            return True
        return False

    def _empty_message(self) -> str:
        """What an empty tree says: the filter's doing when it hides every instance."""
        if self._filter and self._blocks:
            return f"No instance matches '{self._filter}' — press Esc to clear the filter"
        return self.empty_text

    def set_empty_text(self, text: str) -> None:
        if text != self.empty_text:
            self.empty_text = text
            if not self._rows:
                self.refresh()

    def tick(self) -> None:
        """Once a second: recount "expiring" and repaint the visible lines' countdowns."""
        self._expiring.clear()
        if self._rows:
            self.refresh()

    # -- block maintenance ---------------------------------------------------
    def _block_insert(self, inst: Instance, dirty: set[str]) -> None:
        name = inst.group
        block = self._blocks.get(name)
        if block is None:
            block = self._blocks[name] = _Block(name)
            order = self._order
            order.insert(bisect_left(order, _group_key(name), key=_group_key), name)
        block.insert(inst)
        dirty.add(name)

    def _block_remove(self, inst: Instance, dirty: set[str]) -> None:
        name = inst.group
        block = self._blocks.get(name)
        if block is None or not block.remove(inst):
            return
        dirty.add(name)
        if not block.instances:
            del self._blocks[name]
            order = self._order
            index = bisect_left(order, _group_key(name), key=_group_key)
            if index < len(order) and order[index] == name:
                del order[index]
            self._collapsed.discard(name)

    def _block_rows(self, block: _Block) -> list[Row]:
        name = block.name
        text = self._filter
        if not text or text in name.lower():
            shown = block.instances
        else:
            shown = [inst for inst in block.instances if self._matches(inst, text)]
            if not shown:
                return []
        if name in self._collapsed:
            return [name]
        rows: list[Row] = [name]
        rows.extend(shown)
        return rows

    @staticmethod
    def _matches(inst: Instance, text: str) -> bool:
        if text in inst.instance_id.lower():
            return True
        if inst.address is not None and text in inst.address.lower():
            return True
        return inst.key_error is not None and text in inst.key.lower()

    def _shown_count(self, block: _Block) -> int:
        text = self._filter
        if not text or text in block.name.lower():
            return len(block.instances)
        if block.name not in self._collapsed:
            return len(block.rows) - 1
        return sum(1 for inst in block.instances if self._matches(inst, text))

    # -- layout --------------------------------------------------------------
    def _cursor_row(self) -> Row | None:
        rows = self._rows
        return rows[self._cursor] if 0 <= self._cursor < len(rows) else None

    def _locate(self, key: _SortKey) -> int:
        """The row at ``key``, or the nearest one (same service first)."""
        rows = self._rows
        if not rows:
            return -1
        index = bisect_left(rows, key, key=_row_key)
        if index < len(rows) and _row_key(rows[index]) == key:
            return index
        group = key[1]
        following = index if index < len(rows) else None
        preceding = index - 1 if index > 0 else None
        if following is not None and _row_group(rows[following]) == group:
            return following
        if preceding is not None and _row_group(rows[preceding]) == group:
            return preceding
        return following if following is not None else preceding  # type: ignore[return-value]

    def _relayout(self, dirty: set[str] | None) -> None:
        """Rebuild the flat row list; keep cursor and view on the same rows.

        ``dirty`` names the groups whose rows changed (``None``: anything may have).
        """
        old_rows = self._rows
        cursor_row = self._cursor_row()
        cursor_key = _row_key(cursor_row) if cursor_row is not None else None
        scroll_y = round(self.scroll_y)
        height = self.scrollable_content_region.height
        cursor_visible = scroll_y <= self._cursor < scroll_y + height
        anchor_key = _row_key(old_rows[scroll_y]) if 0 < scroll_y < len(old_rows) else None

        rows: list[Row] = []
        offsets: dict[str, int] = {}
        extend = rows.extend
        blocks = self._blocks
        for name in self._order:
            block_rows = blocks[name].rows
            if block_rows:
                offsets[name] = len(rows)
                extend(block_rows)
        self._rows, self._offsets = rows, offsets

        old_cursor = self._cursor
        if cursor_key is not None:
            self._cursor = self._locate(cursor_key)
        else:
            self._cursor = 0 if rows else -1

        width = self.scrollable_content_region.width
        self.virtual_size = Size(width, len(rows))
        new_scroll = scroll_y
        if anchor_key is not None:
            new_scroll = bisect_left(rows, anchor_key, key=_row_key)
            if new_scroll != scroll_y:
                self.scroll_to(y=new_scroll, animate=False, immediate=True)
                new_scroll = round(self.scroll_y)
        if cursor_visible and self.is_mounted:
            self._scroll_to_cursor()
            new_scroll = round(self.scroll_y)

        if new_scroll != scroll_y or dirty is None:
            self.refresh()
        else:
            first = len(rows)
            for name in dirty:
                offset = offsets.get(name)
                if offset is None:
                    # Gone or hidden: it was where the next shown group now starts.
                    index = bisect_left(self._order, _group_key(name), key=_group_key)
                    offset = next(
                        (offsets[n] for n in self._order[index:] if n in offsets), len(rows)
                    )
                first = min(first, offset)
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
        row = self._cursor_row()
        if row is None:
            current: tuple[bytes | None, str | None] | None = None
        elif row.__class__ is str:
            current = (None, row)  # type: ignore[assignment]
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
        rows = self._rows
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
        self._move_cursor(len(self._rows) - 1)

    def action_page_up(self) -> None:
        self._move_cursor(self._cursor - self._page())

    def action_page_down(self) -> None:
        self._move_cursor(self._cursor + self._page())

    def action_cursor_parent(self) -> None:
        """Left: from an instance go to its service; on a service, collapse it."""
        row = self._cursor_row()
        if row is None:
            return
        if row.__class__ is str:
            self.collapse_service(row)  # type: ignore[arg-type]
        else:
            self._move_cursor(self._offsets.get(row.group, self._cursor))  # type: ignore[union-attr]

    def action_expand(self) -> None:
        row = self._cursor_row()
        if row is not None and row.__class__ is str:
            self.expand_service(row)  # type: ignore[arg-type]

    def action_toggle_service(self) -> None:
        row = self._cursor_row()
        if row is not None:
            self.toggle_service(_row_group(row))

    def action_select(self) -> None:
        row = self._cursor_row()
        if row is None:
            return
        if row.__class__ is str:
            self.toggle_service(row)  # type: ignore[arg-type]
        else:
            self.post_message(self.Selected(self, row.raw_key))  # type: ignore[union-attr]

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = round(self.scroll_y) + offset.y
        if not 0 <= index < len(self._rows):
            return
        event.stop()
        self._move_cursor(index)
        row = self._rows[index]
        if row.__class__ is str:
            self.toggle_service(row)  # type: ignore[arg-type]
        elif event.chain >= 2:
            self.post_message(self.Selected(self, row.raw_key))  # type: ignore[union-attr]

    def _on_resize(self, event: events.Resize) -> None:
        self._line_cache.grow(max(1024, event.size.height * 8))
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._rows))
        self.refresh()

    # -- rendering -----------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._invalidate_styles()

    def _invalidate_styles(self) -> None:
        self._styles.clear()
        self._line_cache.clear()
        self._countdown_cache.clear()
        self.refresh()

    def _style(self, *names: str, cursor: bool = False) -> Style:
        key = (*names, "registry-tree--cursor") if cursor else names
        style = self._styles.get(key)
        if style is None:
            style = self.rich_style
            for name in key:
                style += self._component_style(name)
            self._styles[key] = style
        return style

    def _component_style(self, name: str) -> Style:
        """What a component class sets, with its background blended as Textual draws it."""
        partial = self.get_component_rich_style(name, partial=True)
        if partial.bgcolor is not None:
            # A translucent background (the blurred cursor, say) is only right in the full
            # style, which Textual blends onto the widget's own background.
            full = self.get_component_rich_style(name)
            partial += Style(bgcolor=full.bgcolor)
        return partial

    def render_lines(self, crop: Region) -> list[Strip]:
        state = self.get_pseudo_class_state()
        if state != self._pseudo_state:
            self._pseudo_state = state
            self._styles.clear()
            self._line_cache.clear()
            self._countdown_cache.clear()
        width = self.scrollable_content_region.width
        if self.virtual_size.width != width:
            # The vertical scrollbar came or went: rows are as wide as what is left.
            self.virtual_size = Size(width, len(self._rows))
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        index = round(self.scroll_y) + y
        rows = self._rows
        if not 0 <= index < len(rows):
            if not rows and y == 1 and (message := self._empty_message()):
                style = self._style("registry-tree--nolease")
                text = message.center(width)[:width]
                return Strip([Segment(text, style)], width)
            return Strip.blank(width, self.rich_style)
        row = rows[index]
        cursor = index == self._cursor
        if row.__class__ is str:
            return self._render_service(row, width, cursor)  # type: ignore[arg-type]
        return self._render_instance(row, width, cursor)  # type: ignore[arg-type]

    def _countdown_width(self, width: int) -> int:
        return min(COUNTDOWN_WIDTH, max(0, width // 3))

    def _render_instance(self, inst: Instance, width: int, cursor: bool) -> Strip:
        countdown_width = self._countdown_width(width)
        left_width = width - countdown_width
        own = inst.raw_key in self._own_keys
        paused = own and inst.raw_key in self._paused_keys
        leader = inst.raw_key in self._leader_keys
        flap = self._flapping.get(inst.raw_key, 0) if self._flapping else 0
        probe = self._probe_marks.get(inst.raw_key)
        key = (inst, left_width, cursor, own, paused, leader, flap, probe)
        left = self._line_cache.get(key)
        if left is None:
            left = self._line_cache[key] = self._instance_segments(
                inst, left_width, cursor, own, paused, leader, flap, probe
            )
        if not countdown_width:
            return Strip(left, width)
        return Strip(left + self._countdown(inst.lease, countdown_width, cursor), width)

    def _instance_segments(
        self,
        inst: Instance,
        width: int,
        cursor: bool,
        own: bool,
        paused: bool,
        leader: bool,
        flap: int = 0,
        probe: tuple[str, str] | None = None,
    ) -> list[Segment]:
        style = self._style
        row = style("registry-tree--instance", cursor=cursor)
        parts: list[Segment] = [Segment("  ", row)]
        if own:
            parts.append(
                Segment("★ ", style("registry-tree--instance", "registry-tree--own", cursor=cursor))
            )
        else:
            parts.append(Segment("  ", row))
        if inst.key_error is not None:
            label = inst.display_key
            if cell_len(label) > 48:
                label = label[:47] + "…"
        else:
            label = _clean(inst.instance_id[:8])
        label_len = cell_len(label)
        parts.append(Segment(label + " " * max(0, 8 - label_len) + "  ", row))
        if inst.address is not None:
            parts.append(Segment(inst.display_address or "", row))
        else:
            parts.append(
                Segment(
                    "(no address)",
                    style("registry-tree--instance", "registry-tree--nolease", cursor=cursor),
                )
            )
        if probe is not None:
            level = {"up": "healthy", "down": "critical"}.get(probe[1], "nolease")
            parts.append(Segment("  ", row))
            parts.append(
                Segment(
                    probe[0],
                    style("registry-tree--instance", f"registry-tree--{level}", cursor=cursor),
                )
            )
        if leader:
            parts.append(Segment("  ", row))
            parts.append(
                Segment(
                    "♛ leader",
                    style("registry-tree--instance", "registry-tree--own", cursor=cursor),
                )
            )
        if flap:
            parts.append(Segment("  ", row))
            parts.append(
                Segment(
                    f"↻ flapping ×{flap}",
                    style("registry-tree--instance", "registry-tree--warning", cursor=cursor),
                )
            )
        if paused:
            parts.append(Segment("  ", row))
            parts.append(
                Segment(
                    "⏸ paused",
                    style("registry-tree--instance", "registry-tree--paused", cursor=cursor),
                )
            )
        if inst.has_problem:
            parts.append(Segment("  ", row))
            parts.append(
                Segment(
                    "⚠ " + _clean(_short_reason(inst)),
                    style("registry-tree--instance", "registry-tree--problem", cursor=cursor),
                )
            )
        strip = Strip(parts)
        if strip.cell_length > width > 1:
            # Cut with a visible mark rather than silently.
            strip = Strip(list(strip.crop(0, width - 1)) + [Segment("…", row)])
        return list(strip.adjust_cell_length(width, row))

    def _countdown(self, lease: int, width: int, cursor: bool) -> list[Segment]:
        if not lease:
            text, level = "no lease", "nolease"
        else:
            remaining, granted = self.ttl_source(lease)
            if remaining is None:
                text, level = "lease ?", "nolease"
            else:
                text = _remaining_text(remaining)
                level = "critical" if remaining <= 0 else lease_level(remaining, granted)
        key = (text, level, width, cursor)
        segments = self._countdown_cache.get(key)
        if segments is None:
            if len(self._countdown_cache) > 4096:
                self._countdown_cache.clear()
            row = self._style("registry-tree--instance", cursor=cursor)
            text_style = self._style("registry-tree--instance", f"registry-tree--{level}")
            if cursor:
                # A coloured countdown on the cursor's background is hard to read: show
                # it as a pill of its own colour instead.
                text_style += Style(reverse=True)
                text = f" {text} "
            text = text[: max(0, width - 1)]
            pad = width - 1 - cell_len(text)
            segments = [Segment(" " * pad, row), Segment(text, text_style), Segment(" ", row)]
            self._countdown_cache[key] = segments
        return segments

    def _expiring_count(self, block: _Block) -> int:
        count = self._expiring.get(block.name)
        if count is None:
            count = 0
            ttl_source = self.ttl_source
            for lease, holders in block.leases.items():
                if not lease:
                    continue
                remaining, granted = ttl_source(lease)
                if remaining is None:
                    continue
                if remaining <= 0 or lease_level(remaining, granted) != "healthy":
                    count += holders
            self._expiring[block.name] = count
        return count

    def _render_service(self, name: str, width: int, cursor: bool) -> Strip:
        block = self._blocks[name]
        total = len(block.instances)
        shown = self._shown_count(block)
        expiring = self._expiring_count(block)
        collapsed = name in self._collapsed
        flapping = self._flapping_in(name) if self._flapping else 0
        down = self._down_count(block)
        key = (
            name,
            width,
            cursor,
            total,
            shown,
            expiring,
            block.problems,
            collapsed,
            flapping,
            down,
        )
        segments = self._line_cache.get(key)
        if segments is None:
            segments = self._line_cache[key] = self._service_segments(
                name,
                width,
                cursor,
                total,
                shown,
                expiring,
                block.problems,
                collapsed,
                flapping,
                down,
            )
        return Strip(segments, width)

    def _service_segments(
        self,
        name: str,
        width: int,
        cursor: bool,
        total: int,
        shown: int,
        expiring: int,
        problems: int,
        collapsed: bool,
        flapping: int = 0,
        down: int = 0,
    ) -> list[Segment]:
        style = self._style
        classes = ["registry-tree--service"]
        if name == UNRECOGNISED:
            classes.append("registry-tree--unrecognised")
        row = style(*classes, cursor=cursor)
        plain = style(cursor=cursor)
        count = _plural(total, "instance")
        if shown != total:
            count = f"{shown} of {count}"
        parts = [
            Segment(("▸ " if collapsed else "▾ ") + _clean(name), row),
            Segment(f"  {count}", plain),
        ]
        if expiring:
            parts.append(
                Segment(f"  ({expiring} expiring)", style("registry-tree--warning", cursor=cursor))
            )
        if down:
            parts.append(
                Segment(f"  ✗ {down} unreachable", style("registry-tree--critical", cursor=cursor))
            )
        if problems:
            parts.append(
                Segment(
                    f"  ⚠ {_plural(problems, 'problem')}",
                    style("registry-tree--problem", cursor=cursor),
                )
            )
        if flapping:
            parts.append(
                Segment(f"  ↻ {flapping} flapping", style("registry-tree--warning", cursor=cursor))
            )
        return list(Strip(parts).adjust_cell_length(width, plain))
