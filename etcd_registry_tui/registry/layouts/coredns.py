"""CoreDNS (SkyDNS) records kept in etcd.

Source: coredns/coredns ``plugin/etcd/msg/service.go`` (the value: ``msg.Service`` JSON,
``host``, ``port``, ``priority``, ``weight``, ``text``, ``mail``, ``ttl``, ``targetstrip``,
``group``, all ``omitempty``) and ``plugin/etcd/msg/path.go`` (``Path``: ``/skydns`` + the
DNS name's labels reversed). A lease is optional; with one, the record's TTL follows it.
"""

from __future__ import annotations

import json
from typing import Any

from .base import Layout, Recognised, pick, text_field

PREFIX = "/skydns/"


def recognise(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    if not key.startswith(PREFIX) or fields is None:
        return None
    host = text_field(fields, "host")
    if host is None:
        return None
    labels = [label for label in key[len(PREFIX) :].split("/") if label]
    if not labels:
        return None
    port = fields.get("port")
    address = f"{host}:{port}" if type(port) is int and port > 0 else host
    name = ".".join(reversed(labels))
    service = ".".join(reversed(labels[:-1])) or name
    extra = pick(fields, "priority", "weight", "ttl", "text", "group")
    return Recognised(Layout.COREDNS, service, labels[-1], (address,), (("name", name), *extra))


def write(name: str, host: str, port: int = 0, **fields: Any) -> tuple[str, bytes]:
    """A record as ``etcdctl put`` would add it for CoreDNS (omitempty: no zero fields)."""
    key = PREFIX + "/".join(reversed(name.strip(".").split(".")))
    value = {"host": host, **({"port": port} if port else {}), **fields}
    return key, json.dumps(value, separators=(",", ":")).encode()
