"""One key of an election's queue in full: its whole key and value (``i`` in the elections
view), however long; the view's lines and the Election pane show only their start."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..registry.elections.state import Candidate
from ..registry.sanitize import safe_line, safe_text

#: Beyond this many characters a value is cut here too (and says by how much).
MAX_SHOWN = 200_000


class CandidateScreen(ModalScreen[None]):
    """The whole key and value of a candidate; Escape, ``i`` or ``q`` closes it."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("i", "close", show=False),
        Binding("q", "close", show=False),
    ]

    DEFAULT_CSS = """
    CandidateScreen { align: center middle; }
    CandidateScreen > #box {
        width: 90%;
        height: 80%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    CandidateScreen #title { text-style: bold; width: 100%; }
    CandidateScreen #body { height: 1fr; }
    """

    def __init__(self, election: str, candidate: Candidate) -> None:
        super().__init__()
        self.election = election
        self.candidate = candidate

    def compose(self) -> ComposeResult:
        c = self.candidate
        value = c.value_text()
        with Vertical(id="box"):
            yield Label(
                Text(f"{safe_line(self.election, 80)}: {len(value):,} characters"),
                id="title",
                markup=False,
            )
            with VerticalScroll(id="body"):
                yield Static(Text("key\n", style="bold"), markup=False)
                yield Static(Text(safe_text(c.key_text, MAX_SHOWN)), id="key", markup=False)
                yield Static(Text("\nvalue\n", style="bold"), markup=False)
                yield Static(
                    Text(safe_text(value, MAX_SHOWN) or "(empty)"), id="value", markup=False
                )

    def action_close(self) -> None:
        self.dismiss(None)
