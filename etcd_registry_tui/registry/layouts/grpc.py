"""etcd's gRPC naming: ``go.etcd.io/etcd/client/v3/naming/endpoints``.

Source: etcd-io/etcd ``client/v3/naming/endpoints/endpoints_impl.go`` (``AddEndpoint``
requires the key to start with ``{target}/``) and ``internal/update.go``: the value is
``json.Marshal(Update{Op, Addr, Metadata})`` with no JSON tags, so always exactly the keys
``Op``, ``Addr`` and ``Metadata``, with ``Op`` 0 for an endpoint that is there (``Add``).
The target is the dial URL's path (``etcd:///foo/bar/svc`` → ``foo/bar/svc``); the last key
segment is free (often the address). A lease is optional (the caller's ``WithLease``).
"""

from __future__ import annotations

import json
from typing import Any

from .base import Layout, Recognised, short, split_last

VALUE_KEYS = frozenset({"Op", "Addr", "Metadata"})


def recognise(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    if fields is None or fields.keys() != VALUE_KEYS:
        return None
    op, addr = fields["Op"], fields["Addr"]
    if type(op) is not int or op != 0 or not isinstance(addr, str):
        return None
    target, last = split_last(key)
    if not target or not last:
        return None
    meta = fields["Metadata"]
    extra = () if meta is None else (("metadata", short(meta)),)
    return Recognised(Layout.GRPC, target, last, (addr,), extra)


def write(target: str, address: str, instance_id: str | None = None) -> tuple[str, bytes]:
    """What ``endpoints.Manager.AddEndpoint(target+"/"+id, Endpoint{Addr: address})`` puts."""
    key = f"{target.rstrip('/')}/{instance_id or address}"
    value = json.dumps({"Op": 0, "Addr": address, "Metadata": None}, separators=(",", ":"))
    return key, value.encode()
