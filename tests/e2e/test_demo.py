"""The demo: a deterministic fleet on a private etcd that is always cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import psutil
import pytest
from support.pty_helpers import read_until

from etcd_registry_tui.demo.answers import Health
from etcd_registry_tui.demo.fleet import ELECTION_INSTANCES, ELECTION_NAME, LOCK_NAME, Fleet
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.probes import parse_target, probe

CLI = [sys.executable, "-m", "etcd_registry_tui"]


def _plan(seed: int) -> list[tuple[str, str, str, int]]:
    fleet = Fleet(ConnectionConfig(), services=5, max_instances=6, seed=seed)
    regs = fleet.initial_registrations()
    return [(r.name, r.instance_id, fleet.health[r.key].value, r.ttl) for r in regs]


def test_same_seed_same_fleet():
    assert _plan(42) == _plan(42)
    assert _plan(42) != _plan(43)
    names = {name for name, *_ in _plan(42)}
    assert len(names) == 5
    counts = [sum(1 for n, *_ in _plan(42) if n == name) for name in names]
    assert all(2 <= c <= 6 for c in counts)
    assert all(10 <= ttl <= 30 for *_, ttl in _plan(42))
    healths = [health for _, _, health, _ in _plan(42)]
    assert healths.count("healthy") >= len(healths) / 3, healths
    assert {"failing", "refusing"} & set(healths), "some instances must fail probes"


async def test_the_fleet_answers_on_its_addresses_as_drawn(etcd, etcdctl):
    """P in the demo: healthy instances answer 200, failing ones 503, refusing ones refuse;
    a crashed instance's port refuses; after stop() every port does."""
    fleet = Fleet(
        ConnectionConfig(endpoints=(etcd.endpoint,)), services=5, max_instances=6, seed=1,
        elections=False, answer=True,
    )  # fmt: skip
    await fleet.start()
    stopped = False
    try:
        kvs, _ = etcdctl.get_prefix("/services/")
        addresses = {
            k.decode(): json.loads(kv["value"])["Address"]
            for k, kv in kvs.items()
            if b"LegacyBilling" not in k
        }
        assert len(set(addresses.values())) == len(addresses), "one port per instance"
        marks = {
            key: (await probe(parse_target(a), timeout=2)).mark for key, a in addresses.items()
        }
        expected = {
            Health.HEALTHY: "✓",
            Health.FAILING: "✗ HTTP 503",
            Health.REFUSING: "✗ refused",
        }
        for key, mark in marks.items():
            health = fleet.health.get(key, Health.HEALTHY)
            assert mark.startswith(expected[health]), (key, health, mark)
        assert any(m.startswith("✓") for m in marks.values())
        assert any(m.startswith("✗") for m in marks.values())
        # A crash: the key lingers until its lease expires, but nothing answers any more.
        victim = next(r for r in fleet.live.values() if fleet.health[r.key] is Health.HEALTHY)
        await fleet._crash(victim)
        assert (await probe(parse_target(victim.address))).mark == "✗ refused"
        await fleet.stop()
        stopped = True
        assert len(fleet.answers) == 0
        for address in addresses.values():
            assert (await probe(parse_target(address))).mark == "✗ refused", address
    finally:
        if not stopped:
            await fleet.stop()


async def test_fleet_registers_oddities_churns_and_cleans_up(etcd, etcdctl):
    fleet = Fleet(ConnectionConfig(endpoints=(etcd.endpoint,)), services=3, max_instances=3, seed=1)
    await fleet.start()
    try:
        kvs, _ = etcdctl.get_prefix("/services/")
        keys = {k.decode(): kv for k, kv in kvs.items()}
        expected = sum(fleet.plan.services.values()) + 2 + ELECTION_INSTANCES
        assert len(keys) == expected
        legacy = keys["/services/LegacyBillingService/legacy-1"]
        assert legacy["lease"] != 0
        with pytest.raises(ValueError):
            json.loads(legacy["value"])
        assert keys["/services/ConfigService/static-1"]["lease"] == 0
        for key, kv in keys.items():
            if "LegacyBilling" not in key and "ConfigService" not in key:
                value = json.loads(kv["value"])
                assert set(value) >= {"Id", "Name", "Address"}
                assert value["Address"].startswith("http://127.0.0.1:")
        # MigrationJob's instances stand in its election on their registration leases;
        # two workers queue for a lock.
        jobs = {kv["lease"] for k, kv in keys.items() if k.startswith("/services/MigrationJob/")}
        candidates, _ = etcdctl.get_prefix(ELECTION_NAME + "/")
        assert len(jobs) == ELECTION_INSTANCES
        assert {kv["lease"] for kv in candidates.values()} == jobs
        assert len(etcdctl.get_prefix(LOCK_NAME + "/").kvs) == 2
        leader = min(candidates.values(), key=lambda kv: kv["create_revision"])

        steps = [await fleet.churn_once() for _ in range(6)]
        # the third step crashes the leader: its lease (instance and candidacy) stops
        assert steps[2].startswith("crash leader"), steps
        assert fleet.failovers == 1
        crashed = [reg for _, reg in fleet.gone.values() if reg.name == "MigrationJob"]
        assert [reg.lease_id for reg in crashed] == [leader["lease"]]
        assert any(s.startswith(("crash", "join")) for s in steps)
        assert fleet.crashed + fleet.joined >= 4
    finally:
        await fleet.stop()
    for prefix in ("/services/", ELECTION_NAME, LOCK_NAME):
        kvs, _ = etcdctl.get_prefix(prefix)
        assert kvs == {}, f"the fleet must remove every key it wrote under {prefix}"


def _etcd_children(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if "etcd" in p.name()]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_demo_headless_starts_private_etcd_and_stops_it(sig, make_etcdctl):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        [*CLI, "demo", "--no-ui", "--seed", "3", "--services", "2", "--instances", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        match = re.search(r"running on (127\.0\.0\.1:\d+)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        endpoint = match.group(1)
        children = _etcd_children(proc.pid)
        assert len(children) == 1
        data_dir = next(
            a.split("=", 1)[1] if "=" in a else children[0].cmdline()[i + 1]
            for i, a in enumerate(children[0].cmdline())
            if a.startswith("--data-dir")
        )
        ctl = make_etcdctl(endpoint)

        deadline = time.monotonic() + 15
        while len(ctl.get_prefix("/services/").kvs) < 2 * 2 + 2:
            assert time.monotonic() < deadline, "the fleet did not register in time"
            time.sleep(0.2)
        proc.send_signal(sig)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    assert not os.path.exists(data_dir), "the temporary data dir must be removed"


def test_demo_without_etcd_binary_says_how_to_get_one(tmp_path):
    result = subprocess.run(
        [*CLI, "demo", "--etcd-binary", str(tmp_path / "no-such-etcd")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "apt-get install etcd-server" in result.stderr
    assert "docker compose" in result.stderr


def test_demo_fleet_on_existing_etcd_removes_its_keys_on_exit(etcd, etcdctl):
    etcdctl.put("/services/Theirs/keep-me", '{"Id": "keep-me"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        [*CLI, "demo", "--no-ui", "--seed", "5", "--endpoints", etcd.endpoint],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert etcd.endpoint in proc.stdout.readline()
        assert _etcd_children(proc.pid) == [], "no private etcd with --endpoints"
        deadline = time.monotonic() + 15
        while len(etcdctl.get_prefix("/services/").kvs) < 5:
            assert time.monotonic() < deadline, "the fleet did not register in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert set(etcdctl.get_prefix("/services/").kvs) == {b"/services/Theirs/keep-me"}, err


@pytest.mark.parametrize("how", ["q", "ctrl-c", "SIGTERM", "SIGHUP"])
def test_demo_dashboard_on_a_terminal_stops_its_etcd(how):
    """The real dashboard on a pseudo-terminal: every way out stops the private etcd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the demo
        os.execvpe(sys.executable, [*CLI, "demo", "--seed", "2"], env)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        read_until(fd, b"live", timeout=30)
        children = _etcd_children(pid)
        assert len(children) == 1
        if how in ("q", "ctrl-c"):
            os.write(fd, b"q" if how == "q" else b"\x03")
        else:
            os.kill(pid, getattr(signal, how))
        deadline = time.monotonic() + 20
        status = None
        while status is None:
            done, status_code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_code
                break
            try:  # keep draining the terminal so the app never blocks on output
                while select.select([fd], [], [], 0.1)[0] and os.read(fd, 65536):
                    pass
            except OSError:
                pass
            assert time.monotonic() < deadline, "the demo did not exit"
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    if how in ("q", "ctrl-c"):
        assert os.waitstatus_to_exitcode(status) == 0
    gone = time.monotonic() + 10
    while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
        assert time.monotonic() < gone, "the private etcd outlived the demo"
        time.sleep(0.1)


def _demo_env(tmp_path) -> dict[str, str]:
    """The demo's environment with its own TMPDIR: what it leaves there is what it leaked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["TMPDIR"] = str(tmp_path)
    return env


def _leftovers(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("etcd-registry-tui-"))


def _etcds_on(tmp_path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if "etcd" in (proc.info["name"] or "") and str(tmp_path) in " ".join(
                proc.info["cmdline"] or ()
            ):
                if proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--services", "-1", "at least 1"),
        ("--services", "0", "at least 1"),
        ("--services", "999999999", "at most"),
        ("--instances", "0", "at least 1"),
        ("--instances", "100000", "at most"),
    ],
)
def test_demo_sizes_are_checked_and_bounded_before_etcd_starts(tmp_path, option, value, words):
    result = subprocess.run(
        [*CLI, "demo", "--no-ui", option, value],
        capture_output=True, text=True, timeout=30, env=_demo_env(tmp_path),
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no "starting a private etcd": it never started
    assert option in lines[0] and words in lines[0], lines[0]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_demo_stopped_during_start_up_leaves_no_data_dir_and_no_etcd(tmp_path, sig, delay):
    proc = subprocess.Popen(
        [*CLI, "demo", "--no-ui", "--seed", "4", "--services", "2", "--instances", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_demo_env(tmp_path),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not _leftovers(tmp_path):  # the data dir exists: etcd is about to start
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the demo made no data dir"
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    gone = time.monotonic() + 10
    while _etcds_on(tmp_path):
        assert time.monotonic() < gone, "the private etcd outlived the demo"
        time.sleep(0.1)
    assert _leftovers(tmp_path) == [], (proc.returncode, err)


def test_the_demo_command_serves_its_fleets_addresses(etcd, etcdctl):
    """`demo --endpoints`: what P would show is a mix, not every instance refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    proc = subprocess.Popen(
        [*CLI, "demo", "--no-ui", "--seed", "1", "--endpoints", etcd.endpoint],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "running" in line, line
        kvs, _ = etcdctl.get_prefix("/services/")
        addresses = [
            json.loads(kv["value"])["Address"] for k, kv in kvs.items() if b"Legacy" not in k
        ]

        async def probe_all() -> list[str]:
            return [(await probe(parse_target(a), timeout=2)).mark for a in addresses]

        marks = asyncio.run(probe_all())
        assert any(m.startswith("✓") for m in marks), marks
        assert any(m.startswith("✗") for m in marks), marks
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_the_demo_fits_its_ports_under_a_low_open_files_limit(tmp_path):
    """One port per instance: a soft limit of 64 open files does not stop 100 instances."""
    script = (
        f"ulimit -Sn 64 && exec {' '.join(CLI)} demo --no-ui --seed 9 --services 10 --instances 10"
    )
    proc = subprocess.Popen(
        ["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_demo_env(tmp_path),
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "running" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "Too many open files" not in err, err
    assert _leftovers(tmp_path) == []


async def test_a_mixed_fleet_reads_back_in_every_layout_and_answers(etcd, etcdctl):
    """demo --mixed: each service in its framework's layout, read back by `list --json
    --prefix /` with that layout, its address answering probes as drawn."""
    from support.cli_helpers import run_cli

    from etcd_registry_tui.demo.fleet import MIXED_LAYOUTS

    fleet = Fleet(
        ConnectionConfig(endpoints=(etcd.endpoint,)), services=len(MIXED_LAYOUTS),
        max_instances=2, seed=3, elections=False, answer=True, layouts=MIXED_LAYOUTS,
    )  # fmt: skip
    await fleet.start()
    try:
        result = run_cli("list", "--json", "--prefix", "/", "--endpoints", etcd.endpoint)
        assert result.returncode == 0, result.stderr
        found = {s["name"]: s["instances"] for s in json.loads(result.stdout)["services"]}
        layouts = {i["layout"] for insts in found.values() for i in insts}
        assert layouts >= {layout.value for layout in MIXED_LAYOUTS}, sorted(found)
        by_key = {i["key"]: (name, i) for name, insts in found.items() for i in insts}
        for reg in fleet.live.values():
            if reg.name == "LegacyBillingService":
                continue
            group, inst = by_key[reg.key]
            assert group.startswith(reg.name), (group, reg.name)  # CoreDNS: the DNS name
            assert inst["layout"] == reg.layout.value and inst["ttl"] > 0, inst
            # Each address, as the framework writes it, still answers as drawn.
            address = inst["address"] if "://" in inst["address"] else f"http://{inst['address']}"
            mark = (await probe(parse_target(address), timeout=2)).mark
            health = fleet.health[reg.key]
            assert mark.startswith("✓") == (health is Health.HEALTHY), (reg.key, health, mark)
        assert sum(len(i) for i in found.values()) == len(etcdctl.get_prefix("/").kvs)
    finally:
        await fleet.stop()
    assert etcdctl.get_prefix("/").kvs == {}
