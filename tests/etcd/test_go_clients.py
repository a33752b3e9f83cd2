"""Checks against etcd's real Go client (support/go_peers.py builds it): a test instance
registered here in the ``grpc`` layout is found by ``endpoints.Manager`` and reached through
the ``etcd:///`` gRPC resolver; an endpoint the Go manager adds is read by ``list --json``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.cli_helpers import CLI, line_reader, run_cli
from support.helpers import slack

TARGET = "echo"  # dialled as etcd:///echo (the register CLI refuses a name with "/")


def go(peer: Path, *args: str, timeout: float = 30) -> Any:
    done = subprocess.run(
        [str(peer), *args], capture_output=True, text=True, timeout=slack(timeout)
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@contextlib.contextmanager
def running(*argv: str, stdin: bool = False) -> Iterator[tuple[subprocess.Popen[str], Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc, line_reader(proc.stdout)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_cli_grpc_instance_is_found_and_dialled_by_go(etcd: Any, go_peer: Path) -> None:
    ep = ("-endpoints", etcd.endpoint, "-target", TARGET)
    with running(str(go_peer), "serve") as (_, server_lines):
        address = json.loads(server_lines(slack(20)) or "{}")["listening"]
        with running(str(go_peer), "watch", *ep) as (_, watch):
            with running(
                *CLI, "register", "--layout", "grpc", "--name", TARGET, "--id", "i1",
                "--address", address, "--endpoints", etcd.endpoint,
            ) as (reg, reg_lines):  # fmt: skip
                first = reg_lines(slack(20)) or ""
                assert f"registered {TARGET}/i1" in first, first
                listed = go(go_peer, "list", *ep)
                assert listed == {f"{TARGET}/i1": {"Addr": address, "Metadata": None}}
                reached = go(go_peer, "dial", *ep)
                assert reached == {"status": "SERVING", "peer": address}
                reg.send_signal(signal.SIGINT)
                assert reg.wait(slack(15)) == 0
            seen = []
            while not any(u["Op"] == 1 for batch in seen for u in batch):
                line = watch(slack(15))
                assert line is not None, f"the Go watch saw no delete: {seen}"
                seen.append(json.loads(line))
            ops = [(u["Op"], u["Key"]) for batch in seen for u in batch]
            assert ops[-1] == (1, f"{TARGET}/i1") and (0, f"{TARGET}/i1") in ops, ops


def test_go_manager_endpoint_is_listed_here(etcd: Any, go_peer: Path, etcdctl: Any) -> None:
    # A Go target "/grpc/echo" (dialled as etcd:////grpc/echo), read with --prefix /grpc/.
    target = "/grpc/echo"
    key = f"{target}/127.0.0.1:50051"
    with running(
        str(go_peer), "add", "-endpoints", etcd.endpoint, "-target", target, "-key", key,
        "-addr", "127.0.0.1:50051", "-ttl", "40", "-metadata", '{"zone":"a"}', stdin=True,
    ) as (proc, lines):  # fmt: skip
        added = json.loads(lines(slack(20)) or "{}")
        assert added["added"] == key
        result = run_cli("list", "--json", "--prefix", "/grpc/", "--endpoints", etcd.endpoint)
        assert result.returncode == 0, result.stderr
        groups = {s["name"]: s["instances"] for s in json.loads(result.stdout)["services"]}
        (inst,) = groups[f"{target} · grpc"]
        assert (inst["layout"], inst["address"]) == ("grpc", "127.0.0.1:50051"), inst
        assert inst["granted_ttl"] == 40 and 0 < inst["ttl"] <= 40, inst
        assert etcdctl.get_prefix(key).kvs[key.encode()].lease == int(added["lease"], 16)
        assert proc.stdin is not None
        proc.stdin.write("delete\n")
        proc.stdin.flush()
        assert json.loads(lines(slack(15)) or "{}") == {"done": "delete"}
        assert etcdctl.get(key) is None
