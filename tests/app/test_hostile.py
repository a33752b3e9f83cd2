"""No key can hurt the operator: hostile keys and values through every renderer.

Whoever can write to etcd chooses every byte of a key or value. The fixture below puts, with
etcdctl into a real etcd, what such a registrant would: terminal escapes (a title change, an
OSC 52 clipboard write, ``\\r``, C1 controls, bidi overrides), Rich/Textual markup, JSON
that other clients reject (NaN) or that is nested a thousand deep, binary data and a value
of 2 MB. The dashboard must keep running, show each of them as visible text, and never send
one of them to the terminal as a control sequence; ``list`` and ``list --json`` likewise.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.etcdctl import Etcdctl, require_etcd
from support.helpers import eventually, slack
from support.pty_helpers import drain, read_until, settle
from textual.geometry import Region
from textual.pilot import Pilot

import etcd_registry_tui
from etcd_registry_tui.app import RegistryApp
from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.events import ConnState
from etcd_registry_tui.registry.model import (
    MAX_JSON_DEPTH,
    MAX_PARSED_BYTES,
    Instance,
    KeyValue,
    RegistryState,
)
from etcd_registry_tui.registry.sanitize import safe_line
from etcd_registry_tui.screens import ConfirmScreen, InspectScreen
from etcd_registry_tui.widgets.event_log import EventLog

CLI = [sys.executable, "-m", "etcd_registry_tui"]
P = "/services/"
DEEP = "[" * 1000 + "]" * 1000
BIG = json.dumps({"Id": "big", "Address": "http://big.example", "Blob": "B" * 2_000_000})
BINARY = bytes(range(256))

LINK = "[link=http://evil.example/]http://good.example[/link]"
BLACK = "[#000000 on #000000]hidden text"


def value(address: str, instance_id: str = "x") -> str:
    return json.dumps({"Id": instance_id, "Address": address}, ensure_ascii=False)


#: (key, value, lease?) as a hostile registrant writes them; "Addr" sorts first, so its
#: instance is the one highlighted at start-up.
HOSTILE: list[tuple[str, bytes | str, bool]] = [
    (f"{P}Addr/slash", value("[/]"), False),
    (f"{P}Addr/link", value(LINK), False),
    (f"{P}Addr/black", value(BLACK), False),
    (f"{P}Inj/id\x1b]0;PWN1\x07", value("http://a.example\x1b]0;PWN3\x07"), False),
    (f"{P}Clip/raw", "\x1b]52;c;cHduZWQ=\x1b\\", False),
    (f"{P}CR/abc\rXXXXXXXXXXXXXXXX", value("http://cr.example\r\x1b[2K"), False),
    (f"{P}C1/id\u009b31m\u009d0;PWN2\u009c", value("http://c1.example\u009d0;PWN4\u009c"), False),
    (f"{P}Bidi/user\u202eexe.txt\u202c\u2066x\u2069", value("http://\u202eelpmaxe.live"), False),
    (f"{P}Markup/nolease[/b]", value("http://m.example"), False),
    (f"{P}Markup/leased[/b]", value("http://l.example"), True),
    (f"{P}Json/nan", '{"Id": "nan", "Address": NaN, "Weight": Infinity}', False),
    (f"{P}Json/deep", DEEP, False),
    (f"{P}Json/surrogate", '{"Id": "s", "Address": "http://s.example/\\ud800"}', False),
    (f"{P}Bin/blob", BINARY, False),
    (f"{P}Big/value", BIG, False),
]

#: What must never reach a terminal raw (the app's own output has none of these).
FORBIDDEN = [
    "\x1b]0;PWN",
    "\x1b]52",
    "\x07",
    "\r",
    "\x1b[2K",
    "\u009b",
    "\u009d",
    "\u009c",
    "\u202e",
    "\u2066",
    "PWN2\u009c",
]


def put(ctl: Etcdctl, key: str, raw: bytes | str, lease: int | None = None) -> None:
    data = raw.encode() if isinstance(raw, str) else raw
    args: list[str | bytes] = ["put"]
    if lease is not None:
        args.append(f"--lease={lease:x}")
    # Through stdin: argv cannot hold NUL bytes nor an argument of 2 MB.
    ctl.run(*args, "--", key, input=data)


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[EmbeddedEtcd, Etcdctl]]:
    """One etcd (that takes a 2 MB request) holding every hostile key above."""
    require_etcd()
    server = EmbeddedEtcd(extra_args=["--max-request-bytes", str(4 * 1024 * 1024)])
    try:
        server.start()
        ctl = Etcdctl(server.endpoint)
        lease = ctl.lease_grant(3600)
        for key, raw, leased in HOSTILE:
            put(ctl, key, raw, lease if leased else None)
        assert len(ctl.get_prefix(P).kvs) == len(HOSTILE)
        yield server, ctl
    finally:
        server.cleanup()


def assert_no_raw_controls(text: str, where: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, f"{bad!r} reached {where}"


# --------------------------------------------------------------------------------------------
# the model: parsing never raises, display text is made once and is safe


def kv(key: str, raw: bytes | str) -> KeyValue:
    return KeyValue(key.encode(), raw.encode() if isinstance(raw, str) else raw)


def test_every_hostile_entry_is_kept_and_nothing_raises() -> None:
    state = RegistryState(P)
    kvs = [
        KeyValue(k.encode(), r.encode() if isinstance(r, str) else r, mod_revision=n)
        for n, (k, r, _) in enumerate(HOSTILE, 1)
    ]
    state.load(kvs, revision=len(kvs))
    assert len(state) == len(HOSTILE)
    for inst in state:
        shown = [inst.display_key, inst.display_service, inst.display_id, inst.display_value()]
        shown.append(inst.display_address or "")
        for text in shown:
            assert_no_raw_controls(text.replace("\n", ""), inst.display_key)
        # What etcd holds is kept as it is: only the display text is escaped.
        assert inst.raw_key.decode() == inst.key


def test_display_text_shows_escapes_not_controls() -> None:
    inst = Instance.from_kv(kv(f"{P}Inj/id\x1b]0;PWN\x07", value("http://a\u202e\u009b")), P)
    assert inst.key.endswith("\x1b]0;PWN\x07")  # the data is untouched
    assert inst.display_key == f"{P}Inj/id␛]0;PWN␇"
    assert inst.display_id == "id␛]0;PWN␇"
    assert inst.display_service == "Inj"
    assert inst.display_address == "http://a\\u202e\\x9b"
    raw = Instance.from_kv(kv(f"{P}Clip/raw", "\x1b]52;c;cHduZWQ=\x1b\\\nline 2\r"), P)
    assert raw.display_value() == "␛]52;c;cHduZWQ=␛\\\nline 2␍"
    clean = Instance.from_kv(kv(f"{P}Orders/a1", value("http://10.0.0.1:5000")), P)
    assert clean.display_key == clean.key and clean.display_address is clean.address
    assert clean._display is None  # clean text is not copied: nothing extra is kept


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000,
        '{"Address": "http://x", "Deep": ' + DEEP + "}",
    ],
    ids=["arrays-1000", "objects-100000", "unclosed", "inside-an-object"],
)
def test_deep_json_is_refused_before_parsing(raw: str) -> None:
    inst = Instance.from_kv(kv(f"{P}Json/deep", raw), P)
    assert inst.fields is None
    assert inst.parse_error is not None
    assert f"nested more than {MAX_JSON_DEPTH} deep" in inst.parse_error
    assert inst.display_value().startswith(raw[:10])


def test_json_at_the_depth_limit_parses_and_brackets_in_strings_do_not_count() -> None:
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    ok = Instance.from_kv(
        kv(f"{P}J/ok", '{"Address": "[[[[' + "[" * 500 + '", "N": ' + nested + "}"), P
    )
    assert ok.parse_error is None and ok.fields is not None
    assert ok.address == "[[[[" + "[" * 500
    json.loads(ok.value_text())  # the pretty form works at the limit
    too_deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    refused = Instance.from_kv(kv(f"{P}J/no", '{"N": ' + too_deep + "}"), P)
    assert refused.fields is None and refused.parse_error is not None


def test_nan_and_infinity_are_kept_as_text_and_flagged() -> None:
    inst = Instance.from_kv(
        kv(f"{P}Json/nan", '{"Id": "n", "Address": NaN, "W": -Infinity, "Big": 1e400}'), P
    )
    assert inst.fields == {"Id": "n", "Address": "NaN", "W": "-Infinity", "Big": "1e400"}
    assert inst.address == "NaN"
    assert inst.parse_error is not None and "not standard JSON" in inst.parse_error
    json.dumps(inst.fields, allow_nan=False)


def test_oversized_value_is_kept_raw_and_says_why() -> None:
    inst = Instance.from_kv(kv(f"{P}Big/value", BIG), P)
    assert len(BIG) > MAX_PARSED_BYTES
    assert inst.fields is None and inst.address is None
    assert inst.parse_error is not None and "not parsed" in inst.parse_error
    shown = inst.display_value()
    assert shown.startswith('{"Id": "big"') and len(shown) < 100_000
    assert "more characters" in shown
    assert inst.value_text() == BIG  # list --json still gives the whole value


@pytest.mark.parametrize("raw", ['{"n": ' + "1" * 5000 + "}", '{"a": "\\ud800"}', "\ufeff{}"])
def test_whatever_a_parser_raises_is_caught(raw: str) -> None:
    inst = Instance.from_kv(kv(f"{P}Odd/x", raw), P)
    inst.display_value()
    inst.value_text()


def test_binary_value_is_a_hex_dump() -> None:
    inst = Instance.from_kv(kv(f"{P}Bin/blob", BINARY), P)
    assert inst.parse_error is not None and "not UTF-8" in inst.parse_error
    shown = inst.display_value()
    assert "00000010  10 11 12" in shown
    assert_no_raw_controls(shown, "hex dump")


def test_every_notification_is_plain_text() -> None:
    """notify() reads its message as markup unless told not to: every call says markup=False."""
    package = Path(etcd_registry_tui.__file__).parent
    calls = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "notify":
                plain = any(
                    k.arg == "markup"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is False
                    for k in node.keywords
                )
                calls.append((f"{path.name}:{node.lineno}", plain))
    assert len(calls) >= 10
    assert [where for where, plain in calls if not plain] == []


# --------------------------------------------------------------------------------------------
# list and list --json


def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return subprocess.run([*CLI, *args], capture_output=True, timeout=60, env=env)


def test_list_json_is_strict_json_without_raw_controls(hostile) -> None:
    server, _ = hostile
    result = run_cli("list", "--json", "--endpoints", server.endpoint)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout
    # Only printable ASCII and line breaks: C0, C1 and bidi characters are all \u-escaped.
    assert re.fullmatch(rb"[\x20-\x7e\n]*", out), "raw control bytes in list --json"

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    doc = json.loads(out, parse_constant=no_constants)
    records = {r["key"]: r for s in doc["services"] for r in s["instances"]}
    assert set(records) == {k for k, _, _ in HOSTILE}  # the real keys, escapes decoded
    nan = records[f"{P}Json/nan"]
    assert nan["value"] == {"Id": "nan", "Address": "NaN", "Weight": "Infinity"}
    assert "not standard JSON" in nan["error"]
    assert records[f"{P}Clip/raw"]["value"] == "\x1b]52;c;cHduZWQ=\x1b\\"
    assert records[f"{P}Big/value"]["value"] == BIG
    assert "nested" in records[f"{P}Json/deep"]["error"]
    assert records[f"{P}Addr/slash"]["address"] == "[/]"


def test_list_text_shows_escapes(hostile) -> None:
    server, _ = hostile
    result = run_cli("list", "--endpoints", server.endpoint)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "Traceback" not in result.stderr.decode()
    assert "\x1b" not in out
    assert_no_raw_controls(out, "list")
    assert "  id␛]0;PW  http://a.example␛]0;PWN3␇  " in out  # ids are cut to 8 characters
    assert "  id\\x9b31m\\x9d0  http://c1.example\\x9d0;PWN4\\x9c  " in out
    assert "  user\\u202eexe  http://\\u202eelpmaxe.live  " in out
    assert "  abc␍XXXX  http://cr.example␍␛[2K  " in out
    assert "http://s.example/\\ud800" in out
    assert "not standard JSON: NaN, Infinity kept as text" in out
    assert "[/]" in out and LINK in out


# --------------------------------------------------------------------------------------------
# the dashboard: every renderer, with Pilot


def screen_output(app: RegistryApp) -> tuple[str, str]:
    """(text of each visible widget, one per line, squashed; terminal output) of the
    whole active screen as it would be drawn."""
    compositor = app.screen._compositor
    texts = []
    for widget in compositor.visible_widgets:
        width, height = widget.size
        strips = widget.render_lines(Region(0, 0, width, height))
        texts.append(squash("".join(strip.text for strip in strips)))
    ansi = compositor.render_full_update().render_segments(app.console)
    return "\n".join(texts), ansi


def assert_screen_safe(app: RegistryApp, where: str) -> str:
    text, ansi = screen_output(app)
    assert_no_raw_controls(text, where)
    assert_no_raw_controls(ansi, f"{where} (terminal output)")
    # Every escape sequence on the wire is the app's own CSI (colours, cursor moves).
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;:?<>=]*[ -/]*[@-~]", "", ansi), where
    assert "\x1b]" not in ansi, f"an OSC sequence reached {where}"
    return text


async def until(pilot: Pilot[Any], cond: Any, message: str = "", timeout: float = 15) -> Any:
    async def check() -> Any:
        await pilot.pause(0.05)
        return cond()

    return await eventually(check, timeout=timeout, interval=0.0, message=message)


@contextlib.asynccontextmanager
async def dashboard(server: EmbeddedEtcd) -> AsyncIterator[tuple[RegistryApp, Pilot[Any]]]:
    app = RegistryApp(ConnectionConfig(endpoints=(server.endpoint,)))
    async with app.run_test(size=(140, 45)) as pilot:
        try:
            await until(
                pilot,
                lambda: (
                    app.session.status.state is ConnState.LIVE
                    and app.registry_tree.highlighted_instance is not None
                ),
                "the dashboard never went live",
            )
            yield app, pilot
        finally:
            with contextlib.suppress(Exception):
                await app.session.shutdown()


def notes(app: RegistryApp) -> list[str]:
    return [n.message for n in app._notifications]


async def show(pilot: Pilot[Any], app: RegistryApp, key: str) -> None:
    raw = key.encode()
    app.registry_tree.select_key(raw)
    await until(
        pilot, lambda: app.registry_tree.highlighted_instance == raw, f"never highlighted {key!r}"
    )
    await pilot.pause(0.05)


EXPECTED_ON_SCREEN = {
    f"{P}Addr/slash": ["[/]"],
    f"{P}Addr/link": [LINK],
    f"{P}Addr/black": [BLACK],
    f"{P}Inj/id\x1b]0;PWN1\x07": ["id␛]0;PWN1␇", "http://a.example␛]0;PWN3␇"],
    f"{P}Clip/raw": ["␛]52;c;cHduZWQ=␛\\"],
    f"{P}CR/abc\rXXXXXXXXXXXXXXXX": ["abc␍XXXXXXXXXXXXXXXX", "http://cr.example␍␛[2K"],
    f"{P}C1/id\u009b31m\u009d0;PWN2\u009c": ["id\\x9b31m\\x9d0;PWN2\\x9c"],
    f"{P}Bidi/user\u202eexe.txt\u202c\u2066x\u2069": ["user\\u202eexe.txt\\u202c\\u2066x\\u2069"],
    f"{P}Markup/nolease[/b]": ["nolease[/b]"],
    f"{P}Json/nan": ["not standard JSON"],
    f"{P}Json/deep": ["nested more than"],
    f"{P}Json/surrogate": ["http://s.example/\\ud800"],
    f"{P}Bin/blob": ["not UTF-8", "00000010  10 11 12 13"],
    f"{P}Big/value": ["not parsed"],
}


def squash(text: str) -> str:
    """Screen text with the pane's borders and line breaks out of the way."""
    return re.sub(r"[│┃▎▊▌▐█╸╺━─╭╮╰╯▔▁\s]", "", text)


async def test_every_renderer_shows_hostile_entries_as_text(hostile) -> None:
    server, ctl = hostile
    async with dashboard(server) as (app, pilot):
        # The tree and the detail pane, for every entry (the first was shown at start-up).
        assert app.registry_tree.highlighted_instance == f"{P}Addr/black".encode()
        for key, _, _ in HOSTILE:
            await show(pilot, app, key)
            text = assert_screen_safe(app, f"the main screen on {key!r}")
            for expected in EXPECTED_ON_SCREEN.get(key, []):
                assert squash(expected) in text, (key, expected)
            assert app.is_running

        # The inspect view and its notifications (k copies the key, c the value).
        for key, _, _ in HOSTILE:
            await show(pilot, app, key)
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, InspectScreen))
            await pilot.pause(0.05)
            text = assert_screen_safe(app, f"the inspect view of {key!r}")
            for expected in EXPECTED_ON_SCREEN.get(key, []):
                assert squash(expected) in text, (key, expected)
            await pilot.press("k")
            await pilot.press("c")
            shown_key = safe_line(key)
            await until(pilot, lambda k=shown_key: f"Copied key {k}" in notes(app))
            assert f"Copied value of {shown_key}" in notes(app)
            assert_screen_safe(app, f"the notifications of {key!r}")
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, InspectScreen))
            app.clear_notifications()
        assert safe_line(f"{P}Inj/id\x1b]0;PWN1\x07") == f"{P}Inj/id␛]0;PWN1␇"

        # x on a key without a lease: a notification; x on a leased key: the dialog.
        await show(pilot, app, f"{P}Markup/nolease[/b]")
        await pilot.press("x")
        await until(pilot, lambda: any("has no lease" in n for n in notes(app)))
        assert_screen_safe(app, "the no-lease notification")
        await show(pilot, app, f"{P}Markup/leased[/b]")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        text = assert_screen_safe(app, "the revoke dialog")
        assert squash("Markup/leased[/b]") in text
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))

        # d y on hostile keys: the dialog, the deletion and its notification.
        for key in (f"{P}Markup/nolease[/b]", f"{P}Inj/id\x1b]0;PWN1\x07"):
            await show(pilot, app, key)
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            text = assert_screen_safe(app, f"the delete dialog of {key!r}")
            assert squash(EXPECTED_ON_SCREEN[key][0]) in text
            await pilot.press("y")
            await until(pilot, lambda k=key: k.encode() not in app.session.state)
            await until(pilot, lambda: any(n.startswith("Deleted") for n in notes(app)))
            assert_screen_safe(app, "the deletion's notification")
        assert any("Deleted /services/Inj/id␛]0;PWN1␇" == n for n in notes(app))

        # The event log: hostile keys and addresses arriving live, then a sentinel that
        # proves the watcher survived them all.
        late = [(k.replace(P, f"{P}Late", 1), r) for k, r, _ in HOSTILE]
        for key, raw in late:
            put(ctl, key, raw)
        put(ctl, f"{P}Zz/sentinel", value("http://sentinel.example"))
        await until(
            pilot,
            lambda: b"/services/Zz/sentinel" in app.session.state,
            "the watcher stopped on a hostile value",
        )
        assert all(k.encode() in app.session.state for k, _ in late)
        log = app.query_one(EventLog)
        log.scroll_to(y=0, animate=False)
        await pilot.pause(0.1)
        text = assert_screen_safe(app, "the event log")
        for expected in ("LateInj/id␛]0;PWN1␇", "LateC1/id\\x9b31m\\x9d0;PWN2\\x9c", "[/]"):
            assert squash(expected) in text, expected
        assert app.is_running and app.session.status.state is ConnState.LIVE
        for key, _ in late:
            ctl.run("del", "--", key)
        ctl.run("del", "--", f"{P}Zz/sentinel")
        put(ctl, f"{P}Markup/nolease[/b]", value("http://m.example"))
        put(ctl, f"{P}Inj/id\x1b]0;PWN1\x07", value("http://a.example\x1b]0;PWN3\x07"))


async def test_markup_in_the_first_entry_does_not_stop_a_read_only_dashboard(hostile) -> None:
    server, _ = hostile
    app = RegistryApp(ConnectionConfig(endpoints=(server.endpoint,)), read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        try:
            await until(pilot, lambda: app.registry_tree.highlighted_instance is not None)
            for key in (f"{P}Addr/slash", f"{P}Addr/link", f"{P}Addr/black"):
                await show(pilot, app, key)
                assert_screen_safe(app, key)
            assert app.is_running
        finally:
            with contextlib.suppress(Exception):
                await app.session.shutdown()


# --------------------------------------------------------------------------------------------
# the real dashboard on a pseudo-terminal: the bytes the terminal receives


DOWN, HOME = b"\x1b[B", b"\x1b[H"


def test_terminal_receives_no_hostile_sequence(hostile) -> None:
    server, _ = hostile
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    # ESCDELAY: a lone Escape (closing the inspect view) is read as one within 10 ms.
    env.update(TERM="xterm-256color", COLUMNS="140", LINES="45", ESCDELAY="10")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real dashboard
        os.execvpe(sys.executable, [*CLI, "--endpoints", server.endpoint], env)
    out = b""
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 140, 0, 0))
        out += read_until(fd, b"live", timeout=30)
        out += settle(fd)
        rows = len(HOSTILE) + len({k.split("/")[2] for k, _, _ in HOSTILE})
        for _ in range(rows):  # every row through the tree and the detail pane
            os.write(fd, DOWN)
            out += settle(fd)
        os.write(fd, HOME)  # back to the top, then each instance in the inspect view
        out += settle(fd)
        for _ in range(rows):
            os.write(fd, DOWN + b"i")
            out += settle(fd)
            os.write(fd, b"\x1b")
            out += settle(fd)
        os.write(fd, b"q")
        deadline = time.monotonic() + slack(20)
        while not os.waitpid(pid, os.WNOHANG)[0]:
            out += drain(fd, 0.1)
            assert time.monotonic() < deadline, "the dashboard did not exit"
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode("utf-8", "replace")
    assert "Traceback" not in text
    # The payloads reached the screen, as visible text only.
    for shown in ("␛]0;PWN1␇", "\\x9d0;PWN2\\x9c", "␛]0;PWN3␇", "␛]52;c;cHduZWQ=", "[/]", LINK):
        assert shown in text, f"{shown!r} was never drawn"
    for mark in ("PWN1", "PWN2", "PWN3", "PWN4", "cHduZWQ="):
        for match in re.finditer(re.escape(mark), text):
            before = text[max(0, match.start() - 8) : match.start()]
            assert "\x1b" not in before and "\u009d" not in before, (mark, before)
    for bad in ("\u009b", "\u009c", "\u009d", "\u202e", "\u2066", "\r\x1b[2K"):
        assert bad not in text, f"{bad!r} reached the terminal"
    # Apart from Textual's own pointer-shape OSC 22, every escape sequence on the wire is
    # a CSI (colours, cursor moves, modes): no OSC, no BEL, no other ESC.
    wire = re.sub(r"\x1b\]22;[\w-]+\x07", "", text)
    assert "\x1b]" not in wire and "\x07" not in wire
    assert "\x1b" not in re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]", "", wire)
