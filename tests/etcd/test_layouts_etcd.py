"""Registries written as each framework writes them (bytes from the sources cited in
registry/layouts/), put with etcdctl into a real etcd, read back by ``list --json``: the
right service, address and countdown, the framework's fields, and path keys kept apart."""

from __future__ import annotations

import json
from typing import Any

from test_cli import run_cli

# (key, value, leased) as each framework's registrar writes them.
MICRO = (
    "/micro/registry/helloworld/helloworld-5b3e8d4c",
    '{"name":"helloworld","version":"latest","metadata":null,"endpoints":[],'
    '"nodes":[{"id":"helloworld-5b3e8d4c","address":"127.0.0.1:40001",'
    '"metadata":{"broker":"http","protocol":"mucp","registry":"etcd"}}]}',
)
KRATOS = (
    "/microservices/shop.api/0b9f2c1e",
    '{"id":"0b9f2c1e","name":"shop.api","version":"v1.2.0","metadata":{"weight":"50"},'
    '"endpoints":["grpc://127.0.0.1:9000","http://127.0.0.1:8000"]}',
)
DUBBO_APP = (
    "/services/shop/127.0.0.1:20880",
    '{"ID":"127.0.0.1:20880","ServiceName":"shop","Host":"127.0.0.1","Port":20880,'
    '"Weight":100,"Enable":true,"Healthy":true,"Metadata":{"dubbo.metadata.revision":"9"},'
    '"ServiceMetadata":null,"Address":"","GroupName":"","Tag":""}',
)
WALKTHROUGH = (
    "/services/shop/a1",
    '{"Id":"a1","Name":"shop","Address":"http://127.0.0.1:5000"}',
)
DUBBO_PROVIDER = (
    "/dubbo/org.apache.dubbo.UserProvider/providers/tri%3A%2F%2F127.0.0.1%3A20000%2F"
    "org.apache.dubbo.UserProvider%3Fside%3Dprovider%26version%3D1.0%26weight%3D100"
)
GOFRAME = ("/service/default/default/user/latest/127.0.0.1:8000", '{"protocol":"grpc"}')
RPCX_BASE = "/rpcx_test"
GRPC = ("/grpc/echo/127.0.0.1:50051", '{"Op":0,"Addr":"127.0.0.1:50051","Metadata":null}')


def services(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {s["name"]: s["instances"] for s in doc["services"]}


def test_every_layout_under_one_prefix_reads_back(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    for key, value in (MICRO, KRATOS, DUBBO_APP, WALKTHROUGH, GOFRAME, GRPC):
        etcdctl.put(key, value, lease=lease)
    for path in ("/dubbo", "/dubbo/org.apache.dubbo.UserProvider",
                 "/dubbo/org.apache.dubbo.UserProvider/providers"):  # fmt: skip
        etcdctl.put(path, "")
    etcdctl.put(DUBBO_PROVIDER, "", lease=lease)
    rpcx_lease = etcdctl.lease_grant(30)  # one lease per rpcx process, path keys on it too
    etcdctl.put(RPCX_BASE, "rpcx_path", lease=rpcx_lease)
    etcdctl.put(f"{RPCX_BASE}/Arith", "Arith", lease=rpcx_lease)
    etcdctl.put(f"{RPCX_BASE}/Arith/tcp@127.0.0.1:8972", "weight=10&group=g1", lease=rpcx_lease)

    result = run_cli("list", "--json", "--prefix", "/", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    found = services(json.loads(result.stdout))
    expected = {
        "helloworld · micro": ("micro", "127.0.0.1:40001"),
        "shop.api · kratos": ("kratos", "grpc://127.0.0.1:9000"),
        "shop · dubbo-app": ("dubbo-app", "127.0.0.1:20880"),
        "user · goframe": ("goframe", "127.0.0.1:8000"),
        "/grpc/echo · grpc": ("grpc", "127.0.0.1:50051"),
        "org.apache.dubbo.UserProvider · dubbo": ("dubbo", "127.0.0.1:20000"),
        "Arith · rpcx": ("rpcx", "127.0.0.1:8972"),
    }
    for group, (layout, address) in expected.items():
        (inst,) = found[group]
        assert (inst["layout"], inst["address"]) == (layout, address), inst
        assert inst["granted_ttl"] in (60, 30) and inst["ttl"] > 0
        assert "error" not in inst, inst
    assert found["shop · dubbo-app"][0]["healthy"] is True
    # Under a prefix wider than /services/, the walkthrough's keys are still its instances.
    (walk,) = found["shop"]
    assert (walk["layout"], walk["id"], walk["address"]) == (
        "services",
        "a1",
        "http://127.0.0.1:5000",
    )
    assert "(unrecognised keys)" not in found
    assert found["shop.api · kratos"][0]["addresses"] == [
        "grpc://127.0.0.1:9000",
        "http://127.0.0.1:8000",
    ]
    dubbo = found["org.apache.dubbo.UserProvider · dubbo"][0]["details"]
    assert dubbo["weight"] == "100" and dubbo["version"] == "1.0"
    # Path keys: shown apart, no service, nothing lost.
    paths = {i["key"] for i in found["(framework path keys)"]}
    assert paths == {
        "/dubbo",
        "/dubbo/org.apache.dubbo.UserProvider",
        "/dubbo/org.apache.dubbo.UserProvider/providers",
        RPCX_BASE,
        f"{RPCX_BASE}/Arith",
    }
    total = sum(len(insts) for insts in found.values())
    assert total == len(etcdctl.get_prefix("/").kvs)
    # Which layouts were found where: each instance counted once, under its key's root.
    layouts = {
        (c["layout"], c["prefix"]): c["instances"] for c in json.loads(result.stdout)["layouts"]
    }
    assert layouts == {
        ("micro", "/micro/"): 1, ("kratos", "/microservices/"): 1, ("dubbo-app", "/services/"): 1,
        ("services", "/services/"): 1, ("goframe", "/service/"): 1, ("grpc", "/grpc/"): 1,
        ("dubbo", "/dubbo/"): 1, ("rpcx", "/rpcx_test/"): 1,
    }  # fmt: skip
    assert sum(layouts.values()) == total - len(paths)
    text = run_cli("list", "--prefix", "/", "--endpoints", etcd.endpoint)
    assert text.returncode == 0, text.stderr
    last = text.stdout.strip().splitlines()[-1]
    assert last.startswith("layouts: ") and "kratos 1 under /microservices/" in last, last


def test_dubbo_go_and_the_walkthrough_share_services(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(30)
    etcdctl.put(*DUBBO_APP, lease=lease)
    etcdctl.put(*WALKTHROUGH, lease=lease)
    # Go's json would fill dubbo-go's struct from these lower-case names; they are not its.
    etcdctl.put("/services/shop/b2", '{"id":"b2","servicename":"shop","host":"h","port":1}')
    result = run_cli("list", "--json", "--endpoints", etcd.endpoint)  # --prefix /services/
    assert result.returncode == 0, result.stderr
    found = services(json.loads(result.stdout))
    assert set(found) == {"shop", "shop · dubbo-app"}
    (dubbo,) = found["shop · dubbo-app"]
    assert (dubbo["layout"], dubbo["address"], dubbo["id"]) == (
        "dubbo-app",
        "127.0.0.1:20880",
        "127.0.0.1:20880",
    )
    walk = {i["id"]: i for i in found["shop"]}
    assert set(walk) == {"a1", "b2"}
    assert walk["a1"]["layout"] == "services" and walk["a1"]["address"] == "http://127.0.0.1:5000"
    assert walk["b2"]["layout"] == "services"


def test_a_prefix_without_leading_slash_is_watched(etcd: Any, etcdctl: Any) -> None:
    """Kitex's keys have no leading '/': ``--prefix kitex/registry-etcd/`` is accepted
    and reads exactly what etcdctl holds under it (the walkthrough's key is outside)."""
    lease = etcdctl.lease_grant(60)
    key = "kitex/registry-etcd/echo/127.0.0.1:40123"
    etcdctl.put(key, '{"network":"tcp","address":"127.0.0.1:40123","weight":10}', lease=lease)
    etcdctl.put(*WALKTHROUGH, lease=lease)
    result = run_cli(
        "list", "--json", "--endpoints", etcd.endpoint, "--prefix", "kitex/registry-etcd/"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    keys = [i["key"] for s in doc["services"] for i in s["instances"]]
    assert keys == [k.decode() for k in etcdctl.get_prefix("kitex/registry-etcd/").kvs]
    assert keys == [key]
