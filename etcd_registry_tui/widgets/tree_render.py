"""How the registry tree draws its rows: styles, instance and service lines, countdowns.

A mixin of :class:`~etcd_registry_tui.widgets.registry_tree.RegistryTree`: it reads the
widget's model (:class:`~.tree_model.TreeModel`), marks and cursor through their public
interface (:class:`~.tree_host.TreeHost`) and owns its caches. Only the static part of a row is
cached (as segments); the lease countdown and the "(N expiring)" count are worked out in
:meth:`TreeRendering.render_line`, so a one-second tick only repaints the visible lines.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from functools import lru_cache
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.strip import Strip

from etcd_registry_tui.registry.model import NOT_SERVICES, Instance
from etcd_registry_tui.registry.sanitize import safe_line
from etcd_registry_tui.registry.wording import plural
from etcd_registry_tui.widgets.fit_text import elide_middle, fit_address
from etcd_registry_tui.widgets.tree_host import TreeHost
from etcd_registry_tui.widgets.tree_rows import Block, Row
from etcd_registry_tui.widgets.ttl_text import (
    format_remaining,
    format_remaining_short,
    lease_level,
)

#: Cells reserved on the right of each row for the lease countdown (at most): the
#: longest words ("59 minutes 59 seconds", 21 and a pill) take the short form ("59m 59s").
COUNTDOWN_WIDTH = 22
#: ...and at least, when the row has twice that: a space each side of "no lease".
COUNTDOWN_MIN = 10
#: Room an address wants before an id gets more than its shortest unique form...
ADDRESS_ROOM = 24
#: ...and a mark after it ("⏸ paused", "✓ 12 ms", "♛ leader").
MARK_ROOM = 10
#: An address is not shortened below this to make room for the marks after it.
ADDRESS_MIN = 16
#: What a countdown in a narrow column reads instead of the words.
_SHORT_WORDS = {"no lease": "—", "lease ?": "?"}


@lru_cache(maxsize=4096)
def _whole_seconds_text(seconds: int) -> str:
    """:func:`format_remaining` of a whole number of seconds, worked out once per number."""
    return format_remaining(seconds)


def _remaining_text(remaining: float) -> str:
    # format_remaining rounds up to whole seconds; so does this, then asks the cache.
    return _whole_seconds_text(math.ceil(remaining))


#: A countdown column narrower than this writes every countdown short (one way per column).
WORDS_ROOM = len("59 seconds")


def _countdown_text(text: str, remaining: float | None, room: int) -> str:
    """The countdown as words when they fit in ``room`` cells, else short ("1m 5s")."""
    if cell_len(text) <= room and (room >= WORDS_ROOM or remaining is None):
        return text
    if remaining is None:
        return _SHORT_WORDS.get(text, "?")
    return format_remaining_short(remaining)


def _short_reason(inst: Instance) -> str:
    reasons = [p.split(": ", 1)[0] for p in inst.problems]
    return "; ".join(reasons)


class TreeRendering(TreeHost):
    """The drawing half of the registry tree."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: "(N expiring)" per service, until the next tick or change of the service.
        self._expiring: dict[str, int] = {}
        #: Unreachable instances per service, for the probe marks in ``_down_of``.
        self._probe_down: dict[str, int] = {}
        self._down_of: object = None
        self._line_cache: LRUCache[tuple[object, ...], list[Segment]] = LRUCache(1024)
        self._countdown_cache: dict[tuple[object, ...], list[Segment]] = {}
        self._styles: dict[tuple[str, ...], Style] = {}
        self._pseudo_state: object = None
        #: What time alone changes of each screen line, as last drawn (see tick).
        self._drawn: dict[int, tuple[object, ...]] = {}

    def _forget_counts(self, groups: Collection[str] | None) -> None:
        """The counts of ``groups`` (``None``: of every group, a new state) changed."""
        if groups is None:
            self._expiring.clear()
            self._line_cache.clear()
            return
        expiring = self._expiring
        for name in groups:
            expiring.pop(name, None)

    def _fit_caches(self, height: int) -> None:
        """Room in the line cache for a screen ``height`` lines high."""
        # LRUCache.grow: textual.cache is Textual's internal module (test_private_apis.py)
        self._line_cache.grow(max(1024, height * 8))

    # -- header counts ---------------------------------------------------------
    def _flapping_in(self, name: str) -> int:
        instance = self.model.instance
        return sum(1 for key in self.flapping if (i := instance(key)) and i.group == name)

    def _down_count(self, block: Block) -> int:
        marks = self.probe_marks
        if marks is not self._down_of:
            self._down_of, self._probe_down = marks, {}
        count = self._probe_down.get(block.name)
        if count is None:
            count = 0
            if marks:
                for inst in block.instances:
                    mark = marks.get(inst.raw_key)
                    if mark is not None and mark[1] == "down":
                        count += 1
            self._probe_down[block.name] = count
        return count

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
            self.virtual_size = Size(width, self.model.row_count)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        index = round(self.scroll_y) + y
        rows = self.model.rows
        if not 0 <= index < len(rows):
            if not rows and y == 1 and (message := self.empty_message()):
                style = self._style("registry-tree--nolease")
                text = message.center(width)[:width]
                return Strip([Segment(text, style)], width)
            self._drawn.pop(y, None)
            return Strip.blank(width, self.rich_style)
        row = rows[index]
        cursor = index == self.cursor_index
        self._drawn[y] = self._line_state(row)
        if row.__class__ is str:
            return self._render_service(row, width, cursor)
        return self._render_instance(row, width, cursor)  # type: ignore[arg-type]

    # -- the 1 Hz tick ---------------------------------------------------------
    def tick(self) -> None:
        """Once a second: recount "expiring" and repaint the visible lines whose countdown
        (or, for a header, expiring count) reads differently from what was drawn: not the
        whole widget, and not a line whose text stays (no lease, hours left)."""
        self._expiring.clear()
        rows = self.model.rows
        if not rows:
            return
        top = round(self.scroll_y)
        shown = max(0, min(self.scrollable_content_region.height, len(rows) - top))
        drawn, line_state = self._drawn, self._line_state
        start = -1
        for y in range(shown):
            if drawn.get(y) != line_state(rows[top + y]):
                if start < 0:
                    start = y
            elif start >= 0:
                self.refresh_lines(top + start, y - start)
                start = -1
        if start >= 0:
            self.refresh_lines(top + start, shown - start)

    def _line_state(self, row: Row) -> tuple[object, ...]:
        """What of a row's line changes with time alone: an instance's countdown text and
        level, a header's expiring count (the row itself stands for the rest)."""
        if row.__class__ is str:
            return (row, self._expiring_count(self._block(row)))
        lease = row.lease  # type: ignore[union-attr]
        if not lease:
            return (id(row),)
        remaining, granted = self.ttl_source(lease)
        if remaining is None:
            return (id(row),)
        level = "critical" if remaining <= 0 else lease_level(remaining, granted)
        return (id(row), _remaining_text(remaining), level)

    def _countdown_width(self, width: int) -> int:
        """A third of the row, at least :data:`COUNTDOWN_MIN` when the row has twice that."""
        return min(COUNTDOWN_WIDTH, max(0, width // 3, min(COUNTDOWN_MIN, width // 2)))

    def _id_column(self, inst: Instance, width: int) -> int:
        """Cells for the ids of ``inst``'s service: the shortest form that tells them
        apart, all of each id when the row has room for it and an address."""
        block = self.model.block(inst.group)
        if block is None:
            return 8
        forms, address = block.widths()
        # 9 characters (a uuid's first group and "…") unless the address would drop below its
        # minimum for them; never under 4 but when fewer tell the ids apart.
        at_least = max(4, min(9, width - 6 - ADDRESS_MIN))
        return forms.column(width - 6 - min(address, ADDRESS_ROOM) - MARK_ROOM, at_least)

    def _render_instance(self, inst: Instance, width: int, cursor: bool) -> Strip:
        countdown_width = self._countdown_width(width)
        left_width = width - countdown_width
        raw_key = inst.raw_key
        own = raw_key in self.own_keys
        paused = own and raw_key in self.paused_keys
        leader = raw_key in self.leader_keys
        flapping = self.flapping
        flap = flapping.get(raw_key, 0) if flapping else 0
        probe = self.probe_marks.get(raw_key)
        marked = self.marked
        mark = marked.get(raw_key) if marked else None
        column = self._id_column(inst, left_width)
        key = (inst, left_width, cursor, own, paused, leader, flap, probe, mark, column)
        left = self._line_cache.get(key)
        if left is None:
            left = self._line_cache[key] = self._instance_segments(
                inst, left_width, cursor, own, paused, leader, flap, probe, mark, column
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
        mark: str | None = None,
        column: int = 8,
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
            # Not an instance of a service: the key says what it is (its end matters).
            room = width - 6 - (ADDRESS_MIN if inst.address is not None else 14)
            label = elide_middle(inst.display_key, max(column, min(48, room)))
        else:
            block = self.model.block(inst.group)
            forms = block.widths()[0] if block is not None else None
            label = inst.display_id
            label = forms.form(label, column) if forms is not None else label[:column]
        label_len = cell_len(label)
        parts.append(Segment(label + " " * max(0, column - label_len) + "  ", row))

        tags: list[tuple[str, str]] = []
        if probe is not None:
            tags.append((probe[0], {"up": "healthy", "down": "critical"}.get(probe[1], "nolease")))
        if mark is not None:
            tags.append((f"◆ {mark}", "own"))
        if leader:
            tags.append(("♛ leader", "own"))
        if flap:
            tags.append((f"↻ flapping ×{flap}", "warning"))
        if paused:
            tags.append(("⏸ paused", "paused"))
        if inst.has_problem:
            tags.append(("⚠ " + safe_line(_short_reason(inst)), "problem"))

        if inst.address is not None:
            # The address gives way to the marks after it, down to ADDRESS_MIN, and keeps
            # its port (the difference between instances on one host).
            address = inst.display_address or ""
            room = width - sum(part.cell_length for part in parts)
            marks = sum(2 + cell_len(text) for text, _ in tags)
            # With marks cut after it, the row's last cell is their "…", not the port's.
            fit = max(room - marks, min(len(address), ADDRESS_MIN, room - (1 if tags else 0)))
            parts.append(Segment(fit_address(address, fit), row))
        else:
            parts.append(
                Segment(
                    "(no address)",
                    style("registry-tree--instance", "registry-tree--nolease", cursor=cursor),
                )
            )
        for text, component in tags:
            # A mark after the address: two spaces, then ``text`` in its own style.
            parts.append(Segment("  ", row))
            parts.append(
                Segment(
                    text,
                    style("registry-tree--instance", f"registry-tree--{component}", cursor=cursor),
                )
            )
        strip = Strip(parts)
        if strip.cell_length > width > 1:
            # Cut with a visible mark rather than silently.
            strip = Strip(list(strip.crop(0, width - 1)) + [Segment("…", row)])
        return list(strip.adjust_cell_length(width, row))

    def _countdown(self, lease: int, width: int, cursor: bool) -> list[Segment]:
        remaining: float | None = None
        if not lease:
            text, level = "no lease", "nolease"
        else:
            remaining, granted = self.ttl_source(lease)
            if remaining is None:
                text, level = self.unknown_ttl_text, "nolease"
            else:
                text = _remaining_text(remaining)
                level = "critical" if remaining <= 0 else lease_level(remaining, granted)
        # Never cut: words when they fit, else the short form ("1m 5s"); chosen alike on
        # every row (the cursor's pill included), so a column reads one way.
        text = _countdown_text(text, remaining, width - 4)
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
                if cell_len(text) + 2 <= width - 2:
                    text = f" {text} "
            text = text[: max(0, width - 1)]
            pad = width - 1 - cell_len(text)
            segments = [Segment(" " * pad, row), Segment(text, text_style), Segment(" ", row)]
            self._countdown_cache[key] = segments
        return segments

    def _expiring_count(self, block: Block) -> int:
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

    def _block(self, name: str) -> Block:
        """The block of a group that has a row (so the model holds it)."""
        block = self.model.block(name)
        assert block is not None, name
        return block

    def _render_service(self, name: str, width: int, cursor: bool) -> Strip:
        model = self.model
        block = self._block(name)
        total = len(block.instances)
        shown = model.shown_count(block)
        expiring = self._expiring_count(block)
        collapsed = model.is_collapsed(name)
        flapping = self._flapping_in(name) if self.flapping else 0
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
            segments = self._line_cache[key] = self._service_segments(*key)
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
        if name in NOT_SERVICES:
            classes.append("registry-tree--unrecognised")
        row = style(*classes, cursor=cursor)
        plain = style(cursor=cursor)
        # (full text, short text, component) of each count after the name; the short
        # forms ("4", "1 exp", "✗ 2") when the full ones do not fit (see ? help).
        count = plural(total, "instance")
        short_count = f"{total:,}"
        if shown != total:
            count, short_count = f"{shown:,} of {count}", f"{shown:,}/{total:,}"
        counts: list[tuple[str, str, str | None]] = [(count, short_count, None)]
        if expiring:
            counts.append((f"({expiring:,} expiring)", f"{expiring:,} exp", "warning"))
        if down:
            counts.append((f"✗ {down:,} unreachable", f"✗ {down:,}", "critical"))
        if problems:
            counts.append((f"⚠ {plural(problems, 'problem')}", f"⚠ {problems:,}", "problem"))
        if flapping:
            counts.append((f"↻ {flapping:,} flapping", f"↻ {flapping:,}", "warning"))
        label = safe_line(name)
        head = "▸ " if collapsed else "▾ "
        full = sum(2 + cell_len(text) for text, _, _ in counts)
        short = cell_len(head + label) + full > width
        if short:
            room = width - cell_len(head) - sum(2 + cell_len(text) for _, text, _ in counts)
            label = elide_middle(label, max(room, min(12, cell_len(label))))
        parts = [Segment(head + label, row)]
        for full_text, short_text, component in counts:
            count_style = (
                plain if component is None else style(f"registry-tree--{component}", cursor=cursor)
            )
            parts.append(Segment(f"  {short_text if short else full_text}", count_style))
        strip = Strip(parts)
        if strip.cell_length > width > 1:
            strip = Strip(list(strip.crop(0, width - 1)) + [Segment("…", plain)])
        return list(strip.adjust_cell_length(width, plain))
