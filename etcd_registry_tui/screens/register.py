"""The "register a test instance" form.

The screen only collects and validates input; the caller does the registering with
the :class:`RegisterRequest` it gets back (``None`` when cancelled). The layout to write
in is picked from the layouts :class:`~etcd_registry_tui.registry.layouts.Layout` knows (as
``register --layout`` takes it); a framework's address is checked as the CLI checks it.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ..registry.etcd.errors import ConfigError
from ..registry.layouts import FRAMEWORKS, Layout
from ..registry.layouts.registrar import DEFAULT_TTL, check_address
from ..registry.registration import validate_name, validate_ttl

#: The longest TTL the form accepts: a week. Anything longer is almost certainly a typo.
MAX_TTL = 7 * 24 * 3600

#: Fields the registration writes itself; ``extra`` may not replace them (any case).
RESERVED_FIELDS = ("Id", "Name", "Address")

_DIGITS = re.compile(r"\d+")

EXTRA_PLACEHOLDER = 'optional JSON object, e.g. {"Zone": "eu-1"}'


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (bind to port 0 and ask)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RegisterRequest:
    """What the user asked to register."""

    name: str
    address: str
    ttl: int
    extra: dict[str, Any] = field(default_factory=dict)
    layout: Layout = Layout.WALKTHROUGH


class FormError(ValueError):
    """A form value is invalid; ``field`` names the input to focus."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def parse_address(text: str) -> str:
    address = text.strip()
    example = "e.g. http://localhost:5000"
    if not address:
        raise FormError("address", f"address is empty: give an http(s) URL, {example}")
    parsed = urlparse(address)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise FormError(
            "address",
            f"address {address!r} is not an http:// or https:// URL with a host, {example}",
        )
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        raise FormError("address", f"address {address!r} has an invalid port") from None
    return address


def parse_layout_address(layout: Layout, text: str) -> str:
    """A framework layout's address, checked as ``register --layout`` checks it (the
    registrar's one-line message); the walkthrough's as :func:`parse_address`."""
    if layout is Layout.WALKTHROUGH:
        return parse_address(text)
    address = text.strip()
    try:
        check_address(layout, address)
    except ValueError as exc:
        raise FormError("address", str(exc)) from None
    return address


def parse_ttl(text: str) -> int:
    raw = text.strip()
    if not _DIGITS.fullmatch(raw):
        raise FormError("ttl", f"TTL must be a positive whole number of seconds, not {raw!r}")
    try:
        ttl = validate_ttl(int(raw))
    except ConfigError as exc:
        raise FormError("ttl", str(exc)) from None
    if ttl > MAX_TTL:
        raise FormError("ttl", f"TTL {ttl} s is longer than a week (at most {MAX_TTL} s)")
    return ttl


def parse_extra(text: str) -> dict[str, Any]:
    raw = text.strip()
    if not raw:
        return {}
    try:
        extra = json.loads(raw)
    except ValueError as exc:
        raise FormError("extra", f"extra fields are not valid JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise FormError(
            "extra",
            f'extra fields must be a JSON object like {{"Zone": "eu-1"}}, '
            f"not a JSON {type(extra).__name__}",
        )
    reserved = {name.casefold(): name for name in RESERVED_FIELDS}
    clash = sorted(key for key in extra if key.casefold() in reserved)
    if clash:
        raise FormError(
            "extra",
            f"extra fields may not override {', '.join(RESERVED_FIELDS)} "
            f"(remove {', '.join(clash)}); use the form fields instead",
        )
    return extra


def parse_form(
    name: str, address: str, ttl: str, extra: str, layout: Layout = Layout.WALKTHROUGH
) -> RegisterRequest:
    """Validate the raw form values; raises :class:`FormError` on the first bad one."""
    try:
        clean_name = validate_name(name)
    except ConfigError as exc:
        raise FormError("name", str(exc)) from None
    clean_address = parse_layout_address(layout, address)
    clean_ttl = parse_ttl(ttl)
    if layout is not Layout.WALKTHROUGH and extra.strip():
        raise FormError(
            "extra",
            f"extra fields are written only in the {Layout.WALKTHROUGH.value} layout"
            f" (clear them for {layout.value})",
        )
    return RegisterRequest(
        name=clean_name,
        address=clean_address,
        ttl=clean_ttl,
        extra=parse_extra(extra),
        layout=layout,
    )


def layout_options() -> list[tuple[str, Layout]]:
    """Every layout the registrar writes, as the select lists it: ``name · framework``."""
    return [(f"{layout.value} · {FRAMEWORKS[layout]}", layout) for layout in Layout]


class RegisterScreen(ModalScreen[RegisterRequest | None]):
    """Ask for a service name, layout, address, TTL and extra fields; dismiss with the
    request.

    Enter in any field submits, Escape or Cancel dismisses with ``None``; on the layout,
    Enter opens its list (arrows move, Enter picks). Invalid input shows a message inside
    the form and keeps it open. Picking a layout sets the TTL to its framework's default
    (unless the TTL was typed) and checks the address for it at once.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    RegisterScreen {
        align: center middle;
    }
    RegisterScreen > #dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    RegisterScreen #title {
        text-style: bold;
        width: 100%;
        margin: 1 0;
    }
    RegisterScreen #form {
        grid-size: 2;
        grid-columns: 14 1fr;
        grid-rows: 3;
        height: auto;
    }
    RegisterScreen #layout {
        width: 1fr;
    }
    RegisterScreen .field-label {
        padding-top: 1;
        color: $text-muted;
    }
    RegisterScreen #error {
        display: none;
        color: $error;
        text-style: bold;
    }
    RegisterScreen #error.error {
        display: block;
    }
    RegisterScreen #buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    RegisterScreen #buttons Button {
        margin-left: 2;
    }
    """

    AUTO_FOCUS = "#name"

    def __init__(
        self,
        default_name: str = "TestService",
        default_address: str | None = None,
        default_ttl: int = 30,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.default_name = default_name
        self.default_address = (
            default_address if default_address is not None else f"http://localhost:{free_port()}"
        )
        self.default_ttl = default_ttl
        self._picked = Layout.WALKTHROUGH
        # The TTL the form put in itself (a layout's default follows it until one is typed).
        self._given_ttl = str(default_ttl)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Label("Register a test instance", id="title")
            with Grid(id="form"):
                yield Label("Service name", classes="field-label")
                yield Input(self.default_name, placeholder="OrderShippingService", id="name")
                yield Label("Layout", classes="field-label")
                yield Select(
                    layout_options(), value=Layout.WALKTHROUGH, allow_blank=False, id="layout"
                )
                yield Label("Address", classes="field-label")
                yield Input(self.default_address, placeholder="http://localhost:5000", id="address")
                yield Label("TTL (seconds)", classes="field-label")
                yield Input(str(self.default_ttl), placeholder="30", id="ttl")
                yield Label("Extra fields", classes="field-label")
                yield Input(placeholder=EXTRA_PLACEHOLDER, id="extra")
            yield Static("", id="error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Register", variant="primary", id="register")
                yield Button("Cancel", id="cancel")

    # -- reading the form ----------------------------------------------------
    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    @property
    def picked_layout(self) -> Layout:
        """The layout picked (the walkthrough's until another is)."""
        return self._picked

    @property
    def error(self) -> str:
        """The message shown in the form ('' when there is none)."""
        widget = self.query_one("#error", Static)
        return str(widget.content) if widget.has_class("error") else ""

    def show_error(self, message: str, field_id: str | None = None) -> None:
        widget = self.query_one("#error", Static)
        widget.update(message)
        widget.set_class(bool(message), "error")
        if field_id is not None:
            self.query_one(f"#{field_id}", Input).focus()

    def submit(self) -> None:
        try:
            request = parse_form(
                self._value("name"),
                self._value("address"),
                self._value("ttl"),
                self._value("extra"),
                self._picked,
            )
        except FormError as exc:
            self.show_error(str(exc), exc.field)
            return
        self.show_error("")
        self.dismiss(request)

    def pick_layout(self, layout: Layout) -> None:
        """Follow a new layout: its TTL (unless one was typed), the extra fields' hint, and
        the address checked for it (its message shown, or the form's cleared)."""
        self._picked = layout
        ttl = self.query_one("#ttl", Input)
        if ttl.value.strip() == self._given_ttl:
            self._given_ttl = ttl.value = str(DEFAULT_TTL[layout])
        framework = layout is not Layout.WALKTHROUGH
        self.query_one("#extra", Input).placeholder = (
            f"only in the {Layout.WALKTHROUGH.value} layout" if framework else EXTRA_PLACEHOLDER
        )
        try:
            parse_layout_address(layout, self._value("address"))
        except FormError as exc:
            self.show_error(str(exc))
        else:
            self.show_error("")

    # -- events --------------------------------------------------------------
    @on(Select.Changed, "#layout")
    def _on_layout_picked(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, Layout) and event.value is not self._picked:
            self.pick_layout(event.value)

    @on(Input.Submitted)
    def _on_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    @on(Button.Pressed, "#register")
    def _on_register(self, event: Button.Pressed) -> None:
        event.stop()
        self.submit()

    @on(Button.Pressed, "#cancel")
    def _on_cancel(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)
