"""CloudWeGo's Kitex and Hertz etcd registries.

Source: kitex-contrib/registry-etcd ``common.go`` (prefix ``kitex/registry-etcd``, no leading
slash; key ``{prefix}/{service}/{addr}``; value ``instanceInfo{network, address, weight,
tags}``) and ``etcd_registry.go`` (``Register``: always on a lease, default 60 s, env
``KITEX_ETCD_REGISTRY_LEASE_TTL``); hertz-contrib/registry ``etcd/common.go`` and
``etcd/registry.go``: the same value under ``hertz/registry-etcd``.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Layout, Recognised, pick, short, text_field

KITEX_PREFIX = "kitex/registry-etcd/"
HERTZ_PREFIX = "hertz/registry-etcd/"
VALUE_KEYS = frozenset({"network", "address", "weight", "tags"})


def recognise(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    if fields is None or fields.keys() != VALUE_KEYS:
        return None
    address = text_field(fields, "address")
    if address is None:
        return None
    layout = Layout.HERTZ if key.startswith(HERTZ_PREFIX) else Layout.KITEX
    head, _, instance_id = key.rpartition("/")
    service = head.rpartition("/")[2]
    if not service or not instance_id:
        return None
    extra = pick(fields, "network", "weight")
    tags = fields.get("tags")
    if isinstance(tags, dict) and tags:
        extra += (("tags", short(tags)),)
    return Recognised(layout, service, instance_id, (address,), extra)


def write(service: str, address: str, weight: int = 10, hertz: bool = False) -> tuple[str, bytes]:
    """What Kitex's (or Hertz's) ``Register`` puts for a TCP address."""
    prefix = HERTZ_PREFIX if hertz else KITEX_PREFIX
    value = {"network": "tcp", "address": address, "weight": weight, "tags": None}
    return f"{prefix}{service}/{address}", json.dumps(value, separators=(",", ":")).encode()
