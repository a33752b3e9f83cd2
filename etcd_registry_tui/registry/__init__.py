"""The data layer: pure asyncio on aetcd. Nothing in this package imports Textual.

For Python services that want to join the registry::

    from etcd_registry_tui.registry import ConnectionConfig, EtcdConnection, ServiceRegistration
"""

from .config import ConnectionConfig
from .connection import EtcdConnection
from .election import Candidacy, Election, LeadershipLost, ResignFailed
from .errors import EtcdAuthError, EtcdUnavailable, LeaseNotFound, RegistryError
from .events import ChangeBatch, ConnectionStatus, ConnState
from .leases import LeaseTracker
from .model import UNRECOGNISED, Change, ChangeKind, Instance, RegistryState, Service
from .registration import InstanceConflict, ServiceRegistration
from .watcher import RegistryWatcher

__all__ = [
    "UNRECOGNISED",
    "Candidacy",
    "Election",
    "InstanceConflict",
    "LeadershipLost",
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
    "ResignFailed",
    "Service",
    "ServiceRegistration",
]
