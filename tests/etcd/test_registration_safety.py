"""Registration never deletes or overwrites another instance's key (issue 9, item 10).

Everything runs against a real etcd and is checked with etcdctl. The stable-id conflict
uses two real ``register`` processes, one of them frozen with SIGSTOP past its TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.registration import InstanceConflict, ServiceRegistration
from etcd_registry_tui.registry.session import RegistrySession

ROOT = Path(__file__).resolve().parents[2]
KEY = "/services/StableService/same"


def _live_leases(etcdctl: Etcdctl) -> set[int]:
    data = etcdctl.run_json("lease", "list")
    return {int(lease["id"]) for lease in data.get("leases") or []}  # type: ignore[attr-defined]


def _kv(etcdctl: Etcdctl, key: str) -> tuple[dict[str, Any], int] | None:
    """(decoded value, lease) of ``key`` as etcdctl sees it, or None."""
    kv = etcdctl.get_prefix(key).kvs.get(key.encode())
    return None if kv is None else (json.loads(kv.value), kv.lease)


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = cond()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# two real processes with the same --id


@contextlib.contextmanager
def register_process(
    etcd: EmbeddedEtcd, address: str, stderr_path: Path
) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "etcd_registry_tui", "register",
             "--name", "StableService", "--address", address, "--id", "same", "--ttl", "2",
             "--endpoints", etcd.endpoint],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def _first_line(proc: subprocess.Popen[str], stderr_path: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("registered"), (line, stderr_path.read_text())
    return line


def test_resumed_stale_process_neither_overwrites_nor_deletes_its_replacement(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, tmp_path: Path
) -> None:
    a_err, b_err = tmp_path / "a.err", tmp_path / "b.err"
    with register_process(etcd, "http://old-a:1", a_err) as a:
        _first_line(a, a_err)
        a_value, a_lease = _kv(etcdctl, KEY) or ({}, 0)
        assert a_value["Address"] == "http://old-a:1"

        # A stalls past its TTL: etcd expires its lease and the key goes.
        a.send_signal(signal.SIGSTOP)
        _wait(lambda: _kv(etcdctl, KEY) is None, 20, "A's key to expire while A is stopped")
        assert a_lease not in _live_leases(etcdctl)

        with register_process(etcd, "http://new-b:2", b_err) as b:
            _first_line(b, b_err)
            b_value, b_lease = _kv(etcdctl, KEY) or ({}, 0)
            assert b_value["Address"] == "http://new-b:2" and b_lease not in (0, a_lease)

            # A resumes: it must notice the key is held by B and leave it alone.
            a.send_signal(signal.SIGCONT)
            # Until A reports the conflict, and over several of its heartbeat intervals
            # after that (TTL 2: one every ~0.7 s), the key stays B's: same value, lease.
            deadline = time.monotonic() + 30
            checks_after_report = 0
            while checks_after_report < 12:
                assert _kv(etcdctl, KEY) == (b_value, b_lease), "A overwrote B's key"
                if "held by another instance" in a_err.read_text():
                    checks_after_report += 1
                assert time.monotonic() < deadline, "A never reported the conflict"
                time.sleep(0.3)
            assert a.poll() is None, "A must keep waiting, not exit"
            assert _live_leases(etcdctl) == {b_lease}, "A must not leave leases behind"

            # A shuts down: B's key survives.
            a.send_signal(signal.SIGTERM)
            a_out, _ = a.communicate(timeout=20)
            assert a.returncode == 0, a_err.read_text()
            assert "unregistered" not in a_out
            assert "held by another instance" in a_out
            assert _kv(etcdctl, KEY) == (b_value, b_lease)
            assert b.poll() is None

            # B shuts down: now the key goes at once.
            b.send_signal(signal.SIGTERM)
            b_out, _ = b.communicate(timeout=20)
            assert b.returncode == 0, b_err.read_text()
            assert "unregistered" in b_out
            assert _kv(etcdctl, KEY) is None
            assert b_lease not in _live_leases(etcdctl)


def test_register_process_refuses_a_key_held_by_a_live_lease(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, tmp_path: Path
) -> None:
    lease = etcdctl.lease_grant(60)
    etcdctl.put(KEY, '{"Id": "same", "Address": "http://owner"}', lease=lease)
    err = tmp_path / "err"
    with register_process(etcd, "http://intruder", err) as proc:
        assert proc.wait(30) == 1
    message = err.read_text()
    assert "held by another instance" in message and f"{lease:016x}" in message
    assert _kv(etcdctl, KEY) == ({"Id": "same", "Address": "http://owner"}, lease)
    assert _live_leases(etcdctl) == {lease}


# --------------------------------------------------------------------------------------------
# ServiceRegistration in-process


async def test_first_register_refuses_a_live_key_of_another_lease(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    etcdctl.put(KEY, "owner", lease=lease)
    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(conn, "StableService", "http://x", ttl=5, instance_id="same")
        with pytest.raises(InstanceConflict) as info:
            await reg.register()
        assert info.value.holder == lease
        assert "held by another instance" in str(info.value) and f"{lease:016x}" in str(info.value)
        assert reg.lease_id is None
        await reg.unregister()  # nothing of ours to remove: the owner's key stays
    assert etcdctl.get(KEY) == b"owner"
    assert _live_leases(etcdctl) == {lease}, "the refused registration leaked a lease"


async def test_first_register_refuses_a_key_without_lease(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    etcdctl.put(KEY, "static")
    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(conn, "StableService", "http://x", ttl=5, instance_id="same")
        with pytest.raises(InstanceConflict) as info:
            await reg.register()
        assert info.value.holder == 0 and "without a lease" in str(info.value)
    assert etcdctl.get(KEY) == b"static"
    assert _live_leases(etcdctl) == set()


async def test_unregister_after_own_lease_expired_keeps_the_new_owners_key(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(conn, "StableService", "http://old", ttl=2, instance_id="same")
        old_lease = await reg.register()  # no heartbeats: the lease runs out
        await eventually(lambda: etcdctl.get(KEY) is None, timeout=20, interval=0.2)
        new_lease = etcdctl.lease_grant(60)
        etcdctl.put(KEY, "new owner", lease=new_lease)

        await reg.unregister()  # LeaseNotFound for old_lease: must not touch the key
        assert etcdctl.lease_timetolive(old_lease) == (-1, 0)
    assert _kv_raw(etcdctl) == (b"new owner", new_lease)


def _kv_raw(etcdctl: Etcdctl) -> tuple[bytes, int] | None:
    kv = etcdctl.get_prefix(KEY).kvs.get(KEY.encode())
    return None if kv is None else (kv.value, kv.lease)


async def test_keepalive_waits_for_the_key_then_takes_it_when_free(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    events: list[str] = []
    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(
            conn, "StableService", "http://mine", ttl=2, instance_id="same",
            on_event=lambda what, _: events.append(what),
        )  # fmt: skip
        async with reg:
            first = reg.lease_id
            assert first is not None
            # Our key goes and someone else takes the id before our next heartbeat (paused
            # meanwhile: etcdctl can take longer than a heartbeat interval on a loaded machine).
            reg.pause()
            etcdctl.lease_revoke(first)
            other = etcdctl.lease_grant(60)
            etcdctl.put(KEY, "other", lease=other)
            reg.resume()
            await eventually(lambda: "conflict" in events, timeout=20)
            assert reg.held_by == other and reg.lease_id is None
            # it keeps retrying at the heartbeat interval, never taking the key
            tries = events.count("conflict")
            await eventually(lambda: events.count("conflict") >= tries + 3, timeout=20)
            assert _kv_raw(etcdctl) == (b"other", other)
            assert _live_leases(etcdctl) == {other}

            etcdctl.lease_revoke(other)  # the other instance leaves: the key is free again
            await eventually(lambda: reg.lease_id is not None, timeout=20)
            assert reg.held_by is None
            value, lease = _kv(etcdctl, KEY) or ({}, 0)
            assert value["Address"] == "http://mine" and lease == reg.lease_id
        assert etcdctl.get(KEY) is None


# --------------------------------------------------------------------------------------------
# heartbeats and the callback


async def test_an_on_event_that_raises_does_not_stop_heartbeats(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    calls: list[str] = []

    def on_event(what: str, _: ServiceRegistration) -> None:
        calls.append(what)
        if what == "heartbeat":
            raise RuntimeError("a buggy callback")

    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(conn, "Callback", "http://cb", ttl=2, on_event=on_event)
        async with reg:
            lease = reg.lease_id
            assert lease is not None
            # Wait for many heartbeats (each one raising) spanning several TTLs.
            await eventually(lambda: calls.count("heartbeat") >= 10, timeout=60, interval=0.2)
            assert reg._task is not None and not reg._task.done()
            assert reg.lease_id == lease and reg.registrations == 1
            ttl, _granted = etcdctl.lease_timetolive(lease)
            assert ttl > 0
            assert _kv_raw_key(etcdctl, reg.key)[1] == lease
        assert etcdctl.get(reg.key) is None


def _kv_raw_key(etcdctl: Etcdctl, key: str) -> tuple[bytes, int]:
    kv = etcdctl.get_prefix(key).kvs[key.encode()]
    return kv.value, kv.lease


# --------------------------------------------------------------------------------------------
# the dashboard's session


@contextlib.asynccontextmanager
async def running_session(etcd: EmbeddedEtcd) -> Any:
    session = RegistrySession(ConnectionConfig(endpoints=(etcd.endpoint,)))
    task = asyncio.create_task(session.run())
    try:
        await eventually(lambda: session.watcher.snapshots_loaded >= 1, timeout=20)
        yield session
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await session.shutdown()


@pytest.fixture
def slow_raft_etcd() -> Iterator[EmbeddedEtcd]:
    """An etcd whose leases are at least 3 s (1.5 election timeouts of 2 s, rounded up)."""
    from support.etcdctl import require_etcd

    require_etcd()
    server = EmbeddedEtcd(extra_args=["--heartbeat-interval", "200", "--election-timeout", "2000"])
    try:
        yield server.start()
    finally:
        server.cleanup()


async def test_session_records_the_granted_ttl(
    slow_raft_etcd: EmbeddedEtcd, make_etcdctl: Callable[[str], Etcdctl]
) -> None:
    etcdctl = make_etcdctl(slow_raft_etcd.endpoint)
    async with running_session(slow_raft_etcd) as session:
        reg = await session.register("Short", "http://short", ttl=1)
        assert reg.lease_id is not None
        _remaining, granted = etcdctl.lease_timetolive(reg.lease_id)
        assert granted == 3, "etcd raises a 1 s TTL to its minimum"
        assert reg.ttl == granted
        assert session.ttl(reg.lease_id)[1] == granted


async def test_revoking_an_own_instance_does_not_bring_it_back(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with running_session(etcd) as session:
        reg = await session.register("Revoked", "http://gone", ttl=2)
        lease, key = reg.lease_id, reg.key
        assert lease is not None
        await eventually(lambda: session.state.get(key.encode()) is not None, timeout=10)

        # etcd applies the revoke at once but its answer is slow to come back (a busy
        # network): heartbeats (every ~0.7 s) must not run meanwhile and re-register.
        real_revoke = session.conn.revoke

        async def slow_revoke(lease_id: int) -> int:
            revision = await real_revoke(lease_id)
            await asyncio.sleep(2.5)
            return revision

        session.conn.revoke = slow_revoke  # type: ignore[method-assign]
        assert await session.revoke(lease) == 1
        assert not session.is_own(key.encode())
        assert reg._task is None
        # It stays gone over several heartbeat intervals and no lease of ours is left.
        for _ in range(10):
            assert etcdctl.get(key) is None, "the revoked instance came back"
            await asyncio.sleep(0.3)
        assert _live_leases(etcdctl) == set()
        assert reg.registrations == 1


async def test_own_lease_given_up_after_a_stall_but_still_alive_is_taken_back(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    # After a long stall the keep-alive assumes its lease expired. If etcd kept it (a
    # restart extends leases), the key is still ours: no conflict, no new lease.
    events: list[str] = []
    async with connection(etcd.endpoint) as conn:
        reg = ServiceRegistration(
            conn, "StableService", "http://mine", ttl=6, instance_id="same",
            on_event=lambda what, _: events.append(what),
        )  # fmt: skip
        lease = await reg.register()
        assert reg.last_heartbeat is not None
        reg.last_heartbeat -= 100  # as if the process had been stopped for 100 s
        reg.start_keepalive()
        try:
            await eventually(lambda: events.count("heartbeat") >= 2, timeout=30)
            assert "conflict" not in events and reg.held_by is None
            assert reg.lease_id == lease and reg.registrations == 1
            assert _kv_raw(etcdctl) is not None and _kv_raw(etcdctl)[1] == lease  # type: ignore[index]
            assert _live_leases(etcdctl) == {lease}
        finally:
            await reg.unregister()
    assert etcdctl.get(KEY) is None and _live_leases(etcdctl) == set()
