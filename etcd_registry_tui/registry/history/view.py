"""Time travel: the registry as it was at any revision the history covers.

Built from the live state and the held events by undoing them newest first (each event
carries the key before and after it), so stepping one revision costs only that
revision's changes, never a read of the whole registry.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..model import Change, KeyValueLike, RegistryState
from .store import EventKind, HeldValue, History, HistoryEvent


class PastView:
    """A copy of the registry that can be moved to any revision from ``floor`` to ``live``."""

    def __init__(self, live: RegistryState, history: History) -> None:
        self.state = live.copy()
        self.live_revision = live.revision
        self.events: list[HistoryEvent] = [e for e in history if e.revision <= live.revision]
        self.floor = max(history.floor, 0)
        #: etcd confirmed the history read back is whole (see :attr:`History.complete`).
        self.complete = history.complete or not history.loaded
        self.revision = live.revision
        self._applied = len(self.events)  # events[:_applied] are in the state
        self._revisions: list[int] | None = None
        #: Keys whose value at the view's revision the history did not keep (too large):
        #: key -> (the value's mod revision, its size and digest). Their instances in
        #: :attr:`state` have an empty value until :meth:`fill` gives the real one.
        self.missing: dict[bytes, tuple[int, HeldValue]] = {}

    def extend(self, history: History, live_revision: int) -> None:
        """The live registry moved on to ``live_revision``: take in the events held after
        the view's live revision, so the view can go up to the new one."""
        if live_revision <= self.live_revision:
            return
        new: list[HistoryEvent] = []
        for event in reversed(history.events):
            if event.revision <= self.live_revision:
                break
            if event.revision <= live_revision:
                new.append(event)
        new.reverse()
        self.events.extend(new)
        self.live_revision = live_revision
        self._revisions = None

    def revisions(self) -> list[int]:
        """The revisions one can step to: each that changed the registry, oldest first."""
        if self._revisions is None:
            seen = sorted({e.revision for e in self.events if e.revision > self.floor})
            if not seen or seen[-1] != self.live_revision:
                seen.append(self.live_revision)
            self._revisions = seen
        return self._revisions

    def changes_at(self, revision: int) -> list[HistoryEvent]:
        events = self.events
        start = bisect_left(events, revision, key=lambda e: e.revision)
        end = bisect_right(events, revision, key=lambda e: e.revision)
        return events[start:end]

    def go(self, target: int) -> list[Change]:
        """Move to ``target`` (kept between ``floor`` and the live revision); returns the
        changes made to :attr:`state`, in order."""
        target = max(self.floor, min(target, self.live_revision))
        changes: list[Change] = []
        events, state = self.events, self.state
        while self._applied > 0 and events[self._applied - 1].revision > target:
            self._applied -= 1
            e = events[self._applied]
            before = None if e.kind is EventKind.PUT and e.prev is None else e.prev
            change = state.restore(e.key, before, target)
            self._note(e.key, before, e.prev_held)
            if change is not None:
                changes.append(change)
        while self._applied < len(events) and events[self._applied].revision <= target:
            e = events[self._applied]
            self._applied += 1
            change = state.restore(e.key, e.kv, target)
            self._note(e.key, e.kv, e.kv_held)
            if change is not None:
                changes.append(change)
        state.revision = self.revision = target
        return changes

    def _note(self, key: bytes, kv: KeyValueLike | None, held: HeldValue | None) -> None:
        if kv is not None and held is not None:
            self.missing[key] = (kv.mod_revision, held)
        else:
            self.missing.pop(key, None)

    def fill(self, key: bytes, kv: KeyValueLike) -> list[Change]:
        """The value of a :attr:`missing` key, read from etcd: put in the state if it is
        the one the history names (same mod revision, size and digest)."""
        wanted = self.missing.get(key)
        if wanted is None or wanted[0] != kv.mod_revision or HeldValue.of(kv.value) != wanted[1]:
            return []
        del self.missing[key]
        gone = self.state.restore(key, None, self.revision)
        back = self.state.restore(key, kv, self.revision)
        return [c for c in (gone, back) if c is not None]

    def step(self, delta: int) -> list[Change]:
        """One registry-changing revision back (``-1``) or forward (``+1``)."""
        revisions = self.revisions()
        if delta < 0:
            index = bisect_left(revisions, self.revision)
            # Before the oldest change: the state just before it.
            target = revisions[index - 1] if index else max(self.floor, revisions[0] - 1)
        else:
            index = bisect_right(revisions, self.revision)
            target = revisions[index] if index < len(revisions) else self.live_revision
        return self.go(target)

    @property
    def oldest(self) -> int:
        revisions = self.revisions()
        return max(self.floor, revisions[0] - 1) if revisions else self.live_revision
