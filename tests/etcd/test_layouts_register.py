"""A test instance registered in each framework's layout: etcdctl reads what that framework's
registrar writes (key, bytes, lease), the recogniser reads it back, and unregistering
removes the instance and leaves the framework's lease-less path keys, as the framework does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

import pytest
from support.cli_helpers import CLI, run_cli
from support.helpers import connection

from etcd_registry_tui.registry.layouts import Layout, Recognised, recognise
from etcd_registry_tui.registry.layouts.registrar import check_address
from etcd_registry_tui.registry.model import parse_value
from etcd_registry_tui.registry.registration import ServiceRegistration

ADDRESS = "127.0.0.1:40123"

EXPECTED: dict[Layout, tuple[str, bytes | None]] = {
    Layout.GRPC: ("echo/i1", b'{"Op":0,"Addr":"127.0.0.1:40123","Metadata":null}'),
    Layout.MICRO: ("/micro/registry/echo/echo-i1", None),
    Layout.KRATOS: ("/microservices/echo/i1", None),
    Layout.DUBBO_APP: ("/services/echo/127.0.0.1:40123", None),
    Layout.KITEX: (
        "kitex/registry-etcd/echo/127.0.0.1:40123",
        b'{"network":"tcp","address":"127.0.0.1:40123","weight":10,"tags":null}',
    ),
    Layout.HERTZ: ("hertz/registry-etcd/echo/127.0.0.1:40123", None),
    Layout.RPCX: ("/rpcx_test/echo/tcp@127.0.0.1:40123", b""),
    Layout.GOFRAME: ("/service/default/default/echo/latest/127.0.0.1:40123", b"{}"),
    Layout.COREDNS: ("/skydns/local/skydns/echo/i1", b'{"host":"127.0.0.1","port":40123}'),
}


@pytest.mark.parametrize("layout", list(EXPECTED), ids=lambda layout: layout.value)
async def test_registered_in_a_layout_reads_back(etcd: Any, etcdctl: Any, layout: Layout) -> None:
    key, value = EXPECTED[layout]
    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(conn, "echo", ADDRESS, ttl=20, instance_id="i1", layout=layout)
        async with reg:
            assert reg.key == key
            kv = etcdctl.get_prefix(key).kvs[key.encode()]
            if value is not None:
                assert kv.value == value
            assert kv.lease == reg.lease_id
            ttl, granted = etcdctl.lease_timetolive(reg.lease_id)
            assert granted == 20 and 0 < ttl <= 20
            fields, _ = parse_value(kv.value)
            hit = recognise(key, fields, kv.value, kv.lease)
            assert isinstance(hit, Recognised) and hit.layout is layout
            assert hit.service.startswith("echo") and ADDRESS in (hit.address or "")
        assert etcdctl.get(key) is None


async def test_go_zero_key_names_its_lease_and_dubbo_keeps_its_paths(
    etcd: Any, etcdctl: Any
) -> None:
    async with connection(etcd.endpoint) as conn:
        async with ServiceRegistration(
            conn, "user.rpc", ADDRESS, ttl=10, layout=Layout.GO_ZERO
        ) as reg:
            assert reg.key == f"user.rpc/{reg.lease_id}"
            assert etcdctl.get(reg.key) == ADDRESS.encode()
        assert etcdctl.get_prefix("user.rpc/").kvs == {}
        async with ServiceRegistration(conn, "org.Echo", ADDRESS, layout=Layout.DUBBO) as reg:
            assert reg.key.startswith("/dubbo/org.Echo/providers/tri%3A%2F%2F127.0.0.1%3A40123")
            assert etcdctl.get(reg.key) == b""
        left = {k.decode(): kv.lease for k, kv in etcdctl.get_prefix("/dubbo").kvs.items()}
        assert left == {"/dubbo": 0, "/dubbo/org.Echo": 0, "/dubbo/org.Echo/providers": 0}


def test_cli_register_layout_uses_the_framework_ttl(etcd: Any, etcdctl: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        [*CLI, "register", "--layout", "kratos", "--name", "shop", "--id", "k1",
         "--address", "http://127.0.0.1:8000", "--endpoints", etcd.endpoint],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "registered /microservices/shop/k1" in first and "TTL 15s" in first, first
        value = json.loads(etcdctl.get("/microservices/shop/k1") or b"null")
        assert value["endpoints"] == ["http://127.0.0.1:8000"] and value["name"] == "shop"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert etcdctl.get("/microservices/shop/k1") is None


BAD_ADDRESSES = {
    "no-port": "is not host:port",
    "127.0.0.1:0": "port 0 is not in 1-65535",
    "127.0.0.1:99999": "port 99999 is not in 1-65535",
    "http://127.0.0.1:70000": "port 70000 is not in 1-65535",  # a URL's port too
    "127.0.0.1:http": "port 'http' is not a number",
    "::1:8080": "an IPv6 host goes in brackets",
    " ": "the address is empty",
}


@pytest.mark.parametrize("address", list(BAD_ADDRESSES))
@pytest.mark.parametrize("layout", ["kitex", "kratos"])
def test_cli_register_refuses_a_bad_address_before_it_writes(
    etcd: Any, etcdctl: Any, layout: str, address: str
) -> None:
    result = run_cli(
        "register", "--layout", layout, "--name", "echo", "--address", address,
        "--endpoints", etcd.endpoint,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and BAD_ADDRESSES[address] in lines[0], result.stderr
    assert "--address" in lines[0] and "Traceback" not in result.stderr
    # Refused before it connected: no lease was granted, no key written.
    assert etcdctl.run("lease", "list").split()[:2] == ["found", "0"]
    assert not etcdctl.get_prefix("").kvs


def test_cli_register_walkthrough_refuses_only_an_empty_address(etcd: Any) -> None:
    result = run_cli("register", "--name", "echo", "--address", "", "--endpoints", etcd.endpoint)
    assert result.returncode == 2 and "the address is empty" in result.stderr, result.stderr


@pytest.mark.parametrize("address", ["[::1]:8080", "http://[::1]:5000", "localhost:1"])
def test_a_good_address_passes_the_check(address: str) -> None:
    for layout in Layout:
        check_address(layout, address)
