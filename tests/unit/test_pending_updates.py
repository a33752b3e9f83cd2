"""The screen's update pipeline, without Textual: coalescing, one wake-up, pacing."""

from __future__ import annotations

from test_model import inst

from etcd_registry_tui.pending_updates import (
    BUSY_CHANGES,
    BUSY_FLUSH_INTERVAL,
    FLUSH_INTERVAL,
    PendingUpdates,
)
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import Change, ChangeKind


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def change(key: str, revision: int, kind: ChangeKind = ChangeKind.UPDATE) -> Change:
    return Change(kind, inst(f"/services/S/{key}", {"V": revision}, mod=revision), None, revision)


def pipeline() -> tuple[PendingUpdates, list[int], Clock]:
    wakes: list[int] = []
    clock = Clock()

    def wake() -> bool:
        wakes.append(1)
        return True

    return PendingUpdates(wake, clock), wakes, clock


def test_changes_coalesce_per_key_and_one_wake_until_it_is_handled() -> None:
    pending, wakes, _ = pipeline()
    pending.add_changes([change("a", 2), change("b", 3)])
    pending.add_changes([change("a", 4)])
    pending.add_log([LogEntry(LogKind.PUT, "a")])
    assert len(wakes) == 1 and pending.flush_due and pending.holds_changes
    assert pending.woken() is not None  # the message arrived; nothing flushed yet
    taken = pending.take()
    assert {k: c.revision for k, c in taken.changes.items()} == {
        b"/services/S/a": 4,
        b"/services/S/b": 3,
    }
    assert [e.key for e in taken.log] == ["a"] and not taken.snapshot
    assert not pending.holds_changes and pending.take().changes == {}
    pending.add_changes([change("c", 5)])
    assert len(wakes) == 2  # a new wake once the first was handled


def test_a_snapshot_drops_the_changes_before_it() -> None:
    pending, _, _ = pipeline()
    pending.add_changes([change("a", 2)])
    pending.add_snapshot()
    taken = pending.take()
    assert taken.snapshot and taken.changes == {}


def test_a_lone_change_flushes_at_once_and_bursts_are_paced() -> None:
    pending, wakes, clock = pipeline()
    pending.add_changes([change("a", 2)])
    wait = pending.woken()
    assert wait is not None and wait <= 0  # quiet before: at once
    pending.flushed(len(pending.take().changes))
    pending.add_changes([change("b", 3)])
    clock.t += 0.01
    wait = pending.woken()
    assert wait is not None and abs(wait - (FLUSH_INTERVAL - 0.01)) < 1e-9
    pending.timer_set()
    pending.add_changes([change("c", 4)])  # the timed flush takes these too
    assert len(wakes) == 2
    pending.timer_fired()
    pending.flushed(BUSY_CHANGES)
    pending.add_changes([change("d", 5)])
    wait = pending.woken()
    assert wait is not None and abs(wait - BUSY_FLUSH_INTERVAL) < 1e-9  # under load: slower


def test_a_wake_that_finds_a_timer_set_waits_for_it() -> None:
    pending, _, _ = pipeline()
    pending.add_changes([change("a", 2)])
    pending.timer_set()
    assert pending.woken() is None


def test_the_key_to_select_stays_until_selected_and_history_is_taken_once() -> None:
    pending, _, _ = pipeline()
    pending.select_when_shown(b"/services/S/a")
    pending.add_history([LogEntry(LogKind.PUT, "old", historic=True)])
    assert pending.holds_history
    taken = pending.take()
    assert taken.history is not None and [e.key for e in taken.history] == ["old"]
    assert pending.wanted_key == b"/services/S/a"  # not shown yet: kept for the next flush
    assert pending.take().history is None and not pending.holds_history
    pending.selected()
    assert pending.wanted_key is None
