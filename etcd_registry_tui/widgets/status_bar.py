"""The status line: endpoint, connection state, revision, counts."""

from __future__ import annotations

import time

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Static

from ..registry.census import LayoutCount, names_frameworks
from ..registry.events import ConnectionStatus, ConnState
from ..registry.sanitize import safe_line
from ..registry.wording import plural, revision_text

_STATE_STYLE = {
    ConnState.CONNECTING: "yellow",
    ConnState.LOADING: "yellow",
    ConnState.LIVE: "bold green",
    ConnState.RECONNECTING: "bold red",
    ConnState.STOPPED: "dim",
    ConnState.TOO_LARGE: "bold red",
}


#: How long the last error stays on the line (as "last error: …") once the state is fine.
ERROR_LINGER = 15.0


#: At most this many layouts are named on the line; the rest are counted ("+2 more").
SHOWN_LAYOUTS = 4


def layouts_text(totals: list[LayoutCount], with_places: bool) -> str:
    """``kratos 3 in /microservices/ · services 12 in /services/``; "" when the registry holds
    no framework's layout (the walkthrough's and raw keys are what the tree shows anyway).
    Places are raw etcd bytes: the caller makes the text safe."""
    if not names_frameworks(totals):
        return ""
    parts = []
    for c in totals[:SHOWN_LAYOUTS]:
        place = f" in {c.where}" if with_places and c.where else ""
        parts.append(f"{c.layout} {c.instances:,}{place}")
    more = len(totals) - SHOWN_LAYOUTS
    return " · ".join(parts) + (f" +{more} more" if more > 0 else "")


def counts_text(revision: int, services: int, instances: int) -> str:
    """``rev 27,994  5 services · 1 instance``."""
    counts = f"{plural(services, 'service')} · {plural(instances, 'instance')}"
    return f"rev {revision_text(revision)}  {counts}"


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(self, endpoint: str, read_only: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.endpoint = endpoint
        self.read_only = read_only
        self.status: ConnectionStatus | None = None
        self.revision = 0
        #: etcd's revision as far as progress notifications vouch (0: not known).
        self.etcd_revision = 0
        self.services = 0
        self.instances = 0
        self.filter_text = ""
        #: Instances per layout (see :meth:`RegistryState.layout_totals`).
        self.layouts: list[LayoutCount] = []
        #: How far back the history reaches ("history from rev 1,234").
        self.history_text = ""
        self._last: Text | None = None
        self._last_error: tuple[str, float] | None = None

    def set_status(self, status: ConnectionStatus) -> None:
        self.status = status
        if status.error:
            self.note_error(status.error)
        else:
            self._redraw()

    def note_error(self, text: str) -> None:
        """Show ``text`` as the last error for :data:`ERROR_LINGER` seconds, even after
        the state recovered (a reload after compaction takes only a moment)."""
        self._last_error = (text, time.monotonic())
        if self.is_mounted:
            self.set_timer(ERROR_LINGER + 0.1, self._redraw, name="last error")
        self._redraw()

    @property
    def last_error(self) -> str | None:
        if self._last_error is None:
            return None
        text, at = self._last_error
        if time.monotonic() - at > ERROR_LINGER:
            self._last_error = None
            return None
        return text

    def set_counts(self, revision: int, services: int, instances: int) -> None:
        if (revision, services, instances) != (self.revision, self.services, self.instances):
            self.revision, self.services, self.instances = revision, services, instances
            self._redraw()

    def set_layouts(self, totals: list[LayoutCount]) -> None:
        if totals != self.layouts:
            self.layouts = totals
            self._redraw()

    def on_resize(self) -> None:
        self._redraw()  # places in the layouts' text come and go with the width

    def set_history(self, text: str) -> None:
        if text != self.history_text:
            self.history_text = text
            self._redraw()

    def set_etcd_revision(self, revision: int) -> None:
        """etcd's revision, vouched for by progress notifications (no change under the
        prefix up to it): ``rev`` shows it when it is past the last registry change."""
        if revision > self.etcd_revision:
            self.etcd_revision = revision
            self._redraw()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._redraw()

    def _append_layouts(self, text: Text) -> None:
        """The layouts held, with where each was found when the line has room for it."""
        room = self.size.width - 2 - text.cell_len if self.is_mounted else 0
        shown = safe_line(layouts_text(self.layouts, with_places=True))
        if cell_len(shown) + 2 > room:
            shown = safe_line(layouts_text(self.layouts, with_places=False))
        if shown:
            text.append(f"  {shown}", "cyan")

    def _redraw(self) -> None:
        text = Text()
        text.append(self.endpoint, "bold")
        text.append("  ")
        if self.status is None:
            text.append("connecting", "yellow")
        else:
            text.append(self.status.state.value, _STATE_STYLE[self.status.state])
            if self.status.state is ConnState.LOADING and self.status.total:
                text.append(f" {self.status.loaded:,} / {self.status.total:,}", "yellow")
            if self.status.error:
                text.append(f": {safe_line(self.status.error)}", "red")
            if self.status.retry_in is not None and self.status.state is ConnState.RECONNECTING:
                text.append(f" (retry in {self.status.retry_in:.0f}s)", "red")
        rev, counts = counts_text(
            max(self.revision, self.etcd_revision), self.services, self.instances
        ).split("  ", 1)
        text.append(f"  {rev}", "dim")
        text.append(f"  {counts}")
        if self.filter_text:
            text.append(f"  filter: {safe_line(repr(self.filter_text))}", "bold cyan")
        if self.read_only:
            text.append("  READ-ONLY", "bold reverse")
        last_error = self.last_error
        if last_error and (self.status is None or last_error != self.status.error):
            text.append(f"  last error: {last_error}", "yellow")
        # The least urgent last: a narrow line cuts them first.
        self._append_layouts(text)
        if self.history_text:
            text.append(f"  {self.history_text}", "dim")
        if text != self._last:
            self._last = text
            # One line of fixed height: no layout pass for a new revision (every flush).
            self.update(text, layout=False)
