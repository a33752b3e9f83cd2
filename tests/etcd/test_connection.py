"""EtcdConnection against real etcd: errors, auth, config, big ranges, a 3-member cluster."""

from __future__ import annotations

import asyncio
import base64
import socket
import time

import grpc
import pytest
from aetcd import rpc
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually

from etcd_registry_tui.demo.embedded import EmbeddedCluster, EmbeddedEtcd, free_ports
from etcd_registry_tui.registry.etcd.config import ConnectionConfig, parse_duration, parse_endpoint
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import (
    ConfigError,
    EtcdAuthError,
    EtcdTimeout,
    EtcdUnavailable,
    LeaseNotFound,
)

# --------------------------------------------------------------------------------------------
# unreachable / stalled endpoints


async def test_unreachable_endpoint_names_the_endpoint_quickly() -> None:
    port = free_ports(1)[0]  # nothing listens there
    endpoint = f"127.0.0.1:{port}"
    conn = EtcdConnection(ConnectionConfig(endpoints=(endpoint,), dial_timeout=1.0))
    try:
        started = time.monotonic()
        with pytest.raises(EtcdUnavailable) as info:
            await conn.connect()
        assert time.monotonic() - started < 1.0 + 4  # dial timeout, not the 5 s default
        assert endpoint in str(info.value)
        assert info.value.hint  # says what to do
        assert endpoint in info.value.user_message()
        # later calls fail the same way (no hang, no aetcd exception leaking out)
        with pytest.raises(EtcdUnavailable, match=endpoint):
            await conn.get_prefix(b"/services/")
        with pytest.raises(EtcdUnavailable, match=endpoint):
            await conn.put(b"/services/a/b", b"x")
    finally:
        await conn.close()


async def test_silent_endpoint_honours_the_dial_timeout() -> None:
    # A TCP listener that never speaks HTTP/2: the connection "hangs" like a black hole.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        endpoint = f"127.0.0.1:{sock.getsockname()[1]}"
        conn = EtcdConnection(ConnectionConfig(endpoints=(endpoint,), dial_timeout=1.0))
        try:
            started = time.monotonic()
            with pytest.raises(EtcdUnavailable) as info:
                await conn.connect()
            assert time.monotonic() - started < 1.0 + 4
            assert endpoint in str(info.value)
            assert "refused" not in str(info.value)  # something listens: not "refused"
        finally:
            await conn.close()


async def test_stalled_etcd_that_answers_within_the_dial_timeout_is_used(
    etcd: EmbeddedEtcd,
) -> None:
    # etcd is frozen while the client dials and thawed well inside the dial timeout: the
    # connection must wait for it rather than give up on the first slow handshake.
    etcd.freeze()
    loop = asyncio.get_running_loop()
    loop.call_later(1.0, etcd.thaw)
    conn = EtcdConnection(ConnectionConfig(endpoints=(etcd.endpoint,), dial_timeout=5.0))
    try:
        await conn.connect()
        await conn.put(b"/services/a/b", b"x")
    finally:
        etcd.thaw()
        await conn.close()


async def test_frozen_etcd_gives_a_timeout(etcd: EmbeddedEtcd) -> None:
    conn = EtcdConnection(
        ConnectionConfig(endpoints=(etcd.endpoint,), dial_timeout=1.0, command_timeout=1.0)
    )
    try:
        await conn.connect()
        etcd.freeze()
        started = time.monotonic()
        with pytest.raises(EtcdTimeout, match=etcd.endpoint):
            await conn.get_prefix(b"/services/", timeout=1.0)
        assert time.monotonic() - started < 1.0 + 4
        etcd.thaw()
        await eventually(lambda: _works(conn), timeout=15)
    finally:
        etcd.thaw()
        await conn.close()


async def _works(conn: EtcdConnection) -> bool:
    try:
        await conn.get_prefix(b"/services/")
    except EtcdUnavailable:
        return False
    return True


# --------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize(
    "endpoint",
    [
        "",
        "   ",
        "127.0.0.1:notaport",
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "127.0.0.1:-1",
        "unix:///tmp/etcd.sock",
        "grpc://127.0.0.1:2379",
        "http://",
        ":2379",
        "http://127.0.0.1:2379/v3/kv",
        "[::1]:x",
        "127.0.0.1:2379:2380",
    ],
)
def test_bad_endpoint_strings_give_config_error(endpoint: str) -> None:
    with pytest.raises(ConfigError):
        ConnectionConfig(endpoints=(endpoint,))
    if endpoint.strip():  # empty items of a comma list are skipped, like etcdctl does
        with pytest.raises(ConfigError):
            ConnectionConfig.from_options(endpoints=f"127.0.0.1:2379,{endpoint}", env={})


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:2379", ("127.0.0.1", 2379, False)),
        ("127.0.0.1", ("127.0.0.1", 2379, False)),
        ("http://127.0.0.1:23790/", ("127.0.0.1", 23790, False)),
        ("HTTPS://etcd.local:2379", ("etcd.local", 2379, True)),
        ("[::1]:2379", ("::1", 2379, False)),
        ("::1", ("::1", 2379, False)),
        (" localhost:12 ", ("localhost", 12, False)),
    ],
)
def test_good_endpoint_strings(endpoint: str, expected: tuple[str, int, bool]) -> None:
    assert parse_endpoint(endpoint) == expected


def test_other_config_errors() -> None:
    with pytest.raises(ConfigError):
        ConnectionConfig(endpoints=())
    with pytest.raises(ConfigError):
        ConnectionConfig.from_options(endpoints=" , ,", env={})
    with pytest.raises(ConfigError):
        ConnectionConfig(user="root")  # no password
    with pytest.raises(ConfigError):
        ConnectionConfig(dial_timeout=0)
    with pytest.raises(ConfigError):
        ConnectionConfig(prefix="services")
    with pytest.raises(ConfigError):
        ConnectionConfig.from_options(env={"ETCDCTL_DIAL_TIMEOUT": "soon"})
    with pytest.raises(ConfigError):
        parse_duration("-1s")


def test_from_options_reads_etcdctl_environment() -> None:
    env = {
        "ETCDCTL_ENDPOINTS": "127.0.0.1:1111,http://127.0.0.1:2222",
        "ETCDCTL_USER": "alice:s3:cret",
        "ETCDCTL_DIAL_TIMEOUT": "1500ms",
        "ETCDCTL_COMMAND_TIMEOUT": "7s",
    }
    cfg = ConnectionConfig.from_options(env=env)
    assert cfg.endpoints == ("127.0.0.1:1111", "http://127.0.0.1:2222")
    assert cfg.hosts == (("127.0.0.1", 1111), ("127.0.0.1", 2222))
    assert cfg.label == "127.0.0.1:1111,127.0.0.1:2222"
    assert cfg.targets == ("127.0.0.1:1111", "127.0.0.1:2222")
    assert (cfg.user, cfg.password) == ("alice", "s3:cret")  # split at the first colon only
    assert cfg.dial_timeout == 1.5 and cfg.command_timeout == 7.0
    assert cfg.prefix == "/services/"

    separate = ConnectionConfig.from_options(env={"ETCDCTL_USER": "bob", "ETCDCTL_PASSWORD": "pw"})
    assert (separate.user, separate.password) == ("bob", "pw")
    assert separate.endpoints == ("127.0.0.1:2379",)

    # command-line values win over the environment
    cli = ConnectionConfig.from_options(
        endpoints="127.0.0.1:3333", user="carol:pw2", dial_timeout=2.0, env=env
    )
    assert cli.endpoints == ("127.0.0.1:3333",)
    assert (cli.user, cli.password) == ("carol", "pw2")
    assert cli.dial_timeout == 2.0 and cli.command_timeout == 7.0

    # an explicit empty env ignores the process environment
    assert ConnectionConfig.from_options(env={}).user is None


# --------------------------------------------------------------------------------------------
# authentication


def _enable_auth(etcdctl: Etcdctl, password: str = "pw") -> Etcdctl:
    etcdctl.run("user", "add", f"root:{password}")
    etcdctl.run("auth", "enable")
    authed = Etcdctl(etcdctl.endpoints, binary=etcdctl.binary)
    authed.env = {**etcdctl.env, "ETCDCTL_USER": f"root:{password}"}
    return authed


async def test_auth_wrong_password_missing_user_and_right_password(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    authed = _enable_auth(etcdctl)
    authed.put("/services/Orders/1", '{"Id": "1"}')

    wrong = EtcdConnection(ConnectionConfig(endpoints=(etcd.endpoint,), user="root", password="x"))
    try:
        with pytest.raises(EtcdAuthError) as info:
            await wrong.connect()
        assert etcd.endpoint in str(info.value)
        with pytest.raises(EtcdAuthError):
            await wrong.get_prefix(b"/services/")
    finally:
        await wrong.close()

    anonymous = EtcdConnection(ConnectionConfig(endpoints=(etcd.endpoint,)))
    try:
        with pytest.raises(EtcdAuthError):
            await anonymous.get_prefix(b"/services/")
    finally:
        await anonymous.close()

    cfg = ConnectionConfig.from_options(
        env={"ETCDCTL_ENDPOINTS": etcd.endpoint, "ETCDCTL_USER": "root:pw"}
    )
    async with EtcdConnection(cfg) as conn:
        kvs, _ = await conn.get_prefix(b"/services/")
        assert [kv.key for kv in kvs] == [b"/services/Orders/1"]
        await conn.put(b"/services/Orders/2", b'{"Id": "2"}')
        lease, _ = await conn.grant(30)
        assert (await conn.time_to_live(lease))[1] == 30
        await conn.revoke(lease)
    assert authed.get("/services/Orders/2") == b'{"Id": "2"}'


async def test_auth_token_expiry_is_survived(make_etcdctl: object) -> None:
    # A short simple-token TTL: after a quiet spell the token is stale and the connection
    # must authenticate again by itself.
    with EmbeddedEtcd(extra_args=["--auth-token-ttl", "1"]) as server:
        etcdctl = make_etcdctl(server.endpoint)  # type: ignore[operator]
        _enable_auth(etcdctl)
        cfg = ConnectionConfig(endpoints=(server.endpoint,), user="root", password="pw")
        async with EtcdConnection(cfg) as conn:
            await conn.put(b"/services/a/1", b"1")
            await asyncio.sleep(3)
            await conn.put(b"/services/a/2", b"2")
            kvs, _ = await conn.get_prefix(b"/services/")
            assert len(kvs) == 2


# --------------------------------------------------------------------------------------------
# leases


async def test_unknown_leases(etcd: EmbeddedEtcd) -> None:
    async with connection(etcd.endpoint) as conn:
        with pytest.raises(LeaseNotFound):
            await conn.revoke(0x1234ABCD)
        assert (await conn.time_to_live(0x1234ABCD))[0] == -1

        lease, granted = await conn.grant(20)
        assert granted == 20
        ttl, granted_ttl, keys = await conn.time_to_live(lease, keys=True)
        assert 0 < ttl <= 20 and granted_ttl == 20 and keys == []
        await conn.put(b"/services/a/1", b"x", lease=lease)
        assert (await conn.time_to_live(lease, keys=True))[2] == [b"/services/a/1"]
        assert lease in await conn.leases()
        await conn.revoke(lease)
        assert await conn.get(b"/services/a/1") is None
        with pytest.raises(LeaseNotFound):
            await conn.revoke(lease)  # twice
        assert (await conn.time_to_live(lease))[0] == -1
        with pytest.raises(LeaseNotFound):
            await conn.put(b"/services/a/1", b"x", lease=lease)


# --------------------------------------------------------------------------------------------
# big ranges


async def test_get_prefix_beyond_the_grpc_default_message_size(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    count = 20_000
    value = b"v" * 200
    async with connection(etcd.endpoint) as conn:
        sem = asyncio.Semaphore(64)

        async def put(i: int) -> None:
            async with sem:
                await conn.put(f"/services/S{i % 100:03d}/{i:06d}".encode(), value)

        await asyncio.gather(*(put(i) for i in range(count)))
        kvs, revision = await conn.get_prefix(b"/services/")
        assert len(kvs) == count
        assert sum(kv.ByteSize() for kv in kvs) > 4 * 1024 * 1024  # past gRPC's 4 MB default
        assert all(kv.value == value for kv in kvs)
        assert revision >= count + 1

        # a plain channel with gRPC defaults cannot receive that response
        async with grpc.aio.insecure_channel(etcd.endpoint) as plain:
            request = rpc.RangeRequest(key=b"/services/", range_end=b"/services0")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await rpc.KVStub(plain).Range(request, timeout=20)
            assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

    counted = etcdctl.run_json("get", "--prefix", "--limit", "1", "/services/")
    assert counted["count"] == count


# --------------------------------------------------------------------------------------------
# a 3-member cluster


def _member_names(etcdctl: Etcdctl) -> dict[int, str]:
    return {int(m["ID"]): str(m["name"]) for m in etcdctl.member_list()}  # type: ignore[call-overload]


async def test_multi_endpoint_survives_losing_the_connected_member(
    etcd_cluster: EmbeddedCluster, cluster_etcdctl: Etcdctl
) -> None:
    cfg = ConnectionConfig(
        endpoints=tuple(etcd_cluster.endpoints), dial_timeout=2.0, command_timeout=3.0
    )
    assert len(cfg.targets) == 3
    names = _member_names(cluster_etcdctl)
    async with EtcdConnection(cfg) as conn:
        await conn.put(b"/services/Orders/1", b"one")
        status = await conn.status()
        connected = etcd_cluster.member(names[int(status.header.member_id)])
        connected.kill()

        async def put_two() -> bool:
            try:
                await conn.put(b"/services/Orders/2", b"two")
            except EtcdUnavailable:
                return False
            return True

        await eventually(put_two, timeout=20, interval=0.2)
        kvs, _ = await conn.get_prefix(b"/services/")
        assert {kv.key: kv.value for kv in kvs} == {
            b"/services/Orders/1": b"one",
            b"/services/Orders/2": b"two",
        }
        status = await conn.status()
        assert names[int(status.header.member_id)] != connected.name

        lease, _ = await conn.grant(30)
        assert (await conn.time_to_live(lease))[1] == 30

    kvs, _ = cluster_etcdctl.get_prefix("/services/")
    assert kvs[b"/services/Orders/2"].value == b"two"


async def test_get_prefix_in_pages_is_one_consistent_snapshot(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    """Pages are read at the first page's revision: writes meanwhile are not mixed in."""
    async with connection(etcd.endpoint) as conn:
        for n in range(60):
            await conn.put(f"/services/Paged/{n:03d}".encode(), b"v1")
        stop = asyncio.Event()

        async def writer() -> None:
            n = 0
            while not stop.is_set():
                await conn.put(f"/services/Paged/{n % 60:03d}".encode(), f"v{n}".encode())
                await conn.put(f"/services/Paged/new-{n}".encode(), b"x")
                n += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        try:
            await asyncio.sleep(0.05)
            kvs, revision = await conn.get_prefix(b"/services/Paged/", page_size=7)
        finally:
            stop.set()
            await task
    got = {kv.key: (kv.value, kv.mod_revision) for kv in kvs}
    assert len(got) == len(kvs), "no key twice across pages"
    at_revision = etcdctl.run_json("get", "--prefix", "/services/Paged/", f"--rev={revision}")
    expected = {
        base64.b64decode(kv["key"]): (base64.b64decode(kv.get("value", "")), kv["mod_revision"])
        for kv in at_revision.get("kvs", [])
    }
    assert got == expected
    later, _ = etcdctl.get_prefix("/services/Paged/")
    assert len(later) > len(got), "the writer did change things while the pages were read"


# --------------------------------------------------------------------------------------------
# the public range / txn / time_to_live that election.py and elections_watch.py use


async def test_public_txn_and_range_as_etcdctl_sees_them(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    dead = f"127.0.0.1:{free_ports(1)[0]}"  # listed first: refused; connect() moves on
    async with connection([dead, etcd.endpoint], dial_timeout=1.0) as conn:
        key = b"/api-test/k"
        absent = rpc.Compare(
            key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0
        )
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=b"one"))
        read = rpc.RequestOp(request_range=rpc.RangeRequest(key=key))
        first = await conn.txn([absent], [put], [read])
        assert first.succeeded
        assert etcdctl.get(key) == b"one"
        second = await conn.txn([absent], [put], [read], timeout=2.0)
        assert not second.succeeded
        assert second.responses[0].response_range.kvs[0].value == b"one"
        etcdctl.put(key, "two")
        response = await conn.range(rpc.RangeRequest(key=key), timeout=2.0)
        assert [kv.value for kv in response.kvs] == [b"two"]
        lease, granted = await conn.grant(30)
        remaining, granted_again, keys = await conn.time_to_live(lease, timeout=2.0)
        assert granted_again == granted and 0 < remaining <= granted and keys == []
