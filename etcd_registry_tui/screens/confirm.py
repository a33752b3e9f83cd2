"""A yes/no question: ``y`` confirms, ``n`` or Escape says no."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..registry.sanitize import safe_line, safe_text

#: A message longer than this is cut (and says by how much).
MAX_MESSAGE = 4_000


class ConfirmScreen(ModalScreen[bool]):
    """Ask before doing something destructive; dismisses with True (yes) or False (no).

    The No button has the focus, so a stray Enter does not confirm.
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > #dialog {
        width: 64;
        max-width: 100%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    ConfirmScreen #title {
        text-style: bold;
        width: 100%;
    }
    ConfirmScreen #message-box {
        margin-top: 1;
        width: 100%;
        height: auto;
        max-height: 16;
    }
    ConfirmScreen #message {
        width: 100%;
    }
    ConfirmScreen #buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    ConfirmScreen #buttons Button {
        margin-left: 2;
    }
    """

    AUTO_FOCUS = "#no"

    def __init__(
        self,
        title: str,
        message: str,
        *,
        yes_label: str = "Yes",
        no_label: str = "No",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.question_title = title
        self.message = message
        self.yes_label = yes_label
        self.no_label = no_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            # The message names keys from etcd: plain text, escaped, never markup.
            yield Label(Text(safe_line(self.question_title, 80)), id="title", markup=False)
            # However long the message (keys and values are etcd's), the title and the
            # buttons stay on screen: it scrolls in a box of its own.
            with VerticalScroll(id="message-box"):
                yield Static(Text(safe_text(self.message, MAX_MESSAGE)), id="message", markup=False)
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes_label} (y)", variant="error", id="yes")
                yield Button(f"{self.no_label} (n)", variant="primary", id="no")

    @on(Button.Pressed, "#yes")
    def _on_yes(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(True)

    @on(Button.Pressed, "#no")
    def _on_no(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer(False)

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
