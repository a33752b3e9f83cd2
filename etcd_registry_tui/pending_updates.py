"""What the data layer brought and the screen has not shown yet, and when to show it.

:class:`PendingUpdates` is the one owner of the screen's update pipeline: the session's
batches (coalesced per key: the latest state of a key wins), log entries, the history read
at launch, a key to select once it is on screen, and the pacing of flushes (at most one
every :data:`FLUSH_INTERVAL`, :data:`BUSY_FLUSH_INTERVAL` under sustained load; a lone
change after a quiet spell is shown at once). Everything that reaches the screen from the
data layer goes through its ``add_*`` methods; the app's flush takes it all with
:meth:`PendingUpdates.take`.

It is a plain object (no Textual): the app gives it ``wake``, which asks for a flush (it
posts one message, and says whether it did), and ``now``, a monotonic clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .registry.log_entries import LogEntry
from .registry.model import Change

#: The screen takes in what the watch brought at most this often. In between, changes are
#: coalesced per key, so the UI's work follows what is on screen, not how fast etcd changes.
FLUSH_INTERVAL = 1 / 20
#: Under sustained load (the last flush applied at least BUSY_CHANGES changes) the screen
#: takes them in ten times a second: a frame costs about as much whatever it shows, and the
#: event loop's time goes to keeping up with etcd instead.
BUSY_FLUSH_INTERVAL = 0.1
BUSY_CHANGES = 20


@dataclass(slots=True)
class Taken:
    """What one flush applies."""

    #: The whole state is to be drawn again (a snapshot was reloaded); ``changes`` is empty.
    snapshot: bool
    #: The latest change of each key since the last flush.
    changes: dict[bytes, Change]
    #: New event log entries, oldest first.
    log: list[LogEntry]
    #: The history read at launch, to go under the live entries (None: not arrived).
    history: list[LogEntry] | None


@dataclass(slots=True)
class PendingUpdates:
    """The screen's update pipeline (see the module's docstring)."""

    wake: Callable[[], bool]
    now: Callable[[], float] = time.monotonic
    _changes: dict[bytes, Change] = field(default_factory=dict)
    _snapshot: bool = False
    _log: list[LogEntry] = field(default_factory=list)
    _history: list[LogEntry] | None = None
    _select: bytes | None = None
    _woken: bool = False  # a wake message is on its way and not handled yet
    _timer: bool = False  # a timed flush is set
    _last_flush: float = 0.0
    _last_size: int = 0

    # -- what comes in -----------------------------------------------------------------
    def add_changes(self, changes: Iterable[Change]) -> None:
        pending = self._changes
        for change in changes:
            pending[change.key] = change
        self._ask()

    def add_snapshot(self, wake: bool = True) -> None:
        """The session reloaded its state: the next flush draws it whole (``wake``: ask
        for that flush; not when the caller flushes at once)."""
        self._snapshot = True
        self._changes.clear()
        if wake:
            self._ask()

    def add_log(self, entries: Iterable[LogEntry]) -> None:
        self._log.extend(entries)
        self._ask()

    def add_history(self, entries: list[LogEntry]) -> None:
        self._history = entries
        self._ask()

    def select_when_shown(self, key: bytes | None) -> None:
        """Select ``key`` at the first flush that finds it (None: nothing to select)."""
        self._select = key

    # -- what the app asks -------------------------------------------------------------
    @property
    def holds_changes(self) -> bool:
        """Changes wait for a flush: the tree is behind the session's state."""
        return bool(self._changes) or self._snapshot

    @property
    def flush_due(self) -> bool:
        """A flush was asked for and has not run yet."""
        return self._woken or self._timer

    @property
    def holds_history(self) -> bool:
        """The history read at launch arrived and waits for a flush."""
        return self._history is not None

    @property
    def wanted_key(self) -> bytes | None:
        return self._select

    def has_change(self, key: bytes) -> bool:
        return key in self._changes

    def woken(self) -> float | None:
        """The wake message arrived: seconds to wait before flushing (0 or less: now),
        or None when a timed flush is set already (it takes these changes too)."""
        self._woken = False
        if self._timer:
            return None
        busy = self._last_size >= BUSY_CHANGES
        interval = BUSY_FLUSH_INTERVAL if busy else FLUSH_INTERVAL
        return self._last_flush + interval - self.now()

    def timer_set(self) -> None:
        self._timer = True

    def timer_fired(self) -> None:
        self._timer = False

    def take(self) -> Taken:
        """Everything waiting, for one flush; the pipeline is empty afterwards but for the
        key to select (see :meth:`selected`)."""
        taken = Taken(self._snapshot, self._changes, self._log, self._history)
        self._snapshot, self._changes, self._log, self._history = False, {}, [], None
        return taken

    def flushed(self, size: int) -> None:
        """A flush that applied ``size`` changes ended (it paces the next one)."""
        self._last_size = size
        self._last_flush = self.now()

    def selected(self) -> None:
        """The key to select was selected (or found hidden by the filter)."""
        self._select = None

    def _ask(self) -> None:
        if not self._woken and not self._timer:
            # One message until it is handled, not one per watch response: a message costs
            # Textual more than applying a change costs the session.
            self._woken = self.wake()
