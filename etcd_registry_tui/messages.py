"""Messages from the data layer to the UI. Each replaces an unhandled one of its kind,
so a burst of watch batches costs one UI update (the Toolong pattern)."""

from __future__ import annotations

from textual.message import Message

from .registry.events import ConnectionStatus


class RegistryDirty(Message):
    """Changes are waiting in the app's pending buffer."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RegistryDirty)


class StatusChanged(Message):
    def __init__(self, status: ConnectionStatus) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusChanged)
