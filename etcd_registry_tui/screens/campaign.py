"""Forms of the elections view: campaign (name, value, TTL) and proclaim (a new value)."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from .register import MAX_TTL


@dataclass(frozen=True, slots=True)
class CampaignRequest:
    name: str
    value: str
    ttl: int


def parse_campaign(name: str, value: str, ttl: str) -> CampaignRequest:
    """Validate the form; raises ValueError with a message for the user."""
    name = name.strip()
    if not name or name.endswith("/"):
        raise ValueError("election name must be non-empty and not end in '/'")
    text = ttl.strip() or "60"
    if not text.isdigit() or not 0 < int(text) <= MAX_TTL:
        raise ValueError(f"TTL must be a whole number of seconds between 1 and {MAX_TTL}")
    return CampaignRequest(name, value, int(text))


_CSS = """
{name} {{ align: center middle; }}
{name} > #dialog {{
    width: 70; max-width: 100%; height: auto;
    border: thick $accent; background: $surface; padding: 1 2;
}}
{name} #title {{ text-style: bold; }}
{name} Grid {{ grid-size: 2; grid-columns: 10 1fr; height: auto; grid-rows: 3; margin-top: 1; }}
{name} Grid Label {{ padding-top: 1; }}
{name} #error {{ color: $error; height: auto; }}
{name} #buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} #buttons Button {{ margin-left: 2; }}
"""


class CampaignScreen(ModalScreen[CampaignRequest | None]):
    """Stand as a candidate: Enter submits, Escape cancels."""

    DEFAULT_CSS = _CSS.format(name="CampaignScreen")
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    AUTO_FOCUS = "#value"

    def __init__(self, default_name: str = "myjob", default_value: str = "") -> None:
        super().__init__()
        self.default_name = default_name
        self.default_value = default_value

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Campaign in an election", id="title", markup=False)
            with Grid():
                yield Label("Name")
                yield Input(self.default_name, id="name")
                yield Label("Value")
                yield Input(self.default_value, id="value", placeholder="this candidate's value")
                yield Label("TTL (s)")
                yield Input("60", id="ttl")
            yield Static("", id="error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Campaign", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def _submit(self) -> None:
        try:
            request = parse_campaign(
                self.query_one("#name", Input).value,
                self.query_one("#value", Input).value,
                self.query_one("#ttl", Input).value,
            )
        except ValueError as exc:
            self.query_one("#error", Static).update(str(exc))
            return
        self.dismiss(request)

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ProclaimScreen(ModalScreen[str | None]):
    """A new value for the leader (our own candidate): Enter submits, Escape cancels."""

    DEFAULT_CSS = _CSS.format(name="ProclaimScreen")
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]
    AUTO_FOCUS = "#value"

    def __init__(self, election: str, current: str) -> None:
        super().__init__()
        self.election = election
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Proclaim a new value in {self.election}", id="title", markup=False)
            with Grid():
                yield Label("Value")
                yield Input(self.current, id="value")
            with Horizontal(id="buttons"):
                yield Button("Proclaim", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted)
    def _entered(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    @on(Button.Pressed, "#ok")
    def _ok(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self.query_one("#value", Input).value)

    @on(Button.Pressed, "#cancel")
    def _cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
