"""etcd-registry-tui: a terminal dashboard for service registries kept in etcd."""

__version__ = "0.1.0"
