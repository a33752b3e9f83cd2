"""The elections view: every election and lock, its leader and its queue, live.

One header line per election (name, kind, the leader's value, how long it has led since
the dashboard saw it take over), then one line per candidate in queue order: ``leader``
(``holder`` for a lock) or ``waiting #N``, the value, the key, the lease and its
countdown. Only the visible lines are drawn (the Line API), so the 1 Hz countdown costs
what is on screen, not what is in etcd.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, overload

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from etcd_registry_tui.registry.elections.state import (
    Candidate,
    Election,
    ElectionKind,
    ElectionState,
    LeaderChange,
)
from etcd_registry_tui.registry.sanitize import safe_line
from etcd_registry_tui.widgets.ttl_text import format_remaining, format_seconds, lease_level

TtlSource = Callable[[int], tuple[float | None, int | None]]


#: How much of a value a line shows (the whole value: ``i``).
VALUE_WIDTH = 24
MIN_VALUE_WIDTH = 12
LEADER_VALUE_WIDTH = 40
NAME_WIDTH = 60
KEY_WIDTH = 200
#: Batches of watch events are drawn at most this often (a lone change at once): a
#: frame costs the same whatever it shows, so thousands of new candidates a second cost
#: ten frames, not thousands.
REBUILD_INTERVAL = 0.1
#: Lines kept drawn (a screenful many times over; emptied when full).
LINE_CACHE = 2_000


def clip(text: str, width: int) -> str:
    """``text`` made safe and cut to ``width`` characters, ``…`` marking the cut."""
    shown = safe_line(text[: width + 1])
    if len(shown) <= width and len(text) <= width:
        return shown
    return shown[: width - 1] + "…"


@dataclass(frozen=True, slots=True)
class ElectionRow:
    name: str
    candidate: Candidate | None = None  # None: the election's header line
    place: int = 0  # 0: leader / holder, N: waiting #N (-1: a line that is gone)


class ElectionRows(Sequence[ElectionRow]):
    """The view's lines, made when drawn: an election's header, then its queue.

    Built per batch from the elections alone (their order and sizes), so taking in a
    batch costs the number of elections, not the number of candidates; a line reads its
    candidate from the election's queue (sorted once per change, when drawn).
    """

    def __init__(self, elections: list[Election]) -> None:
        self.elections = elections
        self.starts: list[int] = []
        self.where: dict[str, int] = {}
        total = 0
        for n, election in enumerate(elections):
            self.starts.append(total)
            self.where[election.name] = n
            total += 1 + len(election.candidates)
        self.total = total

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> ElectionRow: ...
    @overload
    def __getitem__(self, index: slice) -> list[ElectionRow]: ...
    def __getitem__(self, index: int | slice) -> ElectionRow | list[ElectionRow]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.total))]
        if index < 0:
            index += self.total
        if not 0 <= index < self.total:
            raise IndexError(index)
        n = bisect_right(self.starts, index) - 1
        election = self.elections[n]
        offset = index - self.starts[n]
        if offset == 0:
            return ElectionRow(election.name)
        queue = election.queue()
        if offset > len(queue):  # its queue shrank since: a blank until the next rebuild
            return ElectionRow(election.name, None, -1)
        return ElectionRow(election.name, queue[offset - 1], offset - 1)

    def position(self, row: ElectionRow) -> int | None:
        """Where ``row`` (its election's header, or its candidate) is now, if anywhere."""
        n = self.where.get(row.name)
        if n is None:
            return None
        if row.candidate is None:
            return self.starts[n]
        place = self.elections[n].place(row.candidate.key)
        return None if place is None else self.starts[n] + 1 + place


class ElectionsView(ScrollView, can_focus=True):
    """Elections and locks with their queues; the cursor picks an election or a candidate."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", show=False),
        Binding("down", "cursor_down", show=False),
        Binding("home", "cursor_home", show=False),
        Binding("end", "cursor_end", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("c", "act('campaign')", "Campaign"),
        Binding("v", "act('proclaim')", "Proclaim"),
        Binding("d", "act('resign')", "Resign"),
        Binding("p", "act('pause')", "Pause"),
        Binding("x", "act('revoke')", "Revoke"),
        Binding("i", "act('inspect')", "Inspect candidate"),
    ]

    #: The actions that write to etcd (all of them: off with --read-only).
    WRITE_ACTIONS = frozenset({"campaign", "proclaim", "resign", "pause", "revoke"})

    COMPONENT_CLASSES = {
        "elections-view--name",
        "elections-view--leader",
        "elections-view--waiting",
        "elections-view--own",
        "elections-view--muted",
        "elections-view--healthy",
        "elections-view--warning",
        "elections-view--critical",
        "elections-view--cursor",
    }

    DEFAULT_CSS = """
    ElectionsView {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        & > .elections-view--name { text-style: bold; }
        & > .elections-view--leader { color: $success; text-style: bold; }
        & > .elections-view--waiting { color: $text-muted; }
        & > .elections-view--own { color: $accent; text-style: bold; }
        & > .elections-view--muted { color: $text-muted; text-style: dim; }
        & > .elections-view--healthy { color: $success; }
        & > .elections-view--warning { color: $warning; }
        & > .elections-view--critical { color: $error; text-style: bold; }
        & > .elections-view--cursor { background: $block-cursor-blurred-background; }
        &:focus > .elections-view--cursor { background: $block-cursor-background; }
    }
    """

    class ActionRequested(Message):
        """A key asked for ``action`` on the highlighted row (the app carries it out)."""

        def __init__(self, action: str, row: ElectionRow | None) -> None:
            super().__init__()
            self.action = action
            self.row = row

    class Highlighted(Message):
        def __init__(self, row: ElectionRow | None) -> None:
            super().__init__()
            self.row = row

    def __init__(
        self,
        ttl_source: TtlSource = lambda _: (None, None),
        clock: Callable[[], float] = time.monotonic,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.ttl_source = ttl_source
        self.clock = clock
        self.rows: ElectionRows = ElectionRows([])
        self.cursor = 0
        self.read_only = False
        self.own_leases: set[int] = set()
        self.paused_leases: set[int] = set()
        self.empty_text = "no elections or locks found"
        # election name -> (leader key, when the dashboard saw it take over)
        self._led_since: dict[str, tuple[bytes, float]] = {}
        self._state: ElectionState | None = None
        self._styles: dict[tuple[str, ...], Style] = {}
        self._lines: dict[tuple[object, ...], Strip] = {}
        self._pseudo_state: object = None
        self._last_rebuild = 0.0
        self._rebuild_timer: Timer | None = None

    # -- data ----------------------------------------------------------------------
    def set_state(self, state: ElectionState, changes: list[LeaderChange] = ()) -> None:  # type: ignore[assignment]
        """Show ``state``; ``changes`` (from the watcher) restart the 'led for' clocks."""
        self._state = state
        now = self.clock()
        for change in changes:
            if change.new is not None:
                self._led_since[change.name] = (change.new.key, now)
        for election in state.elections.values():  # per election, not per candidate
            leader = election.leader
            seen = self._led_since.get(election.name)
            if leader is not None and (seen is None or seen[0] != leader.key):
                self._led_since[election.name] = (leader.key, now)
        for name in [n for n in self._led_since if n not in state.elections]:
            del self._led_since[name]
        if self._rebuild_timer is not None:
            return  # due already: it takes this batch too
        wait = self._last_rebuild + REBUILD_INTERVAL - time.monotonic()
        if wait <= 0:
            self._rebuild()
        else:
            self._rebuild_timer = self.set_timer(wait, self._timed_rebuild, name="elections")

    def _timed_rebuild(self) -> None:
        self._rebuild_timer = None
        self._rebuild()

    def _rebuild(self) -> None:
        self._last_rebuild = time.monotonic()
        current = self.highlighted
        rows = ElectionRows(self._state.sorted() if self._state else [])
        self.rows = rows
        self.cursor = 0
        if current is not None:
            found = rows.position(current)
            if found is None and current.candidate is not None:  # its candidate went
                found = rows.position(ElectionRow(current.name))
            self.cursor = found or 0
        self.virtual_size = Size(self.scrollable_content_region.width, len(rows))
        self.refresh()
        if self.highlighted != current:  # not once per batch: the pane redraws at 1 Hz
            self.post_message(self.Highlighted(self.highlighted))

    @property
    def highlighted(self) -> ElectionRow | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def election(self, name: str) -> Election | None:
        return self._state.elections.get(name) if self._state else None

    def led_for(self, name: str) -> float | None:
        seen = self._led_since.get(name)
        return None if seen is None else max(0.0, self.clock() - seen[1])

    def tick(self) -> None:
        """Countdowns and 'led for' moved on: redraw (only visible lines are drawn)."""
        self.refresh()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act" and self.read_only and parameters[:1] != ("inspect",):
            return False
        return True

    def action_act(self, action: str) -> None:
        self.post_message(self.ActionRequested(action, self.highlighted))

    # -- cursor ----------------------------------------------------------------------
    def _move(self, index: int) -> None:
        if not self.rows:
            return
        self.cursor = max(0, min(len(self.rows) - 1, index))
        top, height = round(self.scroll_y), self.scrollable_content_region.height
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif height and self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)
        self.refresh()
        self.post_message(self.Highlighted(self.highlighted))

    def action_cursor_up(self) -> None:
        self._move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor + 1)

    def action_cursor_home(self) -> None:
        self._move(0)

    def action_cursor_end(self) -> None:
        self._move(len(self.rows) - 1)

    def action_page_up(self) -> None:
        self._move(self.cursor - max(1, self.scrollable_content_region.height - 1))

    def action_page_down(self) -> None:
        self._move(self.cursor + max(1, self.scrollable_content_region.height - 1))

    # Overrides Textual's private Widget._on_click (tests/unit/test_private_apis.py checks it).
    async def _on_click(self, event: events.Click) -> None:
        self._move(round(self.scroll_y) + event.y)

    # -- drawing ------------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_drawing()

    def _forget_drawing(self) -> None:
        self._styles.clear()
        self._lines.clear()
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        state = self.get_pseudo_class_state()  # focus changes the cursor's colour
        if state != self._pseudo_state:
            self._pseudo_state = state
            self._styles.clear()
            self._lines.clear()
        return super().render_lines(crop)

    def _style(self, *names: str) -> Style:
        style = self._styles.get(names)
        if style is None:
            style = self.rich_style
            for name in names:
                style += self.get_component_rich_style(name, partial=True)
            self._styles[names] = style
        return style

    def _line_key(self, row: ElectionRow, cursor: bool, width: int) -> tuple[object, ...]:
        """What a line shows: the same key, the same line (drawn once, not every frame)."""
        election = self.election(row.name)
        kind = election.kind if election is not None else None
        c = row.candidate
        if c is None:
            led = self.led_for(row.name)
            leader = election.leader if election is not None else None
            count = len(election.candidates) if election is not None else 0
            return (row.name, kind, leader, None if led is None else int(led), count, cursor, width)
        remaining, granted = self.ttl_source(c.lease)
        countdown = None if remaining is None else (math.ceil(remaining), granted)
        own, paused = c.lease in self.own_leases, c.lease in self.paused_leases
        return (row.name, kind, c, row.place, own, paused, countdown, cursor, width)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        index = round(self.scroll_y) + y
        if not 0 <= index < len(self.rows):
            if not self.rows and y == 1:
                return Strip([Segment(self.empty_text.center(width)[:width], self._style(
                    "elections-view--muted"))], width)  # fmt: skip
            return Strip.blank(width, self.rich_style)
        row = self.rows[index]
        if row.place < 0:
            return Strip.blank(width, self.rich_style)
        key = self._line_key(row, index == self.cursor, width)
        strip = self._lines.get(key)
        if strip is not None:
            return strip
        text = self._header(row) if row.candidate is None else self._candidate(row, width)
        text.truncate(width, overflow="ellipsis", pad=True)
        if index == self.cursor:
            text.stylize(self.get_component_rich_style("elections-view--cursor"))
        segments = list(text.render(self.app.console))
        strip = Strip(segments, width).crop(0, width).simplify()
        if len(self._lines) >= LINE_CACHE:
            self._lines.clear()
        self._lines[key] = strip
        return strip

    def _header(self, row: ElectionRow) -> Text:
        election = self.election(row.name)
        text = Text(style=self.rich_style)
        text.append(clip(row.name, NAME_WIDTH), self._style("elections-view--name"))
        if election is None:
            return text
        kind = election.kind
        count = len(election.candidates)
        text.append(f"  {kind.value}", self._style("elections-view--muted"))
        leader = election.leader
        word = "holder" if kind is ElectionKind.LOCK else "leader"
        if leader is not None:
            value = clip(leader.value_text(), LEADER_VALUE_WIDTH) or "(empty)"
            text.append(f"  {word} {value}", self._style("elections-view--leader"))
            led = self.led_for(row.name)
            if led is not None:
                text.append(
                    f"  for {format_seconds(int(led))}", self._style("elections-view--muted")
                )
        waiting = count - 1
        if waiting:
            text.append(f"  {waiting} waiting", self._style("elections-view--muted"))
        return text

    def _candidate(self, row: ElectionRow, width: int = 0) -> Text:
        """``role value countdown [nesting] key``: the value gets what the rest leaves of
        ``width`` (at most VALUE_WIDTH), so a long value never hides the countdown or key."""
        c = row.candidate
        assert c is not None
        election = self.election(row.name)
        lock = election is not None and election.kind is ElectionKind.LOCK
        if row.place == 0:
            role, role_style = ("holder" if lock else "leader"), "elections-view--leader"
        else:
            role, role_style = f"waiting #{row.place}", "elections-view--waiting"
        remaining, granted = self.ttl_source(c.lease)
        paused = c.lease in self.paused_leases
        if not c.lease:
            countdown, countdown_style = "no lease", "elections-view--muted"
        elif remaining is None:
            countdown, countdown_style = "…", "elections-view--muted"
        else:
            level = lease_level(remaining, granted)
            countdown, countdown_style = format_remaining(remaining), f"elections-view--{level}"
        nested = ""
        if c.stands_in != row.name:  # in the queue by its age, as clientv3 counts it
            nested = (
                f"  in {clip(c.stands_in, NAME_WIDTH // 2)}" if c.stands_in else "  not a candidate"
            )
        # The key below the election's name (on the header line): …/<lease id>, …/sub/<id>
        prefix = row.name + "/"
        tail = c.key_text[len(prefix) :] if c.key_text.startswith(prefix) else c.key_text
        key = clip(("…/" + tail) if tail != c.key_text else tail, KEY_WIDTH)
        # clientv3 names the key by the lease in %x; Node's etcd3 writes it in decimal
        if c.lease and not c.key_text.endswith(f"/{c.lease:x}"):
            key += f"  lease {c.lease_hex}"
        fixed = 4 + 11 + 1 + (2 if paused else 0) + max(12, len(countdown)) + len(nested) + 2
        room = (width or 1000) - fixed - len(key)
        value_width = max(MIN_VALUE_WIDTH, min(VALUE_WIDTH, room))

        text = Text(style=self.rich_style)
        own = c.lease in self.own_leases
        text.append("  ★ " if own else "    ", self._style("elections-view--own"))
        text.append(f"{role:<11}", self._style(role_style))
        value = clip(c.value_text(), value_width) or "(empty)"
        text.append(f"{value:<{value_width}} ")
        if paused:
            text.append("⏸ ", self._style("elections-view--warning"))
        text.append(f"{countdown:<12}", self._style(countdown_style))
        if nested:
            text.append(nested, self._style("elections-view--warning"))
        text.append(f"  {key}", self._style("elections-view--muted"))
        return text
