"""Messages from the data layer to the UI. Each replaces an unhandled one of its kind,
so a burst of watch batches costs one UI update (the Toolong pattern) — except a status
carrying an error, which always reaches the screen."""

from __future__ import annotations

from textual.message import Message

from .registry.events import ConnectionStatus
from .registry.supervisor import TaskFailure


class RegistryDirty(Message):
    """Changes are waiting in the app's pending buffer."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RegistryDirty)


class StatusChanged(Message):
    def __init__(self, status: ConnectionStatus) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        # Textual asks the older message whether the next may take its place. An error
        # (e.g. "history compacted …; reloading") must be shown even when the next
        # status follows a moment later.
        return isinstance(message, StatusChanged) and self.status.error is None


class TaskFailed(Message):
    """A supervised task died and will be restarted. Never replaced: each is shown."""

    def __init__(self, failure: TaskFailure) -> None:
        super().__init__()
        self.failure = failure
