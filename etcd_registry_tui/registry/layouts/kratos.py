"""Kratos's etcd registry.

Source: go-kratos/kratos ``contrib/registry/etcd/registry.go`` (key ``fmt.Sprintf("%s/%s/%s",
namespace, service.Name, service.ID)``, namespace ``/microservices``, always on a lease,
15 s) and ``contrib/registry/etcd/service.go`` (value ``json.Marshal(ServiceInstance)``:
``{"id","name","version","metadata","endpoints":["grpc://h:p","http://h:p"]}``, the struct in
``registry/registry.go``).
"""

from __future__ import annotations

import json
from typing import Any

from .base import MAX_ITEMS, Layout, Recognised, pick, short, text_field

NAMESPACE = "/microservices"
VALUE_KEYS = frozenset({"id", "name", "version", "metadata", "endpoints"})


def recognise(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    if fields is None:
        return None
    under = key.startswith(NAMESPACE + "/")
    # Elsewhere (another Namespace()), only the exact value of a ServiceInstance counts.
    if not under and fields.keys() != VALUE_KEYS:
        return None
    endpoints = fields.get("endpoints")
    if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        return None
    if not all("://" in e for e in endpoints):
        return None
    head, _, instance_id = key.rpartition("/")
    service = text_field(fields, "name") or head.rpartition("/")[2]
    instance_id = text_field(fields, "id") or instance_id
    extra = pick(fields, "version")
    meta = fields.get("metadata")
    if isinstance(meta, dict) and meta:
        extra += (("metadata", short(meta)),)
    return Recognised(Layout.KRATOS, service, instance_id, tuple(endpoints[:MAX_ITEMS]), extra)


def write(
    service: str, instance_id: str, endpoints: list[str], version: str = ""
) -> tuple[str, bytes]:
    """What Kratos's ``Register`` puts (Go's field order; nil metadata is ``null``)."""
    key = f"{NAMESPACE}/{service}/{instance_id}"
    value = {
        "id": instance_id,
        "name": service,
        "version": version,
        "metadata": None,
        "endpoints": endpoints,
    }
    return key, json.dumps(value, separators=(",", ":")).encode()
