"""The detail pane: value and etcd metadata of the highlighted instance.

Everything shown from a key or value is the instance's display-safe text, always as a
:class:`~rich.text.Text` (never markup): an address of ``[/]`` is just three characters.
"""

from __future__ import annotations

import time

import humanize
from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from ..registry.layouts import FRAMEWORKS
from ..registry.model import Instance
from ..registry.sanitize import safe_line
from ..registry.wording import lease_text, plural, revision_text
from .ttl_text import describe_ttl

LABEL_WIDTH = 10

_UNSHOWN = object()


def lease_row_text(lease: int, keys: int) -> str:
    """The detail pane's lease row: the id as etcdctl writes it, and who else is on it."""
    shared = "no other key on it" if keys <= 1 else f"{plural(keys, 'key')} share it"
    return f"{lease_text(lease)}  ({shared})"


class LiveLine(Widget):
    """One label and a value that changes every second, redrawn without a layout pass."""

    DEFAULT_CSS = "LiveLine { height: 1; }"

    def __init__(self, label: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.label = label
        self._value = Text()

    def set(self, value: str | Text) -> None:
        text = value if isinstance(value, Text) else Text(value)
        if text.plain != self._value.plain or text.style != self._value.style:
            self._value = text
            self.refresh()

    def render(self) -> Text:
        line = Text()
        line.append(f"{self.label:<{LABEL_WIDTH}}", "bold")
        line.append(" ")
        line.append_text(self._value)
        return line


class DetailPane(VerticalScroll):
    """Shows one instance; ``show(None)`` shows a hint instead."""

    DEFAULT_CSS = """
    DetailPane { height: 1fr; }
    DetailPane > #detail-meta { height: auto; }
    DetailPane > #detail-value { height: auto; margin-top: 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.instance: Instance | None = None
        self._ttl: tuple[float | None, int | None] = (None, None)
        self._lease_keys = 0
        self._own = False
        self._summary: object = _UNSHOWN
        self._meta = Static(id="detail-meta")
        self._ttl_line = LiveLine("TTL", id="detail-ttl")
        self._seen_line = LiveLine("first seen", id="detail-seen")
        self._value = Static(id="detail-value")

    def compose(self):
        yield self._meta
        yield self._ttl_line
        yield self._seen_line
        yield self._value

    def on_mount(self) -> None:
        self.border_title = "Instance"
        self.show(None)

    def show(
        self,
        instance: Instance | None,
        ttl: tuple[float | None, int | None] = (None, None),
        lease_keys: int = 0,
        own: bool = False,
        service_summary: str | None = None,
    ) -> None:
        changed = instance is not self.instance
        same_meta = (lease_keys, own) == (self._lease_keys, self._own)
        if instance is not None and not changed and same_meta:
            # Called after every batch of changes: nothing to redraw but the live lines.
            self._ttl = ttl
            self._update_live()
            return
        if instance is None and self.instance is None and service_summary == self._summary:
            return
        self.instance, self._ttl, self._lease_keys, self._own = instance, ttl, lease_keys, own
        self._summary = service_summary
        live = instance is not None
        self._ttl_line.display = self._seen_line.display = live
        if instance is None:
            self._meta.update(
                Text(safe_line(service_summary or "Highlight an instance to see it here."), "dim")
            )
            self._value.update("")
            return
        self._meta.update(self._meta_table())
        self._update_live()
        if changed:
            self._value.update(value_renderable(instance))

    def update_ttl(self, ttl: tuple[float | None, int | None]) -> None:
        """Called every second: only the two live lines are redrawn, no layout."""
        if self.instance is not None:
            self._ttl = ttl
            self._update_live()

    def _update_live(self) -> None:
        inst = self.instance
        assert inst is not None
        remaining, granted = self._ttl
        self._ttl_line.set(describe_ttl(inst.lease, remaining, granted))
        self._seen_line.set(humanize.naturaltime(time.time() - inst.first_seen))

    def _meta_table(self) -> Table:
        inst = self.instance
        assert inst is not None
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True, width=LABEL_WIDTH)
        table.add_column(overflow="fold")
        table.add_row("key", Text(inst.display_key))
        table.add_row("service", Text(inst.display_service or "—"))
        layout = inst.layout
        if layout is not None:
            table.add_row("layout", Text(f"{layout.layout.value} — {FRAMEWORKS[layout.layout]}"))
        if layout is not None and len(layout.addresses) > 1:
            for n, address in enumerate(layout.addresses):
                table.add_row("address" if n == 0 else "", Text(safe_line(address)))
        else:
            table.add_row(
                "address", Text(inst.display_address or "(none)", "" if inst.address else "dim")
            )
        if layout is not None:
            if layout.healthy is not None:
                table.add_row("health", Text("healthy" if layout.healthy else "✗ not healthy"))
            for name, value in layout.fields:
                table.add_row(safe_line(name, LABEL_WIDTH), Text(safe_line(value)))
        if inst.lease:
            table.add_row("lease", Text(lease_row_text(inst.lease, self._lease_keys)))
        else:
            table.add_row("lease", Text("none — permanent key", "dim"))
        table.add_row(
            "revisions",
            Text(
                f"create {revision_text(inst.create_revision)}"
                f" · mod {revision_text(inst.mod_revision)} · version {inst.version:,}"
            ),
        )
        if self._own:
            table.add_row("owner", Text("★ registered by this dashboard", "bold"))
        for problem in inst.display_problems:
            table.add_row(Text("⚠", "yellow"), Text(problem, "yellow"))
        return table


def value_renderable(inst: Instance) -> RenderableType:
    text = inst.display_value()
    if inst.fields is not None:
        return Syntax(text, "json", theme="ansi_dark", word_wrap=True, background_color="default")
    title = "hex dump" if "value is not UTF-8" in (inst.parse_error or "") else "raw value"
    return Group(Text(title, "bold yellow"), Text(text))
