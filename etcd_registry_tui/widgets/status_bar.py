"""The status line: endpoint, connection state, revision, counts."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..registry.events import ConnectionStatus, ConnState

_STATE_STYLE = {
    ConnState.CONNECTING: "yellow",
    ConnState.LOADING: "yellow",
    ConnState.LIVE: "bold green",
    ConnState.RECONNECTING: "bold red",
    ConnState.STOPPED: "dim",
}


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
        self.services = 0
        self.instances = 0
        self.filter_text = ""
        self._last: Text | None = None

    def set_status(self, status: ConnectionStatus) -> None:
        self.status = status
        self._redraw()

    def set_counts(self, revision: int, services: int, instances: int) -> None:
        if (revision, services, instances) != (self.revision, self.services, self.instances):
            self.revision, self.services, self.instances = revision, services, instances
            self._redraw()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._redraw()

    def _redraw(self) -> None:
        text = Text()
        text.append(self.endpoint, "bold")
        text.append("  ")
        if self.status is None:
            text.append("connecting", "yellow")
        else:
            text.append(self.status.state.value, _STATE_STYLE[self.status.state])
            if self.status.error:
                text.append(f": {self.status.error}", "red")
            if self.status.retry_in is not None and self.status.state is ConnState.RECONNECTING:
                text.append(f" (retry in {self.status.retry_in:.0f}s)", "red")
        text.append(f"  rev {self.revision}", "dim")
        text.append(f"  {self.services} services · {self.instances} instances")
        if self.filter_text:
            text.append(f"  filter: {self.filter_text!r}", "bold cyan")
        if self.read_only:
            text.append("  READ-ONLY", "bold reverse")
        if text != self._last:
            self._last = text
            # One line of fixed height: no layout pass for a new revision (every flush).
            self.update(text, layout=False)
