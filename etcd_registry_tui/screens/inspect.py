"""Full-screen view of one key: its value and everything etcd knows about it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import humanize
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from ..registry.model import Change, ChangeKind, Instance
from ..registry.wording import revision_text
from ..widgets.ttl_text import format_remaining, format_seconds, lease_level
from .inspect_source import TTL, InspectSource

#: Clock used for "first seen"; tests replace it to get stable output.
_now = time.time


def ttl_class(remaining: float | None, granted: int | None, lease: int) -> str:
    """CSS class for a remaining TTL, matching the tree's colours and the help legend."""
    if not lease:
        return "ttl-none"
    if remaining is None:
        return "ttl-unknown"
    return {"critical": "ttl-critical", "warning": "ttl-low", "healthy": "ttl-ok"}[
        lease_level(remaining, granted)
    ]


def describe_remaining(remaining: float | None, granted: int | None, lease: int) -> str:
    if not lease:
        return "— (permanent key)"
    if remaining is None:
        return "unknown (not asked etcd yet)"
    if remaining <= 0:
        return "expired"
    text = format_remaining(remaining)
    if granted:
        text += f" ({min(100, round(100 * remaining / granted))}% left)"
    return text


def describe_granted(granted: int | None, lease: int) -> str:
    if not lease:
        return "—"
    if granted is None:
        return "unknown"
    if granted < 60:
        return f"{granted} s"
    return f"{granted} s ({format_seconds(granted)})"


def describe_lease_keys(count: int, lease: int) -> str:
    if not lease:
        return "—"
    if count <= 1:
        return "1 (only this key)"
    others = count - 1
    return f"{count} (this and {others} other{'s' if others != 1 else ''})"


def describe_first_seen(first_seen: float) -> str:
    ago = humanize.naturaltime(timedelta(seconds=max(0.0, _now() - first_seen)))
    stamp = datetime.fromtimestamp(first_seen, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{ago} ({stamp})"


def copy_text(instance: Instance) -> str:
    """What ``c`` copies: the value as stored when it is text, else the hex dump."""
    try:
        return instance.value.decode("utf-8")
    except UnicodeDecodeError:
        return instance.value_text()


def describe_deleted(revision: int, exact: bool) -> str:
    """When the key went: the revision of its delete, or (``exact`` false) of the reloaded
    snapshot that found it gone."""
    if exact:
        return f"deleted at rev {revision_text(revision)}"
    return f"deleted by rev {revision_text(revision)} (gone when the registry was reloaded)"


class InspectScreen(Screen[None]):
    """One instance in full: key, value (highlighted JSON or raw text/hex) and metadata.

    ``ttl`` is ``(remaining seconds, granted TTL)`` as the lease tracker reports it;
    ``lease_keys`` is how many keys are bound to the lease (this one included); ``own``
    marks an instance registered from this dashboard. Opened from the dashboard
    (:meth:`opened`) it follows its key through its :class:`InspectSource`: the app calls
    :meth:`follow_changes` after each flush, :meth:`follow_tick` every second,
    :meth:`follow_history` when the history held moves on and :meth:`follow_probe` with
    each probe result; :meth:`show_instance`, :meth:`show_deleted` and :meth:`update_ttl`
    are what those use.
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("c", "copy_value", "Copy value"),
        Binding("k", "copy_key", "Copy key"),
    ]

    DEFAULT_CSS = """
    InspectScreen #heading {
        height: auto;
        padding: 0 1;
        background: $panel;
    }
    InspectScreen #key {
        text-style: bold;
    }
    InspectScreen #deleted {
        color: $error;
        text-style: bold;
    }
    InspectScreen #value-pane.deleted {
        color: $text-muted;
    }
    InspectScreen #meta {
        grid-size: 4;
        grid-columns: 15 3fr 15 2fr;
        grid-rows: auto;
        grid-gutter: 0 1;
        height: auto;
        padding: 0 1;
        border-bottom: solid $primary;
    }
    InspectScreen #meta Label {
        width: 100%;
    }
    InspectScreen #meta .meta-name {
        color: $text-muted;
    }
    InspectScreen #value-pane {
        height: 1fr;
        padding: 0 1;
    }
    InspectScreen #problems {
        color: $error;
        text-style: bold;
        margin-bottom: 1;
    }
    InspectScreen .ttl-ok { color: $success; }
    InspectScreen .ttl-low { color: $warning; }
    InspectScreen .ttl-critical { color: $error; text-style: bold; }
    InspectScreen .ttl-none, InspectScreen .ttl-unknown { color: $text-muted; }
    """

    def __init__(
        self,
        instance: Instance,
        ttl: TTL = (None, None),
        lease_keys: int = 0,
        own: bool = False,
        *,
        timeline: tuple[list[str], list[str]] = ([], []),
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.instance = instance
        self.ttl: TTL = ttl
        self.lease_keys = lease_keys
        self.own = own
        #: Revision at which the key was deleted; None while it exists.
        self.deleted_at: int | None = None
        #: The last probe of the address and when (None: no probe line).
        self.probe_text: str | None = None
        self._deleted_exact = True
        #: (this key's versions, earlier registrations at the same address), display-safe.
        self.timeline = timeline
        #: What the view follows (None: a view of a fixed instance).
        self.source: InspectSource | None = None
        self._history_mark: object = None

    @classmethod
    def opened(cls, instance: Instance, source: InspectSource) -> InspectScreen:
        """The view of ``instance`` as the dashboard holds it, following it from now on."""
        key = instance.raw_key
        screen = cls(
            instance,
            source.ttl(instance.lease),
            source.keys_on_lease(instance.lease),
            source.is_own(key),
            timeline=source.timeline(instance),
        )
        screen.source = source
        screen._history_mark = source.history_mark()
        screen.probe_text = source.probe_text(key)
        return screen

    # -- following the dashboard (the only ways in) -------------------------------------
    def follow_changes(self, changes: Mapping[bytes, Change] | None) -> None:
        """After a flush: ``changes`` are those just applied, ``None`` after a snapshot
        (then a key found missing was deleted by the snapshot's revision)."""
        source = self.source
        if source is None:
            return
        key = self.instance.raw_key
        change = changes.get(key) if changes is not None else None
        if change is not None and change.kind is ChangeKind.DELETE:
            self.show_deleted(change.revision, last=change.instance)
            return
        inst = source.instance(key)
        if inst is None:
            if changes is None and self.deleted_at is None:
                self.show_deleted(source.revision, exact=False)
            return
        self.show_instance(
            inst, source.ttl(inst.lease), source.keys_on_lease(inst.lease), source.is_own(key)
        )

    def follow_tick(self) -> None:
        """Every second: the countdown."""
        if self.source is not None and self.deleted_at is None:
            self.update_ttl(self.source.ttl(self.instance.lease))

    def follow_history(self) -> None:
        """The history held moved on: the timeline, when it changed."""
        source = self.source
        if source is None or not self.is_mounted:
            return
        mark = source.history_mark()
        if mark != self._history_mark:
            self._history_mark = mark
            self.set_timeline(source.timeline(self.instance))

    def follow_probe(self, key: bytes) -> None:
        """A new probe result for ``key``: shown when it is this view's key."""
        if self.source is not None and key == self.instance.raw_key:
            text = self.source.probe_text(key)
            if text is not None:
                self.set_probe(text)

    # -- building ------------------------------------------------------------
    def _value_renderable(self) -> Syntax | Text:
        # Only the display-safe preview is drawn; ``c`` copies the value as stored.
        inst = self.instance
        if self.deleted_at is not None:
            # Greyed, without highlighting: a value that is no longer in etcd.
            return Text(inst.display_value() if inst.value else "(empty value)", style="dim")
        if inst.fields is not None:
            return Syntax(
                inst.display_value(),
                "json",
                word_wrap=True,
                background_color="default",
                theme="monokai",
            )
        if not inst.value:
            return Text("(empty value)", style="italic")
        return Text(inst.display_value())

    def _meta_rows(self) -> list[tuple[str, str, str]]:
        """(row id, label, value) for the metadata grid, filled left pair, right pair."""
        inst = self.instance
        remaining, granted = self.ttl
        lease = inst.lease
        rows = [
            ("service", "Service", inst.display_service or "—"),
            ("lease", "Lease", inst.lease_hex if lease else "none (permanent key)"),
            ("instance-id", "Instance id", inst.display_id or "—"),
            ("granted-ttl", "Granted TTL", describe_granted(granted, lease)),
            ("address", "Address", inst.display_address or "—"),
            ("remaining-ttl", "Remaining TTL", self._describe_remaining()),
            ("first-seen", "First seen", describe_first_seen(inst.first_seen)),
            ("lease-keys", "Keys on lease", describe_lease_keys(self.lease_keys, lease)),
            ("create-revision", "Created at rev", revision_text(inst.create_revision)),
            ("version", "Version", f"{inst.version:,}"),
            ("mod-revision", "Modified at rev", revision_text(inst.mod_revision)),
        ]
        if self.own:
            rows.append(("own", "Registered by", "★ this dashboard"))
        if self.probe_text is not None:
            rows.append(("probe", "Probe", self.probe_text))
        return rows

    def compose(self) -> ComposeResult:
        inst = self.instance
        with Vertical(id="heading"):
            yield Label(Text(inst.display_key), id="key")
            if self.deleted_at is not None:  # gone before the screen was shown
                yield self._deleted_banner()
        with Grid(id="meta"):
            for row_id, label, value in self._meta_rows():
                name_id = "meta-name-own" if row_id == "own" else None
                yield Label(label, id=name_id, classes="meta-name", markup=False)
                yield Label(value, id=f"meta-{row_id}", markup=False)
        with VerticalScroll(
            id="value-pane", classes="deleted" if self.deleted_at is not None else ""
        ):
            if inst.problems:
                problems = "\n".join(f"⚠ {problem}" for problem in inst.display_problems)
                yield Static(problems, id="problems", markup=False)
            yield Static(self._value_renderable(), id="value")
            yield Static(self._timeline_text(), id="timeline")
        yield Footer()

    def _timeline_text(self) -> Text:
        versions, earlier = self.timeline
        text = Text()
        if versions:
            text.append("\nHistory of this key\n", "bold")
            for line in versions:
                text.append(line + "\n")
        if earlier:
            text.append("\nEarlier registrations at this address\n", "bold")
            for line in earlier:
                text.append(line + "\n")
        return text

    def set_timeline(self, timeline: tuple[list[str], list[str]]) -> None:
        if timeline != self.timeline:
            self.timeline = timeline
            self.query_one("#timeline", Static).update(self._timeline_text())

    def on_mount(self) -> None:
        self.query_one("#value-pane").focus()
        self._style_remaining()

    # -- live TTL ------------------------------------------------------------
    def _describe_remaining(self) -> str:
        if self.deleted_at is not None:
            return "— (key deleted)"
        remaining, granted = self.ttl
        return describe_remaining(remaining, granted, self.instance.lease)

    def _style_remaining(self) -> None:
        remaining, granted = self.ttl
        label = self.query_one("#meta-remaining-ttl", Label)
        wanted = (
            "ttl-none"
            if self.deleted_at is not None
            else ttl_class(remaining, granted, self.instance.lease)
        )
        for cls in ("ttl-ok", "ttl-low", "ttl-critical", "ttl-none", "ttl-unknown"):
            label.set_class(cls == wanted, cls)

    def update_ttl(self, ttl: TTL) -> None:
        """Show a new ``(remaining, granted)``; only touches the two TTL labels."""
        if ttl == self.ttl or self.deleted_at is not None:
            return
        self.ttl = ttl
        if not self.is_mounted:
            return
        _, granted = ttl
        lease = self.instance.lease
        for row_id, text in (
            ("remaining-ttl", self._describe_remaining()),
            ("granted-ttl", describe_granted(granted, lease)),
        ):
            label = self.query_one(f"#meta-{row_id}", Label)
            if str(label.content) != text:
                label.update(text)
        self._style_remaining()

    # -- following the key ---------------------------------------------------
    def show_instance(
        self, instance: Instance, ttl: TTL = (None, None), lease_keys: int = 0, own: bool = False
    ) -> None:
        """The key as it is now (a new value, lease or metadata, or back after a delete)."""
        same = instance is self.instance and self.deleted_at is None
        if same and (lease_keys, own) == (self.lease_keys, self.own):
            self.update_ttl(ttl)
            return
        was_deleted = self.deleted_at is not None
        self.instance, self.ttl, self.lease_keys, self.own = instance, ttl, lease_keys, own
        self.deleted_at = None
        if not self.is_mounted:
            return
        self._refresh_meta()
        if not same:
            self._refresh_value()
        if was_deleted:
            self.query("#deleted").remove()
            self.query_one("#value-pane").remove_class("deleted")

    def show_deleted(self, revision: int, exact: bool = True, last: Instance | None = None) -> None:
        """The key is gone (deleted, expired or its lease revoked) at ``revision``; ``last``
        is its value just before (it may have come back and gone again since the view last
        showed it: then the newer delete and value replace the older)."""
        again = self.deleted_at is not None
        if again and revision <= (self.deleted_at or 0):
            return
        if last is not None:
            self.instance = last
        self.deleted_at, self._deleted_exact = revision, exact
        if not self.is_mounted:
            return
        banner = self.query("#deleted")
        if again and banner:
            banner.first(Static).update(self._deleted_banner_text())
        else:
            self.query_one("#heading").mount(self._deleted_banner())
        self.query_one("#value-pane").add_class("deleted")
        self._refresh_meta()
        self._refresh_value()

    def _deleted_banner_text(self) -> str:
        assert self.deleted_at is not None
        text = describe_deleted(self.deleted_at, self._deleted_exact)
        return f"{text} — showing the last known value"

    def _deleted_banner(self) -> Static:
        return Static(self._deleted_banner_text(), id="deleted", markup=False)

    def _refresh_meta(self) -> None:
        self._sync_own_row()
        for row_id, _, value in self._meta_rows():
            found = self.query(f"#meta-{row_id}")
            if found:
                label = found.first(Label)
                if str(label.content) != value:
                    label.update(value)
        self._style_remaining()

    def _sync_own_row(self) -> None:
        """The "Registered by" row is there exactly while the instance is ours."""
        present = bool(self.query("#meta-own"))
        if self.own and not present:
            self.query_one("#meta", Grid).mount(
                Label("Registered by", id="meta-name-own", classes="meta-name", markup=False),
                Label("★ this dashboard", id="meta-own", markup=False),
            )
        elif not self.own and present:
            self.query("#meta-name-own").remove()
            self.query("#meta-own").remove()

    def set_probe(self, text: str) -> None:
        """A new probe result for this instance's address."""
        self.probe_text = text
        if not self.is_mounted:
            return
        if not self.query("#meta-probe"):
            self.query_one("#meta", Grid).mount(
                Label("Probe", classes="meta-name", markup=False),
                Label(text, id="meta-probe", markup=False),
            )
        self._refresh_meta()

    def _refresh_value(self) -> None:
        self.query_one("#value", Static).update(self._value_renderable())
        problems = self.instance.problems
        text = "\n".join(f"⚠ {problem}" for problem in problems)
        found = self.query("#problems")
        if found and problems:
            found.first(Static).update(text)
        elif found:
            found.remove()
        elif problems:
            self.query_one("#value-pane").mount(
                Static(text, id="problems", markup=False), before="#value"
            )

    # -- actions -------------------------------------------------------------
    def action_copy_value(self) -> None:
        self.app.copy_to_clipboard(copy_text(self.instance))
        if self.deleted_at is not None:
            self.notify(
                f"Copied the last known value of {self.instance.display_key}"
                f" ({describe_deleted(self.deleted_at, self._deleted_exact)})",
                severity="warning",
                markup=False,
            )
            return
        self.notify(f"Copied value of {self.instance.display_key}", markup=False)

    def action_copy_key(self) -> None:
        self.app.copy_to_clipboard(self.instance.key)
        self.notify(f"Copied key {self.instance.display_key}", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
