"""GoFrame's etcd registry (``net/gsvc``).

Source: gogf/gf ``net/gsvc/gsvc_service.go`` (``GetKey``: ``/{head}/{deployment}/
{namespace}/{name}/{version}/{endpoints joined by ","}``, defaults ``service``, ``default``,
``default``, ``latest``) and ``contrib/registry/etcd/etcd_registrar.go`` (the value is the
metadata map as JSON; always on a lease, ``DefaultKeepAliveTTL`` 10 s).
"""

from __future__ import annotations

import json
from typing import Any

from .base import MAX_ITEMS, Layout, Recognised, is_host_port, pick, short

HEAD = "/service/"


def recognise(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    if not key.startswith(HEAD) or fields is None:
        return None
    parts = key[1:].split("/")
    if len(parts) != 6:
        return None
    _, deployment, namespace, name, version, endpoints = parts
    addresses = endpoints.split(",")
    if not name or not all(is_host_port(a) for a in addresses):
        return None
    extra: tuple[tuple[str, str], ...] = (("version", version),)
    if deployment != "default":
        extra += (("deployment", deployment),)
    if namespace != "default":
        extra += (("namespace", namespace),)
    extra += pick(fields, "protocol", "weight")
    rest = {k: v for k, v in fields.items() if k not in ("protocol", "weight")}
    if rest:
        extra += (("metadata", short(rest)),)
    return Recognised(Layout.GOFRAME, name, endpoints, tuple(addresses[:MAX_ITEMS]), extra)


def write(
    name: str, endpoints: list[str], version: str = "latest", **metadata: Any
) -> tuple[str, bytes]:
    """What GoFrame's etcd registrar puts for a service with default head/deployment/ns."""
    key = f"{HEAD}default/default/{name}/{version}/{','.join(endpoints)}"
    return key, json.dumps(metadata or {}, separators=(",", ":")).encode()
