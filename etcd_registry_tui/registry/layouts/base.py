"""What a recognised registry entry is, whatever framework wrote it.

Each framework that keeps a service registry in etcd writes its own key layout and value
format (the table in README's "Registry layouts"). A recogniser in this package turns one
key-value into a :class:`Recognised` entry (service, instance, addresses and the fields that
framework gives), or says it is a :data:`PLACEHOLDER` (a "directory" key some frameworks
write beside their instances), or returns None: not that framework's.

Every byte is untrusted: recognisers never raise, bound what they keep, and decide by the
*exact* names of a value's JSON keys (Go's ``encoding/json`` matches names regardless of
case, so "it unmarshals" proves nothing about who wrote it).
"""

from __future__ import annotations

import itertools
import re
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final


class Layout(StrEnum):
    """The layouts recognised; the value is the short mark shown beside an instance."""

    WALKTHROUGH = "services"  # the .NET walkthrough's /services/{Name}/{Id}, {Id,Name,Address}
    GRPC = "grpc"  # etcd's client/v3/naming/endpoints (gRPC's etcd:/// resolver)
    MICRO = "micro"  # go-micro registry/etcd
    KRATOS = "kratos"  # go-kratos contrib/registry/etcd
    GO_ZERO = "go-zero"  # zeromicro/go-zero core/discov
    DUBBO = "dubbo"  # dubbo-go interface-level registry (/dubbo/{iface}/providers/{url})
    DUBBO_APP = "dubbo-app"  # dubbo-go application-level discovery (/services/{app}/{h:p})
    KITEX = "kitex"  # kitex-contrib/registry-etcd
    HERTZ = "hertz"  # hertz-contrib/registry etcd
    RPCX = "rpcx"  # rpcxio/rpcx-etcd serverplugin
    GOFRAME = "goframe"  # gogf/gf contrib/registry/etcd (net/gsvc)
    COREDNS = "coredns"  # CoreDNS / SkyDNS plugin/etcd


#: Who writes each layout, as the detail pane names it.
FRAMEWORKS: Final[dict[Layout, str]] = {
    Layout.WALKTHROUGH: "the walkthrough's {Id, Name, Address}",
    Layout.GRPC: "etcd gRPC naming (naming/endpoints)",
    Layout.MICRO: "go-micro",
    Layout.KRATOS: "Kratos",
    Layout.GO_ZERO: "go-zero",
    Layout.DUBBO: "dubbo-go, interface level",
    Layout.DUBBO_APP: "dubbo-go, application level",
    Layout.KITEX: "Kitex",
    Layout.HERTZ: "Hertz",
    Layout.RPCX: "rpcx",
    Layout.GOFRAME: "GoFrame",
    Layout.COREDNS: "CoreDNS / SkyDNS",
}


@dataclass(frozen=True, slots=True)
class Recognised:
    """One instance as its framework describes it."""

    layout: Layout
    service: str
    instance_id: str
    #: Where it can be reached, as the framework writes it (``host:port`` or a URL).
    addresses: tuple[str, ...] = ()
    #: What else the framework says of it (version, weight, health, zone, tags …), in the
    #: framework's order, as short display strings (raw; the UI sanitises).
    fields: tuple[tuple[str, str], ...] = ()
    #: The framework's own health flag, where it has one (None: it has none).
    healthy: bool | None = None
    #: The tree group: ``{service} · {layout}`` (made once, shared by the service's
    #: instances).
    group: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cut = tuple(
            a if len(a) <= MAX_ADDRESS_CHARS else a[: MAX_ADDRESS_CHARS - 1] + "…"
            for a in self.addresses[:MAX_ITEMS]
        )
        if cut != self.addresses:
            object.__setattr__(self, "addresses", cut)
        if len(self.fields) > MAX_ITEMS:
            object.__setattr__(self, "fields", self.fields[:MAX_ITEMS])
        object.__setattr__(self, "group", sys.intern(f"{self.service} · {self.layout.value}"))

    @property
    def address(self) -> str | None:
        return self.addresses[0] if self.addresses else None


class _Placeholder:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PLACEHOLDER"


#: A framework's "directory" key (dubbo-go's empty path keys, rpcx's ``rpcx_path``): part of
#: a layout, not an instance.
PLACEHOLDER: Final = _Placeholder()

#: At most this many addresses / fields are kept per instance.
MAX_ITEMS = 16
#: Each kept field is cut to this many characters.
MAX_CHARS = 512
#: Each kept address is cut to this many characters (then ends in "…": not probed).
MAX_ADDRESS_CHARS = 2048

_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.%\w-]+\]|[\w.-]+):\d{1,5}$")


def is_host_port(text: str) -> bool:
    """``host:port`` / ``[v6]:port``, as the frameworks write addresses (not a URL)."""
    return len(text) <= 300 and _HOST_PORT.match(text) is not None


def join_host_port(host: str, port: int) -> str:
    """``host:port`` as Go's ``net.JoinHostPort`` writes it (``[v6]:port``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def short(value: Any, depth: int = 0) -> str:
    """A field's value as a bounded display string (JSON scalars as JSON writes them;
    objects and lists as ``k=v, …`` at most :data:`MAX_ITEMS` items and three levels deep)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, (int, float, str)):
        text = str(value) if not isinstance(value, str) or len(value) <= MAX_CHARS else value
    elif depth >= 3:
        text = "…"
    elif isinstance(value, dict):
        items = itertools.islice(value.items(), MAX_ITEMS)
        text = ", ".join(f"{k}={short(v, depth + 1)}" for k, v in items)
    elif isinstance(value, list):
        text = ", ".join(short(v, depth + 1) for v in value[:MAX_ITEMS])
    else:
        text = type(value).__name__
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def pick(fields: dict[str, Any], *names: str) -> tuple[tuple[str, str], ...]:
    """``(name, short(value))`` for each of ``names`` present and not empty, in order."""
    out = []
    for name in names:
        value = fields.get(name)
        if value not in (None, "", {}, []):
            out.append((name, short(value)))
    return tuple(out)


def text_field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


def split_last(key: str) -> tuple[str, str]:
    """``(everything before the last '/', the last segment)``; no '/': ``("", key)``."""
    head, _, last = key.rpartition("/")
    return head, last
