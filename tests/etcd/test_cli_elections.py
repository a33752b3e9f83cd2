"""`elect` and `elections` as subprocesses, with etcdctl elect / lock on the other side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from support.etcdctl import Etcdctl
from test_cli import run_cli

CLI = [sys.executable, "-m", "etcd_registry_tui"]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def spawn(started: list[subprocess.Popen[bytes]], cmd: list[str]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    started.append(proc)
    return proc


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def observe_leader(etcdctl: Etcdctl, name: str) -> tuple[str, str]:
    """The first leader `etcdctl elect -l NAME` reports: (key, value)."""
    proc = subprocess.Popen(
        etcdctl._cmd(["elect", "-l", name]),  # type: ignore[arg-type]
        env=etcdctl.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    timer = threading.Timer(15, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        return proc.stdout.readline().decode().strip(), proc.stdout.readline().decode().strip()
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def elections(endpoint: str, *extra: str) -> list[dict[str, object]]:
    result = run_cli("elections", "--json", "--endpoints", endpoint, *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_elect_waits_behind_etcdctl_leads_then_resigns_on_sigterm(etcd, etcdctl: Etcdctl, procs):
    alice = spawn(procs, etcdctl._cmd(["elect", "myjob", "alice"]))  # type: ignore[arg-type]
    wait_for(lambda: etcdctl.get_prefix("myjob/").kvs != {})
    ours = spawn(
        procs, [*CLI, "elect", "myjob", "py-1", "--ttl", "10", "--endpoints", etcd.endpoint]
    )
    wait_for(lambda: len(etcdctl.get_prefix("myjob/").kvs) == 2)

    doc = elections(etcd.endpoint)
    assert [e["name"] for e in doc] == ["myjob"]
    (job,) = doc
    assert job["kind"] == "election"
    queue = job["candidates"]
    assert [c["value"] for c in queue] == ["alice", "py-1"]  # type: ignore[index]
    for c in queue:  # type: ignore[union-attr]
        assert c["key"] == f"myjob/{int(c['lease'], 16):x}" and 0 < c["ttl"] <= 60
        assert c["create_revision"] > 0
    assert queue[0]["create_revision"] < queue[1]["create_revision"]  # type: ignore[index]

    alice.send_signal(signal.SIGINT)  # alice resigns: ours leads and says so as etcdctl would
    assert ours.stdout is not None
    key_line = ours.stdout.readline().decode().strip()
    assert key_line.startswith("myjob/") and ours.stdout.readline().decode().strip() == "py-1"
    assert observe_leader(etcdctl, "myjob") == (key_line, "py-1")
    lease = int(key_line.split("/")[1], 16)
    ours.send_signal(signal.SIGTERM)
    assert ours.wait(20) == 0
    assert etcdctl.get_prefix("myjob/").kvs == {}
    assert etcdctl.lease_timetolive(lease)[0] <= 0  # revoked, not left to expire


def test_elect_exits_non_zero_when_leadership_is_lost(etcd, etcdctl: Etcdctl, procs):
    ours = spawn(procs, [*CLI, "elect", "solo", "me", "--endpoints", etcd.endpoint])
    assert ours.stdout is not None
    key_line = ours.stdout.readline().decode().strip()
    assert key_line.startswith("solo/")
    etcdctl.lease_revoke(int(key_line.split("/")[1], 16))
    assert ours.wait(20) == 1
    assert ours.stderr is not None
    err = ours.stderr.read().decode().strip().splitlines()
    assert len(err) == 1 and "lost" in err[0]


def test_elections_lists_locks_and_honours_prefixes(etcd, etcdctl: Etcdctl, procs):
    spawn(procs, etcdctl._cmd(["lock", "/locks/db"]))  # type: ignore[arg-type]
    wait_for(lambda: etcdctl.get_prefix("/locks/db/").kvs != {})
    lease = etcdctl.lease_grant(60)
    etcdctl.put(f"election/nodejob/{lease}", "node-1", lease=lease)
    etcdctl.put("/services/Orders/a1", '{"Id": "a1"}')  # not an election

    names = {e["name"]: e["kind"] for e in elections(etcd.endpoint)}
    assert names == {"/locks/db": "lock", "election/nodejob": "election"}
    only = elections(etcd.endpoint, "--elections-prefix", "/locks/")
    assert [e["name"] for e in only] == ["/locks/db"]
    node = elections(etcd.endpoint, "--elections-prefix", "election/")[0]
    (candidate,) = node["candidates"]  # type: ignore[misc]
    assert candidate["key"] == f"election/nodejob/{lease}"  # Node's key: decimal
    assert candidate["lease"] == format(lease, "016x")  # shown as etcdctl shows lease ids

    text = run_cli("elections", "--endpoints", etcd.endpoint)
    assert text.returncode == 0 and "holder" in text.stdout and "leader" in text.stdout
