"""go-zero's discovery (``core/discov``).

Source: zeromicro/go-zero ``core/discov/clients.go`` (``makeEtcdKey``: ``fmt.Sprintf("%s%c%d",
key, '/', id)``, the id being the lease id in decimal unless ``Etcd.ID`` is set) and
``core/discov/publisher.go`` (``register``: the value is the bare listen address, always on
a lease, ``TimeToLive`` 10 s). The user's key often has no leading ``/`` (``user.rpc``).
The fingerprint is strong: the last segment is the key's own lease id in decimal.
"""

from __future__ import annotations

from .base import Layout, Recognised, is_host_port, split_last


def recognise(key: str, raw: bytes, lease: int) -> Recognised | None:
    if lease == 0 or len(raw) > 300:
        return None
    service, last = split_last(key)
    if not service or last != str(lease):
        return None
    try:
        address = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not is_host_port(address):
        return None
    return Recognised(Layout.GO_ZERO, service, last, (address,))


def write(key: str, address: str, lease: int) -> tuple[str, bytes]:
    """What ``Publisher.register`` puts (``key`` is the user's ``Etcd.Key``)."""
    return f"{key}/{lease}", address.encode()
