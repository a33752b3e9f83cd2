"""dubbo-go: the interface-level registry and the application-level discovery.

Interface level — apache/dubbo-go ``registry/etcdv3/registry.go`` and
``registry/base_registry.go``: ``/dubbo/{QueryEscape(interface)}/providers/{QueryEscape(URL)}``
(consumers under ``/consumers/``), value empty, everything in the key's URL and its query
(``weight``, ``version``, ``group`` …). Instances on a 30 s lease (dubbogo/gost
``database/kv/etcd/v3/client.go`` ``keepAliveKV``); the parent "directory" keys
(``/dubbo``, ``/dubbo/{iface}``, ``/dubbo/{iface}/providers``) are empty and lease-less.
Metadata keys (``/dubbo/{app}/{revision}``, ``metadata/report/etcd/report.go``) are no
instances either.

Application level — ``registry/etcdv3/service_discovery.go``: ``/services/{app}/{host}:{port}``
(the walkthrough's prefix!), the value ``DefaultServiceInstance`` as Go writes it without
tags (``registry/service_instance.go``): ``{"ID","ServiceName","Host","Port","Weight",
"Enable","Healthy","Metadata",…}``, on a 30 s lease.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus, urlsplit

from .base import (
    PLACEHOLDER,
    Layout,
    Recognised,
    _Placeholder,
    join_host_port,
    pick,
    short,
    text_field,
)

ROOT = "/dubbo/"
APP_ROOT = "/services/"
_ROLES = {"providers": "provider", "consumers": "consumer"}
#: Query parameters shown, in this order (the rest stay in the key).
_SHOWN = ("side", "version", "group", "weight", "application", "release")


#: The names of dubbo-go's MetadataInfo JSON (``app``, ``revision``, ``services``), of which
#: a metadata report's value has the first two at least.
METADATA_KEYS = frozenset({"app", "revision"})


def recognise(
    key: str, raw: bytes, lease: int, fields: dict[str, Any] | None = None
) -> Recognised | _Placeholder | None:
    if not key.startswith(ROOT) and key != ROOT.rstrip("/"):
        return None
    parts = key[1:].split("/")  # "dubbo", iface, role, url
    if len(parts) == 4 and parts[2] in _ROLES and parts[3]:
        return _instance(parts[1], _ROLES[parts[2]], parts[3])
    if not raw and lease == 0 and len(parts) <= 3:
        return PLACEHOLDER  # a path key: /dubbo, /dubbo/{iface}, /dubbo/{iface}/providers
    if lease == 0 and len(parts) == 3 and fields is not None and METADATA_KEYS <= fields.keys():
        return PLACEHOLDER  # metadata report /dubbo/{app}/{revision} (MetadataInfo JSON)
    return None


def _instance(iface: str, role: str, escaped: str) -> Recognised | None:
    try:
        url = urlsplit(unquote_plus(escaped))
        host, port = url.hostname, url.port
    except ValueError:
        return None
    if not url.scheme or not host:
        return None
    address = join_host_port(host, port) if port else host
    query = dict(parse_qsl(url.query, keep_blank_values=False)[:64])
    extra: tuple[tuple[str, str], ...] = (("role", role), ("protocol", url.scheme))
    extra += tuple((name, short(query[name])) for name in _SHOWN if query.get(name))
    return Recognised(Layout.DUBBO, unquote_plus(iface), address, (address,), extra)


def write_provider(
    interface: str, address: str, protocol: str = "tri", **params: str
) -> list[tuple[str, bytes, bool]]:
    """The keys a dubbo-go provider writes: ``(key, value, on the lease)``, parents first."""
    query = "&".join(
        f"{k}={quote_plus(v)}" for k, v in sorted({"side": "provider", **params}.items())
    )
    url = f"{protocol}://{address}/{interface}?{query}"
    iface = quote_plus(interface)
    return [
        ("/dubbo", b"", False),
        (f"/dubbo/{iface}", b"", False),
        (f"/dubbo/{iface}/providers", b"", False),
        (f"/dubbo/{iface}/providers/{quote_plus(url)}", b"", True),
    ]


# -- application level ---------------------------------------------------------------------

APP_KEYS = frozenset({"ServiceName", "Host", "Port"})


def recognise_app(key: str, fields: dict[str, Any] | None) -> Recognised | None:
    if fields is None or not key.startswith(APP_ROOT) or not APP_KEYS <= fields.keys():
        return None
    host, port = fields["Host"], fields["Port"]
    if not isinstance(host, str) or type(port) is not int:
        return None
    segments = key[len(APP_ROOT) :].split("/")
    if len(segments) != 2:
        return None
    service = text_field(fields, "ServiceName") or segments[0]
    address = text_field(fields, "Address") or f"{host}:{port}"
    instance_id = text_field(fields, "ID") or segments[1]
    healthy = None
    if isinstance(fields.get("Healthy"), bool) and isinstance(fields.get("Enable"), bool):
        healthy = fields["Healthy"] and fields["Enable"]
    extra = pick(fields, "Weight", "GroupName", "Tag")
    meta = fields.get("Metadata")
    if isinstance(meta, dict) and meta:
        extra += (("Metadata", short(meta)),)
    return Recognised(Layout.DUBBO_APP, service, instance_id, (address,), extra, healthy)


def write_app(service: str, host: str, port: int, weight: int = 100) -> tuple[str, bytes]:
    """What ``etcdV3ServiceDiscovery.Register`` puts (Go's field order, no tags)."""
    value = {
        "ID": f"{host}:{port}",
        "ServiceName": service,
        "Host": host,
        "Port": port,
        "Weight": weight,
        "Enable": True,
        "Healthy": True,
        "Metadata": None,
        "ServiceMetadata": None,
        "Address": "",
        "GroupName": "",
        "Tag": "",
    }
    return f"{APP_ROOT}{service}/{host}:{port}", json.dumps(value, separators=(",", ":")).encode()
