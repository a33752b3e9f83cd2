"""The side pane of the elections view: the highlighted election or candidate in full."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from etcd_registry_tui.registry.elections import Candidate, Election, ElectionKind
from etcd_registry_tui.registry.wording import revision_text
from etcd_registry_tui.widgets.elections_view import safe
from etcd_registry_tui.widgets.ttl_text import describe_ttl, format_seconds


class ElectionDetail(Static):
    """Key, value, lease, revisions and TTL of a candidate; an election's summary."""

    DEFAULT_CSS = """
    ElectionDetail { height: 3fr; }
    """

    def on_mount(self) -> None:
        self.border_title = "Election"

    def show(
        self,
        election: Election | None,
        candidate: Candidate | None,
        ttl: tuple[float | None, int | None] = (None, None),
        own: bool = False,
        paused: bool = False,
        led_for: float | None = None,
    ) -> None:
        text = Text(no_wrap=False)
        if election is None:
            text.append("No election highlighted.\n\n", style="dim")
            text.append(
                "Elections and locks are found by their keys: NAME/<lease id> bound to that "
                "lease, as etcdctl elect/lock, Go's concurrency package and Node's etcd3 "
                "write them. c campaigns in one.",
                style="dim",
            )
            self.update(text)
            return
        lock = election.kind is ElectionKind.LOCK
        queue = election.queue()

        def row(label: str, value: str, style: str = "") -> None:
            text.append(f"{label:<11}", style="bold")
            text.append(value + "\n", style=style)

        row("name", safe(election.name))
        row("kind", election.kind.value)
        row("candidates", f"{len(queue)} ({max(0, len(queue) - 1)} waiting)")
        if led_for is not None and queue:
            row("led for", f"{format_seconds(int(led_for))} (since this dashboard saw it)")
        if candidate is None:
            candidate = queue[0] if queue else None
        if candidate is not None:
            place = next((i for i, c in enumerate(queue) if c.key == candidate.key), 0)
            role = ("holder" if lock else "leader") if place == 0 else f"waiting #{place}"
            text.append("\n")
            row(
                "role",
                role + ("  ★ own candidate" if own else "") + ("  ⏸ paused" if paused else ""),
            )
            row("key", safe(candidate.key_text))
            row("value", safe(candidate.value_text()) or "(empty)")
            padded = f"{candidate.lease:016x}"
            lease = candidate.lease_hex
            row("lease", lease if padded == lease else f"{lease} ({padded} in etcdctl lease list)")
            row("TTL", describe_ttl(candidate.lease, *ttl))
            row(
                "revisions",
                f"create {revision_text(candidate.create_revision)}"
                f" · mod {revision_text(candidate.mod_revision)}",
            )
        self.update(text)
