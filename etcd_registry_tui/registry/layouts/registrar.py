"""What a test instance registered in a framework's layout writes, so that a service that
discovers through that framework finds it: the key, the value, and the path keys that
framework writes beside it (each module's ``write`` follows its framework's source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from . import cloudwego, coredns, dubbo, goframe, gozero, grpc, kratos, micro, rpcx
from .base import Layout, join_host_port

#: Each framework's default lease TTL in seconds (its registrar's default; see the modules).
DEFAULT_TTL: Final[dict[Layout, int]] = {
    Layout.WALKTHROUGH: 30,
    Layout.GRPC: 30,  # the manager takes the caller's lease; 30 s as the docs' examples
    Layout.MICRO: 90,
    Layout.KRATOS: 15,
    Layout.GO_ZERO: 10,
    Layout.DUBBO: 30,
    Layout.DUBBO_APP: 30,
    Layout.KITEX: 60,
    Layout.HERTZ: 60,
    Layout.RPCX: 30,
    Layout.GOFRAME: 10,
    Layout.COREDNS: 30,
}
#: Where each framework writes by default (what ``--prefix`` / a watch must cover).
DEFAULT_PREFIX: Final[dict[Layout, str]] = {
    Layout.WALKTHROUGH: "/services/",
    Layout.GRPC: "",  # the target itself
    Layout.MICRO: micro.DEFAULT_PREFIX,
    Layout.KRATOS: kratos.NAMESPACE + "/",
    Layout.GO_ZERO: "",  # the user's key
    Layout.DUBBO: dubbo.ROOT,
    Layout.DUBBO_APP: dubbo.APP_ROOT,
    Layout.KITEX: cloudwego.KITEX_PREFIX,
    Layout.HERTZ: cloudwego.HERTZ_PREFIX,
    Layout.RPCX: "/rpcx_test/",
    Layout.GOFRAME: goframe.HEAD,
    Layout.COREDNS: coredns.PREFIX,
}


@dataclass(frozen=True, slots=True)
class Plan:
    """The instance's key and value, and the path keys put (plainly, idempotent) before it:
    ``(key, value, on the instance's lease)``."""

    key: str
    value: bytes
    paths: tuple[tuple[str, bytes, bool], ...] = ()


def host_port(address: str) -> tuple[str, int]:
    """``host`` and ``port`` of ``h:p``, ``[v6]:p`` or a URL; ValueError, with a message
    that names the address, when there is none."""
    text = address if "://" in address else f"tcp://{address}"
    port_text = text.rpartition(":")[2]
    try:
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port out of range or no number, an unbracketed IPv6 host
        if "out of range" in str(exc):
            raise ValueError(f"address {address!r}: port {port_text} is not in 1-65535") from None
        if ":" in text.partition("://")[2].rpartition(":")[0].lstrip("["):
            raise ValueError(
                f"address {address!r} is not host:port (an IPv6 host goes in brackets: [::1]:80)"
            ) from None
        raise ValueError(f"address {address!r}: port {port_text!r} is not a number") from None
    if port == 0:
        raise ValueError(f"address {address!r}: port 0 is not in 1-65535")
    if not host or not port:
        raise ValueError(f"address {address!r} is not host:port")
    return host, port


def _bare(address: str) -> str:
    return join_host_port(*host_port(address))


def plan(layout: Layout, service: str, instance_id: str, address: str, lease: int) -> Plan:
    """What ``layout``'s registrar writes for one instance on ``lease``.

    ValueError when the address does not fit the layout (it needs ``host:port``)."""
    if layout is Layout.GRPC:
        return Plan(*grpc.write(service, _bare(address), instance_id))
    if layout is Layout.MICRO:
        return Plan(*micro.write(service, f"{service}-{instance_id}", _bare(address)))
    if layout is Layout.KRATOS:
        if "://" in address:
            host_port(address)  # a URL's port is checked too
            endpoint = address
        else:
            endpoint = f"grpc://{_bare(address)}"
        return Plan(*kratos.write(service, instance_id, [endpoint]))
    if layout is Layout.GO_ZERO:
        return Plan(*gozero.write(service, _bare(address), lease))
    if layout is Layout.DUBBO:
        *paths, (key, value, _) = dubbo.write_provider(service, _bare(address))
        return Plan(key, value, tuple(paths))
    if layout is Layout.DUBBO_APP:
        host, port = host_port(address)
        return Plan(*dubbo.write_app(service, host, port))
    if layout in (Layout.KITEX, Layout.HERTZ):
        return Plan(*cloudwego.write(service, _bare(address), hertz=layout is Layout.HERTZ))
    if layout is Layout.RPCX:
        (base, base_value), (svc, svc_value), (key, value) = rpcx.write(
            DEFAULT_PREFIX[Layout.RPCX].rstrip("/"), service, _bare(address)
        )
        return Plan(key, value, ((base, base_value, True), (svc, svc_value, True)))
    if layout is Layout.GOFRAME:
        return Plan(*goframe.write(service, [_bare(address)]))
    if layout is Layout.COREDNS:
        host, port = host_port(address)
        return Plan(*coredns.write(f"{instance_id}.{service}.skydns.local", host, port))
    raise ValueError(f"layout {layout.value} is written by the registration itself")


def check_address(layout: Layout, address: str) -> None:
    """ValueError (naming the address and what ``layout`` needs) unless ``address`` is one
    that ``layout``'s registrar can write: ``host:port`` for the frameworks. The walkthrough's
    ``Address`` is free-form (a URL, say, or "" that a caller sets later, as the demo does)."""
    if layout is Layout.WALKTHROUGH:
        return
    if not address.strip():
        raise ValueError("the address is empty")
    try:
        plan(layout, "service", "id", address, 1)
    except ValueError as exc:
        raise ValueError(f"{exc} ({layout.value} needs host:port)") from None
