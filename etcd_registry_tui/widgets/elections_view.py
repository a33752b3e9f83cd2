"""The elections view: every election and lock, its leader and its queue, live.

One header line per election (name, kind, the leader's value, how long it has led since
the dashboard saw it take over), then one line per candidate in queue order: ``leader``
(``holder`` for a lock) or ``waiting #N``, the value, the key, the lease and its
countdown. Only the visible lines are drawn (the Line API), so the 1 Hz countdown costs
what is on screen, not what is in etcd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from etcd_registry_tui.registry.elections import (
    Candidate,
    Election,
    ElectionKind,
    ElectionState,
    LeaderChange,
)
from etcd_registry_tui.registry.sanitize import safe_line
from etcd_registry_tui.widgets.ttl_text import format_remaining, format_seconds, lease_level

TtlSource = Callable[[int], tuple[float | None, int | None]]


#: Display text of a key or value from etcd (never a control sequence or markup).
safe = safe_line


@dataclass(frozen=True, slots=True)
class ElectionRow:
    name: str
    candidate: Candidate | None = None  # None: the election's header line
    place: int = 0  # 0: leader / holder, N: waiting #N


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
        self.rows: list[ElectionRow] = []
        self.cursor = 0
        self.read_only = False
        self.own_leases: set[int] = set()
        self.paused_leases: set[int] = set()
        self.empty_text = "no elections or locks found"
        # election name -> (leader key, when the dashboard saw it take over)
        self._led_since: dict[str, tuple[bytes, float]] = {}
        self._state: ElectionState | None = None

    # -- data ----------------------------------------------------------------------
    def set_state(self, state: ElectionState, changes: list[LeaderChange] = ()) -> None:  # type: ignore[assignment]
        """Show ``state``; ``changes`` (from the watcher) restart the 'led for' clocks."""
        self._state = state
        now = self.clock()
        for change in changes:
            if change.new is not None:
                self._led_since[change.name] = (change.new.key, now)
        for election in state.elections.values():
            leader = election.leader
            seen = self._led_since.get(election.name)
            if leader is not None and (seen is None or seen[0] != leader.key):
                self._led_since[election.name] = (leader.key, now)
        for name in list(self._led_since):
            if name not in state.elections:
                del self._led_since[name]
        self._rebuild()

    def _rebuild(self) -> None:
        current = self.highlighted
        rows: list[ElectionRow] = []
        for election in self._state.sorted() if self._state else []:
            rows.append(ElectionRow(election.name))
            rows.extend(
                ElectionRow(election.name, c, place) for place, c in enumerate(election.queue())
            )
        self.rows = rows
        self.cursor = 0
        if current is not None:
            for index, row in enumerate(rows):
                same_key = (
                    row.candidate is not None
                    and current.candidate is not None
                    and row.candidate.key == current.candidate.key
                )
                if row.name == current.name and (same_key or current.candidate is None):
                    self.cursor = index
                    if same_key or row.candidate is None:
                        break
        self.virtual_size = Size(self.scrollable_content_region.width, len(rows))
        self.refresh()
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
        if action == "act" and self.read_only:
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

    async def _on_click(self, event: events.Click) -> None:
        self._move(round(self.scroll_y) + event.y)

    # -- drawing ------------------------------------------------------------------------
    def _style(self, *names: str) -> Style:
        style = self.rich_style
        for name in names:
            style += self.get_component_rich_style(name, partial=True)
        return style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        index = round(self.scroll_y) + y
        if not 0 <= index < len(self.rows):
            if not self.rows and y == 1:
                return Strip([Segment(self.empty_text.center(width)[:width], self._style(
                    "elections-view--muted"))], width)  # fmt: skip
            return Strip.blank(width, self.rich_style)
        row = self.rows[index]
        text = self._header(row) if row.candidate is None else self._candidate(row)
        text.truncate(width, overflow="ellipsis", pad=True)
        if index == self.cursor:
            text.stylize(self.get_component_rich_style("elections-view--cursor"))
        segments = list(text.render(self.app.console))
        return Strip(segments, width).crop(0, width).simplify()

    def _header(self, row: ElectionRow) -> Text:
        election = self.election(row.name)
        text = Text(style=self.rich_style)
        text.append(safe(row.name), self._style("elections-view--name"))
        if election is None:
            return text
        kind = election.kind
        count = len(election.candidates)
        text.append(f"  {kind.value}", self._style("elections-view--muted"))
        leader = election.leader
        word = "holder" if kind is ElectionKind.LOCK else "leader"
        if leader is not None:
            value = safe(leader.value_text()) or "(empty)"
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

    def _candidate(self, row: ElectionRow) -> Text:
        c = row.candidate
        assert c is not None
        election = self.election(row.name)
        lock = election is not None and election.kind is ElectionKind.LOCK
        if row.place == 0:
            role, role_style = ("holder" if lock else "leader"), "elections-view--leader"
        else:
            role, role_style = f"waiting #{row.place}", "elections-view--waiting"
        text = Text(style=self.rich_style)
        own = c.lease in self.own_leases
        text.append("  ★ " if own else "    ", self._style("elections-view--own"))
        text.append(f"{role:<11}", self._style(role_style))
        text.append(f"{safe(c.value_text()) or '(empty)':<20} ")
        remaining, granted = self.ttl_source(c.lease)
        if c.lease in self.paused_leases:
            text.append("⏸ ", self._style("elections-view--warning"))
        if remaining is None:
            text.append(f"{'…':<12}", self._style("elections-view--muted"))
        else:
            level = lease_level(remaining, granted)
            text.append(
                f"{format_remaining(remaining):<12}", self._style(f"elections-view--{level}")
            )
        key = safe(c.key_text)
        if not key.endswith("/" + format(c.lease, "x")):  # not Go's layout: say the lease
            key += f"  lease {c.lease_hex}"
        text.append(f"  {key}", self._style("elections-view--muted"))
        return text
