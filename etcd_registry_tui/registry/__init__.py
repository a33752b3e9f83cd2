"""The data layer: pure asyncio on aetcd. Nothing in this package imports Textual."""

from .events import ChangeBatch, ConnectionStatus, ConnState
from .model import UNRECOGNISED, Change, ChangeKind, Instance, RegistryState, Service

__all__ = [
    "UNRECOGNISED",
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "ConnState",
    "ConnectionStatus",
    "Instance",
    "RegistryState",
    "Service",
]
