"""The event log: newest first, bounded, drawn line by line."""

from __future__ import annotations

import time
from collections import deque

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..registry.sanitize import safe_line
from ..registry.session import LogEntry, LogKind

_STYLES = {
    LogKind.PUT: Style(color="green"),
    LogKind.UPDATE: Style(color="cyan"),
    LogKind.DELETE: Style(color="magenta"),
    LogKind.EXPIRED: Style(color="red", bold=True),
    LogKind.REVOKED: Style(color="yellow", bold=True),
    LogKind.LEADER: Style(color="blue", bold=True),
    LogKind.INFO: Style(dim=True),
    LogKind.ERROR: Style(color="red"),
}


#: A log line is one row: no need to escape more of a key or detail than a screen shows.
LINE_CHARS = 1024


class EventLog(ScrollView):
    """Each PUT, UPDATE, DELETE, lease expiry and revoke, with the time."""

    DEFAULT_CSS = """
    EventLog { height: 1fr; overflow-x: hidden; }
    """

    def __init__(self, max_entries: int = 1000, prefix: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.prefix = prefix
        self.entries: deque[LogEntry] = deque(maxlen=max_entries)
        self.total = 0

    def on_mount(self) -> None:
        self.border_title = "Events"

    def add(self, entries: list[LogEntry]) -> None:
        if not entries:
            return
        self.entries.extendleft(entries)
        self.total += len(entries)
        self.virtual_size = Size(self.size.width, len(self.entries))
        self.refresh()

    def clear(self) -> None:
        self.entries.clear()
        self.virtual_size = Size(self.size.width, 0)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        width = self.size.width
        if index >= len(self.entries):
            return Strip.blank(width, self.rich_style)
        entry = self.entries[index]
        stamp = time.strftime("%H:%M:%S", time.localtime(entry.at))
        segments = [
            Segment(f"{stamp} ", Style(dim=True)),
            Segment(f"{entry.kind.value:<8}", _STYLES[entry.kind]),
            # Keys and details come from etcd: only their display-safe text is drawn.
            Segment(safe_line(entry.key.removeprefix(self.prefix), LINE_CHARS)),
        ]
        if entry.detail:
            segments.append(Segment(f"  {safe_line(entry.detail, LINE_CHARS)}", Style(dim=True)))
        strip = Strip(segments)
        if strip.cell_length > width > 1:
            strip = Strip(list(strip.crop(0, width - 1)) + [Segment("…", Style(dim=True))])
        return strip.extend_cell_length(width).apply_style(self.rich_style)
