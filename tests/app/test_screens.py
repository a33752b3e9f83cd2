"""The modal screens, driven with Pilot inside a tiny host app (no etcd involved)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from rich.syntax import Syntax
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from etcd_registry_tui.registry.model import Instance, KeyValue
from etcd_registry_tui.screens import (
    LEGEND,
    ConfirmScreen,
    HelpScreen,
    InspectScreen,
    RegisterRequest,
    RegisterScreen,
    free_port,
)
from etcd_registry_tui.screens.register import parse_form

PREFIX = "/services/"


def make_instance(
    key: bytes = b"/services/OrderService/abc-1",
    value: bytes | dict[str, Any] = b"",
    lease: int = 0x694D7A3F1B2C3D4E,
    first_seen: float = 1_700_000_000.0,
) -> Instance:
    if isinstance(value, dict):
        value = json.dumps(value).encode()
    kv = KeyValue(key=key, value=value, create_revision=12, mod_revision=34, version=3, lease=lease)
    return Instance.from_kv(kv, PREFIX, first_seen=first_seen)


GOOD = make_instance(
    value={"Id": "abc-1", "Name": "OrderService", "Address": "http://10.0.0.7:5000", "Zone": "eu-1"}
)


class Host(App[None]):
    """Pushes one screen on mount and records what it dismisses with."""

    BINDINGS = [
        Binding("r", "noop", "Register a test instance"),
        Binding("x", "noop", "Revoke the lease of the selected instance"),
        Binding("j,down", "noop", "Next instance"),
        Binding("question_mark", "noop", "Show this help"),
    ]

    def __init__(self, make_screen: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self.make_screen = make_screen
        self.results: list[Any] = []
        self.pushed: Screen[Any] | None = None

    def compose(self) -> ComposeResult:
        yield Label("host")

    def on_mount(self) -> None:
        self.pushed = self.make_screen()
        self.push_screen(self.pushed, callback=self.results.append)

    def action_noop(self) -> None:
        pass


def error_text(screen: RegisterScreen) -> str:
    widget = screen.query_one("#error", Static)
    assert widget.display, "the error line is hidden"
    return str(widget.content)


async def set_field(pilot: Any, screen: Screen[Any], field: str, value: str) -> None:
    screen.query_one(f"#{field}", Input).value = value
    await pilot.pause()


# -- free_port ---------------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- RegisterScreen ----------------------------------------------------------


async def test_register_enter_submits_defaults() -> None:
    app = Host(lambda: RegisterScreen("OrderService", "http://localhost:5123", 20))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(app.focused, Input) and app.focused.id == "name"
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [RegisterRequest("OrderService", "http://localhost:5123", 20, {})]
        assert not isinstance(app.screen, RegisterScreen)


async def test_register_default_address_uses_a_free_port() -> None:
    app = Host(RegisterScreen)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
    (request,) = app.results
    assert request.name == "TestService" and request.ttl == 30 and request.extra == {}
    assert request.address.startswith("http://localhost:")
    assert int(request.address.rsplit(":", 1)[1]) > 0


async def test_register_button_submits_and_enter_in_any_field() -> None:
    app = Host(lambda: RegisterScreen("A", "http://h:1", 5))
    async with app.run_test() as pilot:
        await pilot.pause()
        app.screen.query_one("#ttl", Input).focus()
        await pilot.press("end", "0", "enter")  # 5 -> 50
        await pilot.pause()
    assert app.results == [RegisterRequest("A", "http://h:1", 50, {})]

    app = Host(lambda: RegisterScreen("B", "https://h", 7))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.click("#register")
        await pilot.pause()
    assert app.results == [RegisterRequest("B", "https://h", 7, {})]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "service name is empty"),
        ("name", "   ", "service name is empty"),
        ("name", "Order/Service", "must not contain '/'"),
        ("address", "", "address is empty"),
        ("address", "localhost:5000", "not an http:// or https:// URL with a host"),
        ("address", "ftp://example.com", "not an http:// or https:// URL with a host"),
        ("address", "http://", "not an http:// or https:// URL with a host"),
        ("address", "http://localhost:99999", "invalid port"),
        ("ttl", "", "TTL must be a positive whole number"),
        ("ttl", "abc", "TTL must be a positive whole number"),
        ("ttl", "1.5", "TTL must be a positive whole number"),
        ("ttl", "-3", "TTL must be a positive whole number"),
        ("ttl", "0", "TTL must be a positive whole number"),
        ("ttl", "604801", "longer than a week"),
        ("extra", "{not json", "not valid JSON"),
        ("extra", "[1, 2]", "must be a JSON object"),
        ("extra", '"eu-1"', "must be a JSON object"),
        ("extra", '{"Id": "x"}', "may not override Id, Name, Address"),
        ("extra", '{"name": "x", "Zone": "a"}', "(remove name)"),
        ("extra", '{"ADDRESS": "http://evil"}', "may not override"),
    ],
)
async def test_register_invalid_input_keeps_form_open(field: str, value: str, message: str) -> None:
    app = Host(lambda: RegisterScreen("OrderService", "http://localhost:5000", 30))
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RegisterScreen)
        assert not screen.query_one("#error").display
        await set_field(pilot, screen, field, value)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen, "the form closed on invalid input"
        assert app.results == []
        assert message in error_text(screen)
        assert message in screen.error
        # The offending field gets the focus, so it can be fixed straight away.
        assert app.focused is screen.query_one(f"#{field}", Input)
        assert not app._notifications, "errors belong in the form, not in a notification"


async def test_register_error_clears_after_fix() -> None:
    app = Host(lambda: RegisterScreen("OrderService", "http://localhost:5000", 30))
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RegisterScreen)
        await set_field(pilot, screen, "ttl", "zero")
        await pilot.press("enter")
        await pilot.pause()
        assert "TTL" in screen.error
        await set_field(pilot, screen, "ttl", "15")
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [RegisterRequest("OrderService", "http://localhost:5000", 15, {})]


async def test_register_extra_json_goes_into_extra() -> None:
    app = Host(lambda: RegisterScreen("OrderService", "http://localhost:5000", 30))
    async with app.run_test() as pilot:
        await pilot.pause()
        await set_field(pilot, app.screen, "extra", '{"Zone": "eu-1", "Weight": 3}')
        await set_field(pilot, app.screen, "name", "  Billing  ")
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [
        RegisterRequest("Billing", "http://localhost:5000", 30, {"Zone": "eu-1", "Weight": 3})
    ]


@pytest.mark.parametrize("how", ["escape", "cancel-button"])
async def test_register_cancel_returns_none(how: str) -> None:
    app = Host(lambda: RegisterScreen("OrderService", "http://localhost:5000", 30))
    async with app.run_test() as pilot:
        await pilot.pause()
        if how == "escape":
            await pilot.press("escape")
        else:
            await pilot.click("#cancel")
        await pilot.pause()
        assert app.results == [None]
        assert not isinstance(app.screen, RegisterScreen)


def test_parse_form_without_ui() -> None:
    assert parse_form(" S ", " http://[::1]:80 ", " 9 ", "") == RegisterRequest(
        "S", "http://[::1]:80", 9, {}
    )


# -- ConfirmScreen -----------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(("y",), True), (("n",), False), (("escape",), False), (("enter",), False)],
)
async def test_confirm_keys(keys: tuple[str, ...], expected: bool) -> None:
    app = Host(lambda: ConfirmScreen("Revoke lease", "Revoke lease 694d7a3f1b2c3d4e?"))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
        assert app.results == [expected]
        assert not isinstance(app.screen, ConfirmScreen)


@pytest.mark.parametrize(("button", "expected"), [("#yes", True), ("#no", False)])
async def test_confirm_buttons(button: str, expected: bool) -> None:
    app = Host(lambda: ConfirmScreen("Revoke lease", "3 keys go with it: [a], [b]"))
    async with app.run_test() as pilot:
        await pilot.pause()
        # Square brackets in the message are shown as they are, not taken as markup.
        assert "3 keys go with it: [a], [b]" in str(app.screen.query_one("#message").content)
        await pilot.click(button)
        await pilot.pause()
    assert app.results == [expected]


# -- InspectScreen -----------------------------------------------------------


def static_text(screen: Screen[Any], selector: str) -> str:
    content = screen.query_one(selector, Static).content
    return content.code if isinstance(content, Syntax) else str(content)


async def test_inspect_shows_json_value_and_metadata() -> None:
    app = Host(lambda: InspectScreen(GOOD, ttl=(12.2, 30), lease_keys=3, own=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, InspectScreen)
        assert "/services/OrderService/abc-1" in static_text(screen, "#key")
        value = static_text(screen, "#value")
        assert '"Zone": "eu-1"' in value and '"Address": "http://10.0.0.7:5000"' in value
        assert not screen.query("#problems")
        assert static_text(screen, "#meta-lease") == "694d7a3f1b2c3d4e"
        assert static_text(screen, "#meta-create-revision") == "12"
        assert static_text(screen, "#meta-mod-revision") == "34"
        assert static_text(screen, "#meta-version") == "3"
        assert static_text(screen, "#meta-granted-ttl") == "30 s"
        assert static_text(screen, "#meta-remaining-ttl").startswith("13 seconds")
        assert static_text(screen, "#meta-lease-keys") == "3 (this and 2 others)"
        assert "2023-11-14 22:13:20 UTC" in static_text(screen, "#meta-first-seen")
        assert "ago" in static_text(screen, "#meta-first-seen")
        assert "this dashboard" in static_text(screen, "#meta-own")
        assert screen.query_one("#meta-remaining-ttl").has_class("ttl-ok")

        screen.update_ttl((3.0, 30))
        await pilot.pause()
        assert static_text(screen, "#meta-remaining-ttl").startswith("3 seconds")
        assert screen.query_one("#meta-remaining-ttl").has_class("ttl-critical")
        screen.update_ttl((0.0, 30))
        await pilot.pause()
        assert static_text(screen, "#meta-remaining-ttl") == "expired"


async def test_inspect_permanent_key() -> None:
    inst = make_instance(value={"Id": "x"}, lease=0)
    app = Host(lambda: InspectScreen(inst))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert static_text(screen, "#meta-lease") == "none (permanent key)"
        assert "permanent" in static_text(screen, "#meta-remaining-ttl")
        assert not screen.query("#meta-own")


async def test_inspect_binary_value_shows_hexdump_and_problem() -> None:
    inst = make_instance(key=b"/services/Odd/1", value=b"\x00\x01\xffbinary")
    app = Host(lambda: InspectScreen(inst))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        value = static_text(screen, "#value")
        assert "00000000  00 01 ff 62" in value and "...binary" in value
        assert "value is not UTF-8 text" in static_text(screen, "#problems")


async def test_inspect_bad_json_and_bad_key_show_raw_text_and_problems() -> None:
    inst = make_instance(key=b"/services/a/b/c", value=b"[not json")
    app = Host(lambda: InspectScreen(inst))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert "[not json" in static_text(screen, "#value")
        problems = static_text(screen, "#problems")
        assert "value is not JSON" in problems and "levels deep" in problems


async def test_inspect_copy_value_and_key_and_escape_closes() -> None:
    app = Host(lambda: InspectScreen(GOOD, ttl=(20.0, 30), lease_keys=1))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == GOOD.value.decode()
        assert any(
            "Copied value of /services/OrderService/abc-1" in str(n.message)
            for n in app._notifications
        )
        await pilot.press("k")
        await pilot.pause()
        assert app.clipboard == "/services/OrderService/abc-1"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, InspectScreen)
        assert app.results == [None]


async def test_inspect_copy_binary_value_copies_hexdump() -> None:
    inst = make_instance(value=b"\xff\xfe")
    app = Host(lambda: InspectScreen(inst))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == inst.value_text()
        assert app.clipboard.startswith("00000000  ff fe")


# -- HelpScreen --------------------------------------------------------------


@pytest.mark.parametrize("close_key", ["escape", "question_mark", "q"])
async def test_help_lists_app_bindings_and_legend(close_key: str) -> None:
    app = Host(HelpScreen)
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        text = "\n".join(
            cell.plain
            for table in screen.query(".help-keys")
            for column in table.content.columns
            for cell in column.cells
        )
        for binding in Host.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.description in text
        assert "j / ↓" in text or "j / down" in text  # keys of one action are joined
        assert "Quit" in text  # Textual's own ctrl+q is listed too
        legend = static_text(screen, "#legend")
        for sample, _, meaning in LEGEND:
            assert sample in legend and meaning in legend
        await pilot.press(close_key)
        await pilot.pause()
        assert app.results == [None]
        assert not isinstance(app.screen, HelpScreen)


async def test_help_includes_bindings_of_the_screen_below() -> None:
    class Dashboard(Screen[None]):
        BINDINGS = [Binding("p", "noop", "Pause heartbeats of own instance")]

        def compose(self) -> ComposeResult:
            yield Label("dashboard")

    class DashboardApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(Dashboard())

    app = DashboardApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        app.push_screen(HelpScreen())
        await pilot.pause()
        titles = [title for title, _ in app.screen.sections]
        rows = [row for _, section in app.screen.sections for row in section]
        assert "Dashboard" in titles
        assert ("p", "Pause heartbeats of own instance") in rows


async def test_help_with_explicit_sections() -> None:
    app = Host(lambda: HelpScreen([("Tree", [("enter", "select", "Inspect the instance")])]))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.screen.sections == [("Tree", [("⏎", "Inspect the instance")])]


# -- ? help in each view (item 32) -------------------------------------------


def help_rows(screen: Screen[Any]) -> dict[str, list[tuple[str, str]]]:
    assert isinstance(screen, HelpScreen)
    return {title: rows for title, rows in screen.sections}


def keys_of(rows: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """key -> every description the help gives it (a key listed twice is a lie)."""
    found: dict[str, list[str]] = {}
    for section in rows.values():
        for keys, description in section:
            for key in keys.split(" / "):
                found.setdefault(key, []).append(description)
    return found


async def test_help_in_the_elections_view_lists_its_actions_not_the_registry_s() -> None:
    from test_snapshots_app import live, make_app
    from test_snapshots_elections import prepare

    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        live(app)
        await pilot.press("e")
        prepare(app)
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        keys = keys_of(help_rows(app.screen))
        for key, description in [
            ("c", "Campaign"),
            ("v", "Proclaim"),
            ("d", "Resign"),
            ("p", "Pause"),
            ("x", "Revoke"),
            ("e", "Elections"),
            ("i", "Inspect candidate"),
        ]:
            assert keys.get(key) == [description], (key, keys)
        # The registry's own keys do nothing here: not listed.
        assert "Delete" not in str(keys) and "'Inspect'" not in str(keys), keys


async def test_help_in_the_history_view_lists_what_works_there_once() -> None:
    from test_snapshots_app import live, make_app
    from test_snapshots_history import with_history

    app = with_history(make_app())
    async with app.run_test(size=(120, 36)) as pilot:
        live(app)
        await pilot.press("h")
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        keys = keys_of(help_rows(app.screen))
        assert keys.get("home") == ["Oldest"], keys
        assert keys.get("end") == ["Live rev"], keys
        for gone in ("r", "x", "d", "p", "i", "/"):
            assert gone not in keys, (gone, keys)
        assert all(len(descriptions) == 1 for descriptions in keys.values()), keys


def test_legend_names_every_mark_the_rows_use() -> None:
    samples = {sample for sample, _, _ in LEGEND}
    for mark in ("♛", "✓", "✗", "◆", "★", "⏸", "↻", "⚠"):
        assert any(mark in sample for sample in samples), (mark, samples)


async def test_palette_has_one_keys_entry_and_shows_profile_names_as_written() -> None:
    from test_snapshots_app import make_app

    from etcd_registry_tui.app import RegistryApp

    base = make_app()
    app = RegistryApp(
        base.config,
        session=base.session,
        start_session=False,
        profile="dev",
        profiles=["dev", "[bold]m[/]"],
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        commands = list(app.get_system_commands(app.screen))
        titles = [str(command.title) for command in commands]
        assert sum(1 for title in titles if "keys" in title.lower()) == 1, titles
        switch = [c for c in commands if "profile" in str(c.title)]
        assert len(switch) == 1
        from textual.content import Content

        shown = Content.from_markup(switch[0].title).plain  # as the palette reads it
        assert shown.endswith("[bold]m[/]"), shown
