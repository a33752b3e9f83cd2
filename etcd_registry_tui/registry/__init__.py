"""The data layer: pure asyncio on aetcd. Nothing in this package imports Textual.

For Python services that want to join the registry::

    from etcd_registry_tui.registry import ConnectionConfig, EtcdConnection, ServiceRegistration
"""

from .config import ConnectionConfig
from .connection import EtcdConnection
from .errors import EtcdAuthError, EtcdUnavailable, LeaseNotFound, RegistryError
from .events import ChangeBatch, ConnectionStatus, ConnState
from .leases import LeaseTracker
from .model import UNRECOGNISED, Change, ChangeKind, Instance, RegistryState, Service
from .registration import ServiceRegistration
from .watcher import RegistryWatcher

__all__ = [
    "UNRECOGNISED",
    "Change",
    "ChangeBatch",
    "ChangeKind",
    "ConnState",
    "ConnectionConfig",
    "ConnectionStatus",
    "EtcdAuthError",
    "EtcdConnection",
    "EtcdUnavailable",
    "Instance",
    "LeaseNotFound",
    "LeaseTracker",
    "RegistryError",
    "RegistryState",
    "RegistryWatcher",
    "Service",
    "ServiceRegistration",
]
