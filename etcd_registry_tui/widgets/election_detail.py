"""The side pane of the elections view: the highlighted election or candidate in full."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from etcd_registry_tui.registry.elections.state import (
    Candidate,
    Election,
    ElectionKind,
    name_text,
)
from etcd_registry_tui.registry.wording import revision_text
from etcd_registry_tui.widgets.elections_view import clip
from etcd_registry_tui.widgets.ttl_text import describe_ttl, format_seconds

#: The pane shows this much of a key or name, and of a value (the whole value: ``i``).
DETAIL_WIDTH = 120
DETAIL_VALUE_WIDTH = 160


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
        lost: str | None = None,
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
        count = len(election.candidates)

        def row(label: str, value: str, style: str = "") -> None:
            text.append(f"{label:<11}", style="bold")
            text.append(value + "\n", style=style)

        row("name", clip(name_text(election.name), DETAIL_WIDTH))
        row("kind", election.kind.value)
        row("candidates", f"{count} ({max(0, count - 1)} waiting)")
        if led_for is not None and count:
            row("led for", f"{format_seconds(int(led_for))} (since this dashboard saw it)")
        if candidate is None:
            candidate = election.leader
        if candidate is not None:
            place = election.place(candidate.key)
            if place is None:
                role = "gone from the queue"
            elif place == 0:
                role = "holder" if lock else "leader"
            else:
                role = f"waiting #{place}"
            text.append("\n")
            if lost is not None:  # ours, lost: whatever the watch still shows, it leads no more
                row("role", f"✗ lost — {lost}", "bold red")
                if place == 0:
                    row("leader", "not certain: the key may still stand until its lease goes")
            else:
                row(
                    "role",
                    role + ("  ★ own candidate" if own else "") + ("  ⏸ paused" if paused else ""),
                )
            if candidate.stands_in is None:
                row("queues", "by age only: not a candidate's key (clientv3 counts it)", "yellow")
            elif candidate.stands_in != election.name:
                row(
                    "queues",
                    f"as a candidate of {clip(name_text(candidate.stands_in), DETAIL_WIDTH)}",
                    "yellow",
                )
            row("key", clip(candidate.key_text, DETAIL_WIDTH))
            if candidate.lease:
                padded = f"{candidate.lease:016x}"
                lease = candidate.lease_hex
                row(
                    "lease",
                    lease if padded == lease else f"{lease} ({padded} in etcdctl lease list)",
                )
                row("TTL", describe_ttl(candidate.lease, *ttl))
            else:
                row("lease", "none (a permanent key)")
            row(
                "revisions",
                f"create {revision_text(candidate.create_revision)}"
                f" · mod {revision_text(candidate.mod_revision)}",
            )
            value = candidate.value_text()
            shown = clip(value, DETAIL_VALUE_WIDTH) or "(empty)"
            if len(value) > DETAIL_VALUE_WIDTH:
                shown += f"  ({len(value):,} characters: i shows them all)"
            row("value", shown)
        self.update(text)
