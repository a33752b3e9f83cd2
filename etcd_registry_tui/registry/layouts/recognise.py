"""Which framework wrote a key: the most specific match wins.

First the frameworks with a fixed prefix and a value shape (go-micro, Kratos, CoreDNS,
dubbo-go's ``/dubbo``, GoFrame's six-segment ``/service/``), then the fingerprints that do
not need a prefix (etcd's gRPC naming value, Kitex/Hertz's value, go-zero's lease id as the
last segment, rpcx's ``network@host:port`` segment), then dubbo-go's application level, which
shares ``/services/`` with the walkthrough and differs from it only by its value's keys.
What matches none of them is the walkthrough's layout or a raw key, as before
(:mod:`..model`).
"""

from __future__ import annotations

from typing import Any

from . import cloudwego, coredns, dubbo, goframe, gozero, grpc, kratos, micro, rpcx
from .base import Recognised, _Placeholder

#: The frameworks' fixed prefixes, tried first.
_FIXED_PREFIXES = ("/micro", "/skydns/", "/dubbo", "/service/")


def recognise(
    key: str, fields: dict[str, Any] | None, raw: bytes, lease: int
) -> Recognised | _Placeholder | None:
    """The layout entry for one key-value, :data:`~.base.PLACEHOLDER`, or None (none known).

    ``fields`` is the value parsed as a JSON object (None when it is not one); never raises.
    """
    try:
        return _recognise(key, fields, raw, lease)
    except Exception:  # a recogniser's bug must not stop the registry: show the key raw
        return None


def _recognise(
    key: str, fields: dict[str, Any] | None, raw: bytes, lease: int
) -> Recognised | _Placeholder | None:
    if key.startswith(_FIXED_PREFIXES):  # one test for the many keys under none of them
        if key.startswith("/micro"):
            found = micro.recognise(key, fields) or kratos.recognise(key, fields)
            if found is not None:
                return found
        elif key.startswith("/skydns/"):
            if (found := coredns.recognise(key, fields)) is not None:
                return found
        elif key.startswith("/dubbo"):
            if (hit := dubbo.recognise(key, raw, lease, fields)) is not None:
                return hit
        elif key.startswith("/service/"):
            if (found := goframe.recognise(key, fields)) is not None:
                return found
    if fields is not None:
        # Each recogniser needs one name in the value (a dict lookup), checked first: the
        # walkthrough's values, most of a registry, then cost three lookups, not three
        # comparisons of key sets.
        found = (
            ("Addr" in fields and grpc.recognise(key, fields))
            or ("network" in fields and cloudwego.recognise(key, fields))
            or ("ServiceName" in fields and dubbo.recognise_app(key, fields))
            or None
        )
        if found is None and len(fields) == len(kratos.VALUE_KEYS):
            found = kratos.recognise(key, fields)
        return found
    if lease and (found := gozero.recognise(key, raw, lease)) is not None:
        return found
    if "@" in key or raw == b"rpcx_path" or lease:
        return rpcx.recognise(key, raw, lease)
    return None
