"""go-micro's etcd registry.

Source: micro/go-micro ``registry/etcd/etcd.go`` (``nodePath``: ``path.Join(prefix, name,
id)`` with ``/`` in name and id replaced by ``-``; prefix ``/micro/registry/``, before Oct
2019 ``/micro-registry/``) and ``registry/registry.go`` (the value: a ``Service`` holding
exactly the one node registered: ``{"name","version","metadata","endpoints","nodes":[{"id",
"address","metadata"}]}``). A lease only when ``RegisterTTL`` > 0 (server default 90 s).
"""

from __future__ import annotations

import json
from typing import Any

from .base import Layout, Recognised, pick, short, text_field

PREFIXES = ("/micro/registry/", "/micro-registry/")
DEFAULT_PREFIX = PREFIXES[0]


def recognise(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    prefix = next((p for p in PREFIXES if key.startswith(p)), None)
    if prefix is None or fields is None:
        return None
    nodes = fields.get("nodes")
    if not isinstance(nodes, list) or not nodes or not isinstance(nodes[0], dict):
        return None
    node = nodes[0]
    address = text_field(node, "address")
    if address is None:
        return None
    segments = key[len(prefix) :].split("/")
    if len(segments) != 2:
        return None
    service = text_field(fields, "name") or segments[0]
    instance_id = text_field(node, "id") or segments[1]
    extra = pick(fields, "version")
    meta = node.get("metadata")
    if isinstance(meta, dict) and meta:
        extra += (("metadata", short(meta)),)
    return Recognised(Layout.MICRO, service, instance_id, (address,), extra)


def write(
    service: str, instance_id: str, address: str, version: str = "latest"
) -> tuple[str, bytes]:
    """The key and value go-micro's ``Register`` writes for one node (Go's field order)."""
    key = f"{DEFAULT_PREFIX}{service.replace('/', '-')}/{instance_id.replace('/', '-')}"
    value = {
        "name": service,
        "version": version,
        "metadata": None,
        "endpoints": [],
        "nodes": [{"id": instance_id, "address": address, "metadata": {"registry": "etcd"}}],
    }
    return key, json.dumps(value, separators=(",", ":")).encode()
