"""rpcx's etcd v3 registry plugin.

Source: rpcxio/rpcx-etcd ``serverplugin/etcdv3.go`` (``Register``: puts ``{BasePath}`` =
``rpcx_path``, ``{BasePath}/{name}`` = the name, then ``{BasePath}/{name}/{ServiceAddress}``
= the metadata, a URL query string such as ``weight=10&state=inactive``; ServiceAddress is
``tcp@host:port`` / ``quic@…``) and ``store/etcdv3/etcdv3.go`` (every put on the one lease
the store grants at start, ``defaultTTL`` 30 s). There is no default base path (examples:
``/rpcx_test``). Clients drop nodes with ``state=inactive`` (smallnest/rpcx
``client/xclient_discovery.go``).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from .base import PLACEHOLDER, Layout, Recognised, _Placeholder, short, split_last

_SERVICE_ADDRESS = re.compile(r"^(\w+)@(.+:\d{1,5})$")
_SHOWN = ("weight", "group", "state", "tps", "calls", "connections")


def recognise(key: str, raw: bytes, lease: int) -> Recognised | _Placeholder | None:
    head, last = split_last(key)
    if raw == b"rpcx_path":
        return PLACEHOLDER
    match = _SERVICE_ADDRESS.match(last) if len(last) <= 300 else None
    if match is None:
        # {BasePath}/{name} = name, on the process's lease: the service's path key.
        if lease and raw and len(raw) <= 300 and raw == last.encode():
            return PLACEHOLDER
        return None
    service = split_last(head)[1]
    if not service or len(raw) > 4096:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text and ("=" not in text or text.lstrip().startswith(("{", "["))):
        return None
    query = dict(parse_qsl(text)[:64])
    extra: tuple[tuple[str, str], ...] = (("network", match.group(1)),)
    extra += tuple((name, short(query[name])) for name in _SHOWN if query.get(name))
    healthy = False if query.get("state") == "inactive" else None
    return Recognised(Layout.RPCX, service, last, (match.group(2),), extra, healthy)


def write(
    base_path: str, service: str, address: str, network: str = "tcp", **meta: str
) -> list[tuple[str, bytes]]:
    """The three puts of ``EtcdV3RegisterPlugin.Register``, all on the process's lease."""
    return [
        (base_path, b"rpcx_path"),
        (f"{base_path}/{service}", service.encode()),
        (f"{base_path}/{service}/{network}@{address}", urlencode(meta).encode()),
    ]
