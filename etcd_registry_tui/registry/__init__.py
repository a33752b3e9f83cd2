"""The data layer: pure asyncio on aetcd. Nothing in this package imports Textual.

For Python services that want to join the registry::

    from etcd_registry_tui.registry import ConnectionConfig, EtcdConnection, ServiceRegistration
"""

from .elections.campaign import Candidacy, Election, LeadershipLost, ResignFailed
from .etcd.config import ConnectionConfig
from .etcd.connection import EtcdConnection
from .etcd.errors import EtcdAuthError, EtcdUnavailable, LeaseNotFound, RegistryError
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
