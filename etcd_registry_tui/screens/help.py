"""The key reference, built from the live bindings so it cannot go stale."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table
from rich.text import Text
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

#: (sample, Textual style, meaning) for the colours and marks of the dashboard.
LEGEND: tuple[tuple[str, str, str], ...] = (
    ("25s", "$success", "healthy: more than a third of the TTL left"),
    ("8s", "$warning", "under a third of the TTL left"),
    ("3s", "bold $error", "under 5 s left: about to expire"),
    ("—", "$text-muted", "no lease: a permanent key"),
    ("⚠", "bold $error", "problem: the key or value does not fit the format"),
    ("★", "bold $accent", "own instance, registered from this dashboard"),
    ("⏸", "$warning", "paused: heartbeats stopped, the lease is running out"),
    ("↻", "$warning", "flapping: registered 3 or more times within 5 minutes"),
    ("♛", "bold $accent", "leader of its service's election"),
    ("◆", "bold $accent", "history view: what happened to the key at this revision"),
    ("✓", "$success", "probe (P): the address answered, in so many ms"),
    ("✗", "bold $error", "probe (P): no answer (refused, timeout, HTTP error); header: how many"),
    ("?", "$text-muted", "probe (P): nothing to probe (no address)"),
    ("1m", "$success", "a narrow countdown column: 1m 5s is 1 minute 5 seconds"),
    ("exp", "$warning", "a narrow header: 4  1 exp  ⚠ 2 is 4 instances, 1 expiring, 2 problems"),
    ("…", "$text-muted", "cut to fit: the detail pane and i show all of it"),
)

Section = tuple[str, list[tuple[str, str]]]


def _own_bindings(node_type: type[DOMNode], include_textual: bool) -> list[Binding]:
    """BINDINGS of ``node_type`` and its bases (base first), like Textual merges them.

    Textual's own widget classes are skipped (their cursor keys are not the dashboard's),
    except :class:`textual.app.App` when ``include_textual`` (it holds the quit key).
    """
    bindings: list[Binding] = []
    for base in reversed(node_type.__mro__):
        if "BINDINGS" not in base.__dict__:
            continue
        if base.__module__.startswith("textual.") and not (include_textual and base is App):
            continue
        try:
            bindings.extend(Binding.make_bindings(base.__dict__["BINDINGS"]))
        except Exception:  # a malformed BINDINGS must not break the help
            continue
    return bindings


def _rows(app: App, bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, description) rows; keys of one action are joined ("j / down")."""
    grouped: dict[tuple[str, str], list[str]] = {}
    try:
        expanded = list(Binding.make_bindings(bindings))
    except Exception:
        return []
    for binding in expanded:
        if binding.system or not binding.description:
            continue
        try:
            shown = app.get_key_display(binding)
        except Exception:
            shown = binding.key_display or binding.key
        keys = grouped.setdefault((binding.action, binding.description), [])
        if shown not in keys:
            keys.append(shown)
    return [(" / ".join(keys), description) for (_, description), keys in grouped.items()]


def _declared(node: DOMNode, app: App) -> set[tuple[str, str, str]]:
    """(key, action, description) of the bindings ``node``'s own classes declare."""
    return {
        (binding.key, binding.action, binding.description)
        for binding in _own_bindings(type(node), include_textual=node is app)
    }


def _allowed(app: App, binding: Binding) -> bool:
    try:
        _, name, parameters = parse_action(binding.action)
        return bool(app.check_action(name, parameters))
    except Exception:
        return False


def collect_sections(app: App, screen: Screen | None) -> list[Section]:
    """Keys of the app, then of ``screen`` and its focused widgets, as help sections.

    Only what a key does in that view: the binding Textual would run for it there (the
    focused widget's ``d`` over the app's, a screen's priority ``home`` over the tree's),
    and only when its ``check_action`` allows it (the registry's ``d`` is not listed in
    the elections view, nor ``r``, ``x``, ``d`` in the history view). Call it before the
    help screen is pushed: with the help on top, the dashboard's actions are all off.
    """
    sections: list[Section] = []
    if screen is None:
        rows = _rows(app, _own_bindings(type(app), include_textual=True))
        return [("Dashboard", rows)] if rows else []
    dashboard: list[Binding] = []
    view: list[Binding] = []
    shadowed: set[str] = set()
    declared: dict[int, set[tuple[str, str, str]]] = {}
    for active in screen.active_bindings.values():
        if not active.enabled:
            continue
        node, binding = active.node, active.binding
        own = declared.get(id(node))
        if own is None:
            own = declared[id(node)] = _declared(node, app)
        # Textual's widgets' own keys (a ScrollView's arrows) are not the dashboard's.
        if (binding.key, binding.action, binding.description) not in own:
            shadowed.add(binding.key)
            continue
        (dashboard if node is app else view).append(binding)
    # A Textual key that lets the key through when it has nothing to do (the screen's
    # ctrl+c copies a selection, else the app's ctrl+c quits): the app's binding stands.
    for binding in _own_bindings(type(app), include_textual=True):
        if binding.key in shadowed and _allowed(app, binding):
            dashboard.append(binding)
    for title, bindings in (("Dashboard", dashboard), ("This view", view)):
        rows = _rows(app, bindings)
        if rows:
            sections.append((title, rows))
    return sections


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard and the colour legend. Escape, ``?`` or ``q`` closes.

    ``sections`` (title, BINDINGS-like list) replaces the automatic collection, which
    reads ``app.BINDINGS`` (and its bases), the screen below and its focused widgets.
    """

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > #dialog {
        width: 84;
        max-width: 100%;
        height: auto;
        max-height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 2;
    }
    HelpScreen #help-title {
        text-style: bold;
        width: 100%;
        margin-top: 1;
    }
    HelpScreen .help-heading {
        text-style: bold;
        color: $accent;
        margin-top: 1;
    }
    HelpScreen #help-footer {
        color: $text-muted;
        margin: 1 0;
    }
    """

    def __init__(
        self,
        sections: Sequence[tuple[str, Iterable[BindingType]]] | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._given_sections = sections
        self.sections: list[Section] = []
        # The keys of the view below, worked out now: once this screen is pushed, the
        # dashboard's actions are off (they act on what is behind the help).
        self._beneath_sections: list[Section] | None = None
        if sections is None:
            try:
                self._beneath_sections = collect_sections(self.app, self.app.screen)
            except Exception:  # no running app yet, or a screen mid-change: at compose
                self._beneath_sections = None

    def _beneath(self) -> Screen | None:
        stack = [screen for screen in self.app.screen_stack if screen is not self]
        return stack[-1] if stack else None

    def _collect(self) -> list[Section]:
        if self._given_sections is not None:
            return [
                (title, rows)
                for title, bindings in self._given_sections
                if (rows := _rows(self.app, bindings))
            ]
        if self._beneath_sections is not None:
            return self._beneath_sections
        try:
            return collect_sections(self.app, self._beneath())
        except Exception:  # never let the help itself fail
            return [("Dashboard", _rows(self.app, getattr(self.app, "BINDINGS", [])))]

    @staticmethod
    def _table(rows: list[tuple[str, str]]) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True, min_width=12)
        table.add_column()
        for keys, description in rows:
            table.add_row(Text(keys), Text(description))
        return table

    def compose(self) -> ComposeResult:
        self.sections = self._collect()
        with VerticalScroll(id="dialog"):
            yield Label("Keys", id="help-title")
            if not self.sections:
                yield Static("No key bindings found.", classes="help-empty")
            for title, rows in self.sections:
                yield Label(title, classes="help-heading", markup=False)
                yield Static(self._table(rows), classes="help-keys")
            yield Label("Colours and marks", classes="help-heading")
            legend = Content("\n").join(
                Content.assemble((f"{sample:>4}", style), "  ", meaning)
                for sample, style, meaning in LEGEND
            )
            yield Static(legend, id="legend")
            yield Label("Escape, ? or q closes this help.", id="help-footer")

    def action_close(self) -> None:
        self.dismiss(None)
