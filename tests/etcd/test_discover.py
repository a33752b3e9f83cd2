"""``--discover``: one keys-only scan of a real etcd finds the prefixes where the
frameworks' registrars wrote (values only for a few samples per root), leaves the rest of
the keyspace alone, and the dashboard's commands then watch or list every one of them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.cli_helpers import run_cli
from support.helpers import connection

from etcd_registry_tui.registry.discover import KeyspaceTooLargeToDiscover, discover, root_of

KRATOS = (
    "/microservices/shop.api/0b9f2c1e",
    '{"id":"0b9f2c1e","name":"shop.api","version":"v1.2.0","metadata":{"weight":"50"},'
    '"endpoints":["grpc://127.0.0.1:9000","http://127.0.0.1:8000"]}',
)
WALKTHROUGH = ("/services/shop/a1", '{"Id":"a1","Name":"shop","Address":"http://127.0.0.1:5000"}')
KITEX = (
    "kitex/registry-etcd/echo/127.0.0.1:8888",
    '{"network":"tcp","address":"127.0.0.1:8888","weight":10,"tags":{}}',
)
NOISE = [("/config/app/colour", "blue"), ("/registry/pods/x", "\x00\x01k8s"), ("plain", "x")]


def fill(etcdctl: Any) -> str:
    for key, value in (KRATOS, WALKTHROUGH, KITEX, *NOISE):
        etcdctl.put(key, value)
    lease = etcdctl.lease_grant(60)
    gozero = f"user.rpc/{lease}"  # go-zero: the key's last segment is its lease, in decimal
    etcdctl.put(gozero, "127.0.0.1:8080", lease=lease)
    return gozero


def test_root_of_a_key_is_its_first_segment() -> None:
    assert root_of(b"/services/shop/a1") == b"/services/"
    assert root_of(b"kitex/registry-etcd/x") == b"kitex/"
    assert root_of(b"plain") is None and root_of(b"/") is None


async def test_discover_finds_each_frameworks_root_and_nothing_else(
    etcd: Any, etcdctl: Any
) -> None:
    fill(etcdctl)
    async with connection(etcd.endpoint) as conn:
        found = await discover(conn)
        assert {f.prefix: f.layouts for f in found.found} == {
            "/microservices/": ["kratos"],
            "/services/": ["services"],
            "kitex/": ["kitex"],
            "user.rpc/": ["go-zero"],
        }
        assert found.scanned == 7
        assert "kratos" in found.describe() and "/config/" not in found.describe()
        with pytest.raises(KeyspaceTooLargeToDiscover, match="7 keys to scan"):
            await discover(conn, max_keys=6)


def test_list_discover_lists_every_layout_found(etcd: Any, etcdctl: Any) -> None:
    gozero = fill(etcdctl)
    result = run_cli("list", "--json", "--discover", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    keys = {i["key"] for s in doc["services"] for i in s["instances"]}
    assert keys == {KRATOS[0], WALKTHROUGH[0], KITEX[0], gozero}
    assert "discover: found" in result.stderr and "go-zero" in result.stderr
    given = run_cli(
        "list", "--json", "--discover", "--endpoints", etcd.endpoint, "--prefix", "/none/"
    )
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["prefixes"][0] == "/none/"  # a --prefix given stays first
