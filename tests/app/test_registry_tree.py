"""RegistryTree: a pure UI test on the real model, fed from fake key-values (no etcd)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from etcd_registry_tui.registry.model import Change, KeyValue, RegistryState
from etcd_registry_tui.widgets import RegistryTree

PREFIX = "/services/"


def kv(service: str, instance_id: str, address: str | None = "10.0.0.1:80", **kw: int) -> KeyValue:
    value = b'{"Id": "%s"}' % instance_id.encode()
    if address is not None:
        value = b'{"Id": "%s", "Address": "%s"}' % (instance_id.encode(), address.encode())
    return KeyValue(f"{PREFIX}{service}/{instance_id}".encode(), value, **kw)


def key(service: str, instance_id: str) -> bytes:
    return f"{PREFIX}{service}/{instance_id}".encode()


class FakeTtl:
    """ttl_source: lease -> (remaining, granted), shifted by a fake clock."""

    def __init__(self, leases: dict[int, tuple[float, int]]) -> None:
        self.leases = leases
        self.elapsed = 0.0

    def __call__(self, lease: int) -> tuple[float | None, int | None]:
        if lease not in self.leases:
            return None, None
        remaining, granted = self.leases[lease]
        return remaining - self.elapsed, granted


class TreeApp(App[None]):
    def __init__(self, ttl: FakeTtl | None = None, **tree_kw: object) -> None:
        super().__init__()
        self.ttl = ttl or FakeTtl({})
        self.tree_kw = tree_kw
        self.highlighted: list[tuple[bytes | None, str | None]] = []
        self.selected: list[bytes] = []

    def compose(self) -> ComposeResult:
        yield RegistryTree(ttl_source=self.ttl, **self.tree_kw)  # type: ignore[arg-type]

    def on_registry_tree_highlighted(self, message: RegistryTree.Highlighted) -> None:
        self.highlighted.append((message.raw_key, message.service))

    def on_registry_tree_selected(self, message: RegistryTree.Selected) -> None:
        self.selected.append(message.raw_key)


def make_state(kvs: list[KeyValue], revision: int = 10) -> RegistryState:
    state = RegistryState(PREFIX)
    state.load(kvs, revision)
    return state


def screen_lines(tree: RegistryTree) -> list[str]:
    """The rendered text of every visible line, trailing blanks dropped."""
    lines = [
        tree.render_line(y).text.rstrip() for y in range(tree.scrollable_content_region.height)
    ]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def line_with(tree: RegistryTree, text: str) -> str:
    found = [line for line in screen_lines(tree) if text in line]
    assert len(found) == 1, f"{text!r} in {screen_lines(tree)}"
    return found[0]


BASIC = [
    kv("Zeta", "zzzzzzzz-0001", "10.0.0.9:80"),
    kv("OrderShippingService", "bbbbbbbb-0002", "10.0.0.2:80"),
    kv("OrderShippingService", "aaaaaaaa-0001", "10.0.0.1:80"),
    kv("OrderShippingService", "cccccccc-0003", None),
    kv("Alpha", "11111111-0001", "10.1.0.1:80"),
    KeyValue(b"/services/loose-key", b"{}"),
    KeyValue(b"/services/Alpha/deep/key", b'{"Address": "x"}'),
]


async def test_rows_sorted_and_unrecognised_last() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(BASIC))
        await pilot.pause()
        lines = screen_lines(tree)
        assert [line.split()[1] for line in lines if line.startswith("▾")] == [
            "Alpha",
            "OrderShippingService",
            "Zeta",
            "(unrecognised",
        ]
        order = [
            lines.index(line_with(tree, text)) for text in ("aaaaaaaa", "bbbbbbbb", "cccccccc")
        ]
        assert order == sorted(order)
        assert "OrderShippingService  3 instances" in line_with(tree, "OrderShippingService")
        assert "(no address)" in line_with(tree, "cccccccc")
        # Both odd keys sit in the unrecognised group, after every service, marked.
        unrecognised = lines.index(line_with(tree, "(unrecognised keys)"))
        assert unrecognised > lines.index(line_with(tree, "zzzzzzzz"))
        assert "⚠ 2 problems" in lines[unrecognised]
        for odd in ("loose-key", "deep/key"):
            assert lines.index(line_with(tree, odd)) > unrecognised
            assert "⚠" in line_with(tree, odd)
        assert tree.row_count == 4 + 7


async def test_problem_entries_show_mark_and_reason() -> None:
    app = TreeApp()
    async with app.run_test(size=(120, 20)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(
            make_state([kv("Svc", "good0001"), KeyValue(key("Svc", "bad00001"), b"not json")])
        )
        await pilot.pause()
        assert "⚠ value is not JSON" in line_with(tree, "bad00001")
        assert "⚠" not in line_with(tree, "good0001")
        assert "⚠ 1 problem" in line_with(tree, "▾ Svc")


async def test_countdown_from_ttl_source() -> None:
    ttl = FakeTtl({1: (29.2, 30), 2: (65.0, 90), 3: (8.0, 30), 4: (3.0, 30), 5: (-1.0, 30)})
    kvs = [
        kv("Svc", "id000001", lease=1),
        kv("Svc", "id000002", lease=2),
        kv("Svc", "id000003", lease=3),
        kv("Svc", "id000004", lease=4),
        kv("Svc", "id000005", lease=5),
        kv("Svc", "id000006", lease=0),
        kv("Svc", "id000007", lease=99),  # unknown to the ttl source
    ]
    app = TreeApp(ttl)
    async with app.run_test(size=(100, 20)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        assert line_with(tree, "id000001").endswith("30 seconds")
        assert line_with(tree, "id000002").endswith("1 minute 5 seconds")
        assert line_with(tree, "id000003").endswith("8 seconds")
        assert line_with(tree, "id000004").endswith("3 seconds")
        assert line_with(tree, "id000005").endswith("expired")
        assert line_with(tree, "id000006").endswith("no lease")
        assert "no lease" not in line_with(tree, "id000007")
        # under a third of the granted TTL left (3, 4) or expired (5): expiring
        assert "Svc  7 instances  (3 expiring)" in line_with(tree, "▾ Svc")

        # The countdown is worked out when drawn: a tick shows the new time.
        ttl.elapsed = 20.0
        tree.tick()
        await pilot.pause()
        assert line_with(tree, "id000001").endswith("10 seconds")
        assert line_with(tree, "id000003").endswith("expired")
        assert "(4 expiring)" in line_with(tree, "▾ Svc")


async def test_countdown_colours_follow_fraction_left() -> None:
    ttl = FakeTtl({1: (25.0, 30), 2: (8.0, 30), 3: (2.0, 30)})
    app = TreeApp(ttl)
    async with app.run_test(size=(100, 20)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state([kv("Svc", f"id00000{n}", lease=n) for n in (1, 2, 3)]))
        await pilot.pause()

        def countdown_style(y: int):  # the style of the last non-blank segment
            segments = [s for s in tree.render_line(y) if s.text.strip()]
            return segments[-1].style

        healthy = tree.get_component_rich_style("registry-tree--healthy", partial=True)
        warning = tree.get_component_rich_style("registry-tree--warning", partial=True)
        critical = tree.get_component_rich_style("registry-tree--critical", partial=True)
        assert len({healthy.color, warning.color, critical.color}) == 3
        assert countdown_style(1).color == healthy.color
        assert countdown_style(2).color == warning.color
        assert countdown_style(3).color == critical.color
        assert countdown_style(3).bold


async def test_changes_add_and_remove_rows_cursor_stays_on_key() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        state = make_state(BASIC)
        tree.set_state(state)
        await pilot.pause()
        target = key("OrderShippingService", "bbbbbbbb-0002")
        assert tree.select_key(target)
        await pilot.pause()
        before = tree.cursor_index

        changes: list[Change | None] = [
            state.apply_put(kv("Aardvark", "new00001", mod_revision=11)),  # new service above
            state.apply_put(kv("Alpha", "00000000-new", mod_revision=12)),  # above, same block
            state.apply_put(kv("OrderShippingService", "aaaa0000", mod_revision=13)),
            state.apply_delete(key("Zeta", "zzzzzzzz-0001"), 14),  # below, service gone
        ]
        tree.apply_changes([c for c in changes if c is not None])
        await pilot.pause()

        assert tree.highlighted_instance == target
        assert tree.highlighted_service == "OrderShippingService"
        assert tree.cursor_index == before + 4
        assert "bbbbbbbb" in screen_lines(tree)[tree.cursor_index]
        text = "\n".join(screen_lines(tree))
        assert "Aardvark" in text and "new00001" in text and "00000000" in text
        assert "Zeta" not in text and "zzzzzzzz" not in text
        assert "Alpha  2 instances" in line_with(tree, "▾ Alpha")
        assert "OrderShippingService  4 instances" in line_with(tree, "OrderShippingService")

        # An update keeps the row (and the cursor) and shows the new value.
        update = state.apply_put(
            kv("OrderShippingService", "bbbbbbbb-0002", "10.9.9.9:1", mod_revision=15)
        )
        assert update is not None
        tree.apply_changes([update])
        await pilot.pause()
        assert tree.highlighted_instance == target
        assert "10.9.9.9:1" in line_with(tree, "bbbbbbbb")

        # The highlighted key removed: the cursor goes to the nearest row of its service.
        app.highlighted.clear()
        gone = state.apply_delete(target, 16)
        assert gone is not None
        tree.apply_changes([gone])
        await pilot.pause()
        assert tree.highlighted_instance == key("OrderShippingService", "cccccccc-0003")
        assert app.highlighted == [(key("OrderShippingService", "cccccccc-0003"), None)]
        assert "bbbbbbbb" not in "\n".join(screen_lines(tree))


async def test_cursor_falls_back_to_previous_row_of_its_service() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        state = make_state(BASIC)
        tree.set_state(state)
        last = key("OrderShippingService", "cccccccc-0003")
        assert tree.select_key(last)
        change = state.apply_delete(last, 11)
        assert change is not None
        tree.apply_changes([change])
        await pilot.pause()
        assert tree.highlighted_instance == key("OrderShippingService", "bbbbbbbb-0002")


async def test_set_state_keeps_cursor_key() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(BASIC))
        target = key("Zeta", "zzzzzzzz-0001")
        assert tree.select_key(target)
        tree.set_state(make_state([kv("Aaa", f"a{n:07d}") for n in range(5)] + BASIC))
        await pilot.pause()
        assert tree.highlighted_instance == target
        assert "zzzzzzzz" in screen_lines(tree)[tree.cursor_index]


async def test_filter_narrows_rows() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(BASIC))
        await pilot.pause()
        everything = screen_lines(tree)

        tree.set_filter("10.0.0.2")  # by address
        await pilot.pause()
        lines = screen_lines(tree)
        assert len(lines) == 2
        assert "OrderShippingService  1 of 3 instances" in lines[0]
        assert "bbbbbbbb" in lines[1]

        tree.set_filter("AAAAAAAA")  # by id, case-insensitive
        await pilot.pause()
        assert [line.split()[0] for line in screen_lines(tree)[1:]] == ["aaaaaaaa-0001"]

        tree.set_filter("shipping")  # by service name: all of its instances
        await pilot.pause()
        lines = screen_lines(tree)
        assert len(lines) == 4
        assert "OrderShippingService  3 instances" in lines[0]

        tree.set_filter("no such thing")
        await pilot.pause()
        assert tree.row_count == 0  # no row; one line says why
        assert [line.strip() for line in screen_lines(tree) if line.strip()] == [
            "No instance matches 'no such thing' — press Esc to clear the filter"
        ]
        assert tree.highlighted_instance is None

        tree.set_filter("")
        await pilot.pause()
        assert screen_lines(tree) == everything


async def test_collapse_and_expand() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(BASIC))
        tree.focus()
        await pilot.pause()
        assert tree.select_key(key("OrderShippingService", "aaaaaaaa-0001"))
        await pilot.press("left")  # to the service row
        assert tree.highlighted_instance is None
        assert tree.highlighted_service == "OrderShippingService"

        await pilot.press("enter")
        assert tree.is_collapsed("OrderShippingService")
        line = line_with(tree, "OrderShippingService")
        assert line.startswith("▸ OrderShippingService  3 instances")
        assert "aaaaaaaa" not in "\n".join(screen_lines(tree))
        assert tree.highlighted_service == "OrderShippingService"

        await pilot.press("space")
        assert not tree.is_collapsed("OrderShippingService")
        assert line_with(tree, "OrderShippingService").startswith("▾")
        assert "aaaaaaaa" in "\n".join(screen_lines(tree))

        # Space on an instance collapses its service, and the cursor stays on the service.
        await pilot.press("down", "space")
        assert tree.is_collapsed("OrderShippingService")
        assert tree.highlighted_service == "OrderShippingService"
        assert tree.highlighted_instance is None

        # A click on a service row toggles it.
        row = screen_lines(tree).index(line_with(tree, "OrderShippingService"))
        await pilot.click(RegistryTree, offset=(3, row))
        await pilot.pause()
        assert not tree.is_collapsed("OrderShippingService")


async def test_keyboard_navigation_posts_highlighted() -> None:
    app = TreeApp()
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(BASIC))
        tree.focus()
        await pilot.pause()
        assert app.highlighted == [(None, "Alpha")]

        await pilot.press("down")
        await pilot.pause()
        assert app.highlighted[-1] == (key("Alpha", "11111111-0001"), None)
        assert tree.highlighted_service == "Alpha"

        await pilot.press("down")
        await pilot.pause()
        assert app.highlighted[-1] == (None, "OrderShippingService")

        await pilot.press("end")
        await pilot.pause()
        assert tree.highlighted_instance == b"/services/loose-key"
        assert app.highlighted[-1] == (b"/services/loose-key", None)

        await pilot.press("home")
        await pilot.pause()
        assert app.highlighted[-1] == (None, "Alpha")
        count = len(app.highlighted)
        await pilot.press("up")  # already at the top: nothing changes, nothing posted
        await pilot.pause()
        assert len(app.highlighted) == count

        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.selected == [key("Alpha", "11111111-0001")]


async def test_cursor_scrolls_into_view() -> None:
    app = TreeApp()
    kvs = [kv(f"S{s}", f"{s:02d}{n:06d}") for s in range(5) for n in range(20)]
    async with app.run_test(size=(80, 10)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        tree.focus()
        await pilot.pause()
        await pilot.press("pagedown", "pagedown")
        await pilot.pause()
        assert tree.scroll_y > 0
        assert tree.highlighted_instance is not None
        short = tree.highlighted_instance.rsplit(b"/", 1)[1][:8].decode()
        assert short in "\n".join(screen_lines(tree))

        await pilot.press("end")
        await pilot.pause()
        assert "04000019" in screen_lines(tree)[-1]
        await pilot.press("home")
        await pilot.pause()
        assert tree.scroll_y == 0
        assert screen_lines(tree)[0].startswith("▾ S0")


async def test_own_and_paused_markers() -> None:
    own = key("Svc", "own00001")
    paused = key("Svc", "own00002")
    app = TreeApp(own_keys={own, paused}, paused_keys={paused})
    async with app.run_test(size=(100, 20)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(
            make_state([kv("Svc", "own00001"), kv("Svc", "own00002"), kv("Svc", "other001")])
        )
        await pilot.pause()
        assert "★ own00001" in line_with(tree, "own00001")
        assert "paused" not in line_with(tree, "own00001")
        assert "★ own00002" in line_with(tree, "own00002")
        assert "paused" in line_with(tree, "own00002")
        assert "★" not in line_with(tree, "other001")

        tree.own_keys = set()
        await pilot.pause()
        assert "★" not in line_with(tree, "own00001")


async def test_view_stays_put_when_rows_come_and_go_above_it() -> None:
    app = TreeApp()
    kvs = [kv(f"S{s}", f"{s:02d}{n:06d}", mod_revision=2) for s in range(5) for n in range(20)]
    async with app.run_test(size=(80, 10)) as pilot:
        tree = app.query_one(RegistryTree)
        state = make_state(kvs)
        tree.set_state(state)
        tree.focus()
        target = key("S3", "03000005")
        assert tree.select_key(target)
        await pilot.pause()
        assert tree.scroll_y > 0
        before = screen_lines(tree)
        cursor_line = before.index(line_with(tree, "03000005"))

        changes = [
            state.apply_put(kv("S0", f"00new{n:03d}", mod_revision=20 + n)) for n in range(7)
        ]
        changes.append(state.apply_delete(key("S1", "01000003"), 40))
        tree.apply_changes([c for c in changes if c is not None])
        await pilot.pause()
        assert tree.highlighted_instance == target
        assert screen_lines(tree) == before
        assert screen_lines(tree).index(line_with(tree, "03000005")) == cursor_line

        # The filter keeps the cursor on its key while the key is still shown.
        tree.set_filter("030000")
        await pilot.pause()
        assert tree.highlighted_instance == target
        assert "03000005" in screen_lines(tree)[tree.cursor_index - round(tree.scroll_y)]


async def test_a_tick_repaints_only_the_lines_whose_countdown_changed() -> None:
    # Idle CPU: the 1 Hz tick must not repaint the whole tree (border, scrollbar, every
    # line), only the visible lines whose countdown (or a header's expiring count) moved.
    ttl = FakeTtl({1: (30.0, 60), 2: (7000.0, 7200)})
    kvs = [
        kv("Svc", "id000001", lease=1),  # seconds: changes every tick
        kv("Svc", "id000002", lease=2),  # "1 hour 56 minutes": the same for a minute
        kv("Svc", "id000003"),  # no lease: never changes
    ]
    app = TreeApp(ttl)
    async with app.run_test(size=(100, 20)) as pilot:
        tree = app.query_one(RegistryTree)
        tree.set_state(make_state(kvs))
        await pilot.pause()
        full: list[object] = []
        lines: list[tuple[int, int]] = []
        refresh, refresh_lines = tree.refresh, tree.refresh_lines

        def spy_refresh(*regions: object, **kw: object) -> object:
            if not regions:
                full.append(kw)
            return refresh(*regions, **kw)  # type: ignore[arg-type]

        def spy_lines(start: int, count: int = 1) -> None:
            lines.append((start, count))
            refresh_lines(start, count)

        tree.refresh = spy_refresh  # type: ignore[method-assign]
        tree.refresh_lines = spy_lines  # type: ignore[method-assign]
        ttl.elapsed = 1.0
        tree.tick()
        assert not full, "a tick repainted the whole tree"
        assert lines == [(1, 1)]  # the row of id000001 (row 0 is the Svc header)
        await pilot.pause()
        assert line_with(tree, "id000001").endswith("29 seconds")

        lines.clear()
        tree.tick()  # nothing moved since
        assert lines == [] and not full

        ttl.elapsed = 11.0  # id000001 drops under a third: the header's count changes too
        tree.tick()
        assert sorted(lines) == [(0, 2)] and not full
        await pilot.pause()
        assert "(1 expiring)" in line_with(tree, "▾ Svc")
