"""Stop signals that raise instead of killing, so that every ``finally`` runs."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP while the demo owns a private etcd.

    Python's default SIGTERM ends the process at once, with no ``finally`` run: a demo
    stopped while its etcd starts would leave the data dir behind. Here a signal raises
    instead (SIGINT: KeyboardInterrupt; others: SystemExit(128 + signal)), so every ``finally``
    runs; within :meth:`held` (a data dir made but not yet known, a process spawned but
    not yet tracked) it waits until the step is done. While cleaning up, all three are
    ignored: a second Ctrl-C does not cut the removal short (it is bounded: stop waits
    5 s, then kills)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._holding = 0
        self._pending: int | None = None

    def install(self) -> None:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def ignore(self) -> None:
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1
        if not self._holding and self._pending is not None:
            signum, self._pending = self._pending, None
            self._raise(signum)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._holding:
            self._pending = signum
        else:
            self._raise(signum)

    @staticmethod
    def _raise(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)
