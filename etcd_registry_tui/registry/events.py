"""Typed messages the data layer hands to its consumers (the UI, the CLI, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .model import Change


class ConnState(StrEnum):
    CONNECTING = "connecting"
    LOADING = "loading"
    #: The prefix holds more than the memory budget allows: nothing is loaded.
    TOO_LARGE = "too large"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """Where the watcher stands. ``retry_in`` is set while waiting to reconnect."""

    state: ConnState
    endpoint: str
    error: str | None = None
    retry_in: float | None = None
    revision: int = 0
    attempt: int = 0
    #: While loading: keys read so far and how many the snapshot holds.
    loaded: int = 0
    total: int = 0

    def describe(self) -> str:
        text = self.state.value
        if self.state is ConnState.LOADING and self.total:
            text += f" {self.loaded:,} / {self.total:,}"
        if self.error:
            text += f": {self.error}"
        if self.retry_in is not None:
            text += f" (retry in {self.retry_in:.0f}s)"
        return text


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """Changes applied to the state together.

    ``snapshot`` is true when the batch comes from (re)loading a full snapshot;
    the changes are then the difference to what was held before.
    """

    changes: list[Change] = field(default_factory=list)
    revision: int = 0
    snapshot: bool = False
    #: A page of the first snapshot, shown while the rest loads: only CREATEs of keys not
    #: held before (a later reload is one batch with the difference, ``loading`` false).
    loading: bool = False

    def __len__(self) -> int:
        return len(self.changes)
