"""Each framework's layout is recognised from what its registrar writes, byte for byte, and
nothing else is taken for it (the sources are cited in each module of registry/layouts/)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from etcd_registry_tui.registry.layouts import (
    PLACEHOLDER,
    Layout,
    Recognised,
    cloudwego,
    coredns,
    dubbo,
    goframe,
    gozero,
    grpc,
    kratos,
    micro,
    recognise,
    rpcx,
)
from etcd_registry_tui.registry.model import Instance, KeyValue, parse_value


def judge(key: str, raw: bytes, lease: int = 0) -> Recognised | object | None:
    fields, _ = parse_value(raw)
    return recognise(key, fields, raw, lease)


def one(key: str, raw: bytes, lease: int = 0) -> Recognised:
    found = judge(key, raw, lease)
    assert isinstance(found, Recognised), (key, raw, found)
    return found


# -- what each framework writes (from the cited sources) -----------------------------------

LEASE = 7587864068988009477


def test_grpc_naming() -> None:
    key, value = grpc.write("foo/bar/my-service", "1.2.3.4:50051")
    assert (key, value) == (
        "foo/bar/my-service/1.2.3.4:50051",
        b'{"Op":0,"Addr":"1.2.3.4:50051","Metadata":null}',
    )
    got = one(key, value, lease=5)
    assert (got.layout, got.service, got.instance_id, got.address) == (
        Layout.GRPC,
        "foo/bar/my-service",
        "1.2.3.4:50051",
        "1.2.3.4:50051",
    )
    meta = one("svc/e1", b'{"Op":0,"Addr":"h:1","Metadata":{"zone":"a"}}')
    assert meta.fields == (("metadata", "zone=a"),)


def test_micro() -> None:
    key, value = micro.write("helloworld", "helloworld-8d3e", "10.0.0.1:8080", "1.0")
    assert key == "/micro/registry/helloworld/helloworld-8d3e"
    got = one(key, value, lease=9)
    assert (got.layout, got.service, got.instance_id, got.addresses) == (
        Layout.MICRO,
        "helloworld",
        "helloworld-8d3e",
        ("10.0.0.1:8080",),
    )
    assert ("version", "1.0") in got.fields
    old = one("/micro-registry/go.micro.srv.x/go.micro.srv.x-1", value)
    assert old.layout is Layout.MICRO
    # Slashes in names become dashes in the key, as nodePath does.
    assert micro.write("a/b", "c/d", "h:1")[0] == "/micro/registry/a-b/c-d"


def test_kratos() -> None:
    key, value = kratos.write(
        "helloworld", "4a6c", ["grpc://10.0.0.1:9000", "http://10.0.0.1:8000"]
    )
    assert key == "/microservices/helloworld/4a6c"
    got = one(key, value, lease=3)
    assert got.layout is Layout.KRATOS and got.service == "helloworld"
    assert got.addresses == ("grpc://10.0.0.1:9000", "http://10.0.0.1:8000")
    # Another namespace: only the exact value of a ServiceInstance counts.
    assert one("/myns/helloworld/4a6c", value).layout is Layout.KRATOS


def test_go_zero() -> None:
    key, value = gozero.write("user.rpc", "10.0.0.7:8080", LEASE)
    assert key == f"user.rpc/{LEASE}"
    got = one(key, value, lease=LEASE)
    assert (got.layout, got.service, got.instance_id, got.address) == (
        Layout.GO_ZERO,
        "user.rpc",
        str(LEASE),
        "10.0.0.7:8080",
    )
    # The last segment must be the key's own lease: another lease, or none, is not go-zero.
    assert judge(key, value, lease=LEASE + 1) is None
    assert judge(key, value, lease=0) is None


def test_dubbo_interface_level() -> None:
    writes = dubbo.write_provider(
        "org.apache.dubbo.UserProvider", "10.0.0.5:20000", version="1.0", weight="100"
    )
    parents, (key, value, leased) = writes[:-1], writes[-1]
    assert [k for k, _, _ in parents] == [
        "/dubbo",
        "/dubbo/org.apache.dubbo.UserProvider",
        "/dubbo/org.apache.dubbo.UserProvider/providers",
    ]
    assert all(judge(k, v) is PLACEHOLDER for k, v, _ in parents)
    assert leased and value == b"" and "tri%3A%2F%2F10.0.0.5%3A20000" in key
    got = one(key, value, lease=11)
    assert (got.layout, got.service, got.address) == (
        Layout.DUBBO,
        "org.apache.dubbo.UserProvider",
        "10.0.0.5:20000",
    )
    assert ("role", "provider") in got.fields and ("weight", "100") in got.fields
    assert ("version", "1.0") in got.fields
    metadata = b'{"app":"shop","revision":"abc","services":{}}'
    assert judge("/dubbo/shop/abc", metadata) is PLACEHOLDER
    # Only a metadata report is one: another lease-less value there is no path key, and is
    # shown where the walkthrough's rules put it (review: it was hidden among path keys).
    for other in (b'{"Id":"1","Name":"n","Address":"a:1"}', b"plain", b'{"app":"shop"}'):
        assert judge("/dubbo/app/rev1", other) is None, other
        inst = Instance.from_kv(KeyValue(b"/dubbo/app/rev1", other), "/dubbo/")
        assert inst.service == "app" and inst.instance_id == "rev1"


def test_dubbo_application_level_beside_the_walkthrough() -> None:
    key, value = dubbo.write_app("shop", "10.0.0.9", 20880)
    assert key == "/services/shop/10.0.0.9:20880"
    got = one(key, value, lease=2)
    assert (got.layout, got.service, got.address, got.healthy) == (
        Layout.DUBBO_APP,
        "shop",
        "10.0.0.9:20880",
        True,
    )
    off = json.loads(value)
    off["Enable"] = False
    assert one(key, json.dumps(off).encode()).healthy is False
    # The walkthrough's own value under the same prefix is not dubbo-go's.
    walk = b'{"Id":"1","Name":"shop","Address":"http://10.0.0.9:80"}'
    assert judge("/services/shop/1", walk) is None


def test_kitex_and_hertz() -> None:
    key, value = cloudwego.write("echo", "10.0.0.3:8888")
    assert (key, value) == (
        "kitex/registry-etcd/echo/10.0.0.3:8888",
        b'{"network":"tcp","address":"10.0.0.3:8888","weight":10,"tags":null}',
    )
    got = one(key, value, lease=4)
    assert (got.layout, got.service, got.address) == (Layout.KITEX, "echo", "10.0.0.3:8888")
    hkey, hvalue = cloudwego.write("echo", "10.0.0.3:8888", hertz=True)
    assert one(hkey, hvalue).layout is Layout.HERTZ


def test_rpcx() -> None:
    writes = rpcx.write("/rpcx_test", "Arith", "10.0.0.4:8972", weight="10", state="inactive")
    (base, base_value), (svc, svc_value), (key, value) = writes
    assert judge(base, base_value, lease=8) is PLACEHOLDER
    assert judge(svc, svc_value, lease=8) is PLACEHOLDER
    got = one(key, value, lease=8)
    assert (got.layout, got.service, got.instance_id, got.address, got.healthy) == (
        Layout.RPCX,
        "Arith",
        "tcp@10.0.0.4:8972",
        "10.0.0.4:8972",
        False,
    )
    assert one(key, b"", lease=8).healthy is None


def test_goframe() -> None:
    key, value = goframe.write("user", ["10.0.0.1:8000", "10.0.0.1:8001"], protocol="grpc")
    assert key == "/service/default/default/user/latest/10.0.0.1:8000,10.0.0.1:8001"
    got = one(key, value, lease=6)
    assert (got.layout, got.service, got.addresses) == (
        Layout.GOFRAME,
        "user",
        ("10.0.0.1:8000", "10.0.0.1:8001"),
    )
    assert ("protocol", "grpc") in got.fields


def test_coredns() -> None:
    key, value = coredns.write("x1.dns.skydns.local", "10.0.0.10", 8080, priority=10)
    assert key == "/skydns/local/skydns/dns/x1"
    got = one(key, value)
    assert (got.layout, got.service, got.instance_id, got.address) == (
        Layout.COREDNS,
        "dns.skydns.local",
        "x1",
        "10.0.0.10:8080",
    )


# -- what must not be taken for a framework's ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "lease"),
    [
        ("/services/Orders/a1", b'{"Id":"a1","Name":"Orders","Address":"http://h:80"}', 5),
        ("/services/Orders/a1", b'{"id":"a1","name":"Orders","address":"http://h:80"}', 0),
        # Go's json would fill an Update from these; the exact names differ, so: not gRPC.
        ("svc/e1", b'{"op":0,"addr":"h:1","metadata":null}', 0),
        ("svc/e1", b'{"Op":1,"Addr":"h:1","Metadata":null}', 0),  # Op 1 = Delete
        ("svc/e1", b'{"Op":0,"Addr":"h:1","Metadata":null,"X":1}', 0),
        # Kitex's value names, but one missing.
        ("kitex/registry-etcd/echo/h:1", b'{"network":"tcp","address":"h:1","weight":1}', 3),
        ("user.rpc/12", b"10.0.0.7:8080", 0),  # go-zero's shape without a lease
        ("user.rpc/12", b"not an address", 12),
        ("/rpcx_test/Arith/tcp@h:1", b'{"json": "is not a query"}', 8),
        ("/service/default/default/user/latest/not-an-address", b"{}", 6),
        ("/skydns/local/x", b'{"port": 53}', 0),
        ("/dubbo/iface/providers/%%%", b"", 1),
        ("", b"", 0),
        ("/", b"\xff\xfe", 0),
    ],
)
def test_lookalikes_are_not_recognised(key: str, raw: bytes, lease: int) -> None:
    assert judge(key, raw, lease) is None


HOSTILE: list[Any] = [
    {"Op": 0, "Addr": "\x1b[31mred\x1b[0m" * 1000, "Metadata": {"a": [1] * 10_000}},
    {"nodes": [{"id": "x", "address": "y" * 100_000}], "name": None},
    {"network": "tcp", "address": "h:1", "weight": {"deep": [[[[]]]]}, "tags": ["x"] * 10_000},
    {"ServiceName": "s", "Host": "h", "Port": 1, "Metadata": {str(i): i for i in range(10_000)}},
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize(
    "key",
    ["svc/e1", "/micro/registry/a/b", "kitex/registry-etcd/a/h:1", "/services/s/h:1"],
)
def test_hostile_values_are_bounded(key: str, value: Any) -> None:
    found = judge(key, json.dumps(value).encode(), lease=1)
    if isinstance(found, Recognised):
        assert len(found.addresses) <= 16 and len(found.fields) <= 16
        assert all(len(text) <= 100_000 for _, text in found.fields)
        assert all(len(text) <= 512 for _, text in found.fields)
