"""The event log: newest first, bounded, drawn line by line."""

from __future__ import annotations

import time
from collections import deque
from time import monotonic  # not through ``time``: tests replace that for stable stamps

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from ..registry.log_entries import LogEntry, LogKind
from ..registry.model import prefix_of
from ..registry.sanitize import safe_line
from ..registry.wording import revision_text
from .fit_text import elide_end, elide_middle

_STYLES = {
    LogKind.PUT: Style(color="green"),
    LogKind.UPDATE: Style(color="cyan"),
    LogKind.DELETE: Style(color="magenta"),
    LogKind.DEREGISTERED: Style(color="magenta"),
    LogKind.EXPIRED: Style(color="red", bold=True),
    LogKind.REVOKED: Style(color="yellow", bold=True),
    LogKind.LEASE_ENDED: Style(color="yellow"),
    LogKind.ALARM: Style(color="white", bgcolor="red", bold=True),
    LogKind.LEADER: Style(color="blue", bold=True),
    LogKind.INFO: Style(dim=True),
    LogKind.ERROR: Style(color="red"),
}


#: A log line is one row: no need to escape more of a key or detail than a screen shows.
LINE_CHARS = 1024

#: The kind column fits the longest word (DEREGISTERED).
KIND_WIDTH = 13

#: Under this many cells the log writes its kinds short (see ? help).
SHORT_KINDS_UNDER = 60
SHORT_KIND_WIDTH = 8
SHORT_KINDS = {LogKind.DEREGISTERED: "DEREG", LogKind.LEASE_ENDED: "ENDED"}

#: Seconds between two changes of the log's scrollable height.
RESIZE_INTERVAL = 1.0

#: A batch of more UPDATEs than this is logged as one line that says how many there were.
BURST_OVER = 10


def summarise_bursts(
    entries: list[LogEntry], prefix: str | tuple[str, ...] = "", over: int = BURST_OVER
) -> list[LogEntry]:
    """``entries`` (oldest first) with their UPDATEs as one summary line when there are more
    than ``over`` of them: "N updates to M keys …, the latest …". Every other kind (PUT,
    DELETE, EXPIRED, REVOKED, …) stays one line per event, in its place."""
    updates = [entry for entry in entries if entry.kind is LogKind.UPDATE]
    if len(updates) <= over:
        return entries
    first, last = updates[0], updates[-1]
    keys = len({entry.key for entry in updates})
    latest = last.key.removeprefix(prefix_of(last.key, prefix)) if prefix else last.key
    summary = LogEntry(
        LogKind.UPDATE,
        f"{keys} keys",
        f"{len(updates)} updates in {max(0.0, last.at - first.at):.1f} s, the latest {latest}",
        at=last.at,
    )
    result = [entry for entry in entries if entry.kind is not LogKind.UPDATE or entry is last]
    result[result.index(last)] = summary
    return result


#: A detail with at least this many cells keeps its end (else its start).
DETAIL_MIN = 12


def fit_key_and_detail(key: str, detail: str, room: int) -> tuple[str, str]:
    """Key and detail of a log line in ``room`` cells. The key stays whole when the detail
    still gets :data:`DETAIL_MIN` cells, and that detail loses its middle (its end says how
    it ended: ``expired``); an ``old → new`` detail keeps ``→ new`` before the key keeps
    its middle. Otherwise the detail's end goes, then the key's middle (a ``…`` left)."""
    key_len, detail_len = cell_len(key), cell_len(detail)
    if key_len + (2 + detail_len if detail else 0) <= room or room <= 0:
        return key, detail
    if not detail:
        return elide_middle(key, room), ""
    before, arrow, after = detail.rpartition(" → ")
    if arrow:
        # "old → new": the new side is what happened; the old one and the key give way.
        wanted = len(arrow) + len(after) + 1
        key = elide_middle(key, min(key_len, max(12, room - 2 - wanted)))
        left = room - cell_len(key) - 2
        if left >= wanted:
            return key, elide_end(before, left - len(arrow) - len(after)) + arrow + after
        return key, elide_middle(detail, left) if left >= DETAIL_MIN else "…"
    left = room - key_len - 2
    if left >= DETAIL_MIN:
        return key, elide_middle(detail, left, tail=(left - 1) * 2 // 3)
    if left >= 1:
        return key, elide_end(detail, left)
    return elide_middle(key, min(key_len, room - 3)), "…"


class EventLog(ScrollView):
    """Each PUT, UPDATE, DELETE, lease expiry and revoke, with the time."""

    DEFAULT_CSS = """
    EventLog { height: 1fr; overflow-x: hidden; }
    """

    def __init__(
        self, max_entries: int = 1000, prefix: str | tuple[str, ...] = "", **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        #: The watched prefixes: a key is shown without the longest one it starts with.
        self.prefix = prefix
        self.entries: deque[LogEntry] = deque(maxlen=max_entries)
        self.total = 0
        # (id of the entry, width, style) -> (the entry, its line); the entry is kept so a
        # recycled id never shows another entry's line.
        self._line_style = Style()
        self._resized_at = 0.0
        self._resize_timer: Timer | None = None
        self._strips: LRUCache[tuple[int, int, Style], tuple[LogEntry, Strip]] = LRUCache(256)

    def on_mount(self) -> None:
        self.border_title = "Events"

    def add(self, entries: list[LogEntry]) -> None:
        """Log what one flush brought (oldest first); ``total`` counts every event."""
        if not entries:
            return
        self.total += len(entries)
        self.entries.extendleft(summarise_bursts(entries, self.prefix))
        self._resize_later()
        self.refresh()

    def add_history(self, entries: list[LogEntry]) -> None:
        """Put what happened before launch (oldest first) below everything logged since,
        keeping the newest entries when there are more than the log holds."""
        if not entries:
            return
        room = (self.entries.maxlen or len(entries)) - len(self.entries)
        if room <= 0:
            return
        self.total += len(entries)
        self.entries.extend(reversed(entries[-room:]))
        self._resize_later()
        self.refresh()

    def _resize_later(self) -> None:
        """Let the scrollable height follow the entries at most once a second: a new
        height costs a layout pass of the whole screen, and only the scroll range (of
        the oldest lines) waits for it."""
        if self._resize_timer is not None:
            return
        wait = self._resized_at + RESIZE_INTERVAL - monotonic()
        if wait <= 0 or not self.is_mounted:
            self._resize()
        else:
            self._resize_timer = self.set_timer(wait, self._resize, name="event log size")

    def _resize(self) -> None:
        self._resize_timer = None
        self._resized_at = monotonic()
        size = Size(self.size.width, len(self.entries))
        if size != self.virtual_size:
            self.virtual_size = size

    def clear(self) -> None:
        self.entries.clear()
        self._resize()
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        self._line_style = self.rich_style  # worked out once per render, not once per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        index = y + self.scroll_offset.y
        width = self.size.width
        style = self._line_style
        if index >= len(self.entries):
            return Strip.blank(width, style)
        entry = self.entries[index]
        # Every new entry moves every line down one: each entry is drawn once per width and
        # style, not once per frame.
        key = (id(entry), width, style)
        cached = self._strips.get(key)
        if cached is not None and cached[0] is entry:
            return cached[1]
        strip = self._render_entry(entry, width, style)
        self._strips[key] = (entry, strip)
        return strip

    def _render_entry(self, entry: LogEntry, width: int, style: Style) -> Strip:
        if entry.historic:
            # No wall-clock time in etcd's history: the revision says when.
            stamp = f"#{revision_text(entry.revision)}"
            stamp = f"{stamp:>8}" if len(stamp) <= 8 else stamp
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(entry.at))
        # Keys and details come from etcd: only their display-safe text is drawn.
        key = safe_line(entry.key.removeprefix(prefix_of(entry.key, self.prefix)), LINE_CHARS)
        detail = safe_line(entry.detail, LINE_CHARS) if entry.detail else ""
        kind, kind_width = entry.kind.value, KIND_WIDTH
        if width < SHORT_KINDS_UNDER:
            kind, kind_width = SHORT_KINDS.get(entry.kind, kind), SHORT_KIND_WIDTH
        room = width - len(stamp) - 1 - kind_width
        key, detail = fit_key_and_detail(key, detail, room)
        segments = [
            Segment(f"{stamp} ", Style(dim=True)),
            Segment(f"{kind:<{kind_width}}", _STYLES[entry.kind]),
            Segment(key),
        ]
        if detail:
            segments.append(Segment(f"  {detail}", Style(dim=True)))
        strip = Strip(segments)
        if strip.cell_length > width > 1:
            strip = Strip(list(strip.crop(0, width - 1)) + [Segment("…", Style(dim=True))])
        return strip.extend_cell_length(width).apply_style(style)
