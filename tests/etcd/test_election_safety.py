"""The election library under faults: a leader never thinks it leads after its lease could
have expired, and a waiting candidate keeps its place through transient faults.

etcd is real; the link is broken with the tests' own TCP proxy (freeze, refuse), and the
other side is always `etcdctl elect` / `etcdctl lock` (or etcdctl reading the keys), as
clientv3's ``concurrency.Session`` / ``Election`` behave.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from support.etcdctl import Etcdctl
from support.helpers import connection, eventually
from support.tcp_proxy import tcp_proxy
from test_cli import run_cli

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.elections.campaign import Election, ResignFailed
from etcd_registry_tui.registry.elections.session import ElectionsSession
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import ConfigError, RegistryError

CLI = [sys.executable, "-m", "etcd_registry_tui"]


class Proc:
    """A subprocess whose output lines are read on threads, each with the monotonic
    time it arrived (so a test can order events across processes)."""

    def __init__(self, cmd: Sequence[str | bytes], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream: object, lines: list[tuple[float, str]]) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def first_out(self) -> float | None:
        return self.out[0][0] if self.out else None

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def spawn(started: list[Proc], cmd: Sequence[str | bytes], env: dict[str, str] | None) -> Proc:
    proc = Proc(cmd, env)
    started.append(proc)
    return proc


def etcdctl_side(etcdctl: Etcdctl, started: list[Proc], *args: str) -> Proc:
    """`etcdctl elect NAME VALUE` or `etcdctl lock NAME`, in the background."""
    return spawn(started, etcdctl._cmd(list(args)), etcdctl.env)


def queue_length(etcdctl: Etcdctl, name: str) -> Callable[[], int]:
    return lambda: len(etcdctl.get_prefix(f"{name}/").kvs)


# -- 1. a frozen leader gives up before anyone else could lead ------------------------------


@pytest.mark.parametrize("other", ["elect", "lock"])
async def test_frozen_leader_is_lost_before_etcdctl_takes_over(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, procs: list[Proc], other: str
) -> None:
    name = f"frozen-{other}"
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint) as conn:
            # TTL 5: a loaded machine (CI) can starve a TTL-3 leader's confirmations before
            # the freeze, and then it rightly gives up too early for this test.
            candidacy = Election(conn, name).candidacy("py", ttl=5)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            args = ("elect", name, "bob") if other == "elect" else ("lock", name)
            bob = etcdctl_side(etcdctl, procs, *args)  # straight to etcd, not through the proxy
            await eventually(lambda: queue_length(etcdctl, name)() == 2, timeout=10)
            assert bob.first_out() is None and candidacy.is_leader

            proxy.freeze()
            await asyncio.wait_for(candidacy.lost.wait(), 10)
            lost_at = time.monotonic()
            reason = candidacy.reason or ""
            # the unconfirmed key (its confirm window) or the lease's deadline (5 s), first
            assert not candidacy.is_leader and ("keep-alive" in reason or "not certain" in reason)
            # etcd expires the lease on its own clock; bob leads only after that
            took_over = await eventually(bob.first_out, timeout=15)
            assert lost_at < took_over, "bob led while the frozen leader still said it led"
            proxy.heal()
            await candidacy.resign()


def test_elect_exits_non_zero_before_etcdctl_takes_over_a_frozen_link(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, procs: list[Proc]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    with tcp_proxy(etcd.client_port) as proxy:
        # (--command-timeout: its clean-up through the frozen link gives up sooner)
        cmd = [*CLI, "elect", "frozen-cli", "py", "--ttl", "3", "--endpoints", proxy.endpoint]
        ours = spawn(procs, [*cmd, "--command-timeout", "1s"], env)
        wait_sync(lambda: len(ours.out) >= 2, 20)
        assert ours.out[0][1].startswith("frozen-cli/") and ours.out[1][1] == "py"
        bob = etcdctl_side(etcdctl, procs, "elect", "frozen-cli", "bob")
        wait_sync(lambda: queue_length(etcdctl, "frozen-cli")() == 2, 10)

        proxy.freeze()
        wait_sync(lambda: ours.err, 10)
        said_lost = ours.err[0][0]
        wait_sync(bob.first_out, 15)
        took_over = bob.first_out()
        assert took_over is not None and said_lost < took_over
        assert ours.proc.wait(20) == 1
        assert len(ours.err) == 1 and "lost" in ours.err[0][1], ours.err


def wait_sync(cond: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- 3. a waiting candidate keeps its place through a failover -------------------------------


async def test_waiting_candidate_keeps_its_place_when_the_first_endpoint_refuses(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    make_etcdctl: Callable[[str | Sequence[str]], Etcdctl],
    procs: list[Proc],
) -> None:
    with tcp_proxy(etcd.client_port) as proxy:
        both = [proxy.endpoint, etcd.endpoint]
        alice = etcdctl_side(etcdctl, procs, "elect", "queue", "alice")
        await eventually(lambda: alice.first_out() is not None, timeout=10)
        async with connection(both) as conn:
            candidacy = Election(conn, "queue").candidacy("py", ttl=4)
            await candidacy.start()
            waiting = asyncio.create_task(candidacy.wait_elected())
            bob = etcdctl_side(make_etcdctl(both), procs, "elect", "queue", "bob")
            await eventually(lambda: queue_length(etcdctl, "queue")() == 3, timeout=10)

            proxy.refuse()  # the first endpoint refuses; etcd itself is fine
            await asyncio.sleep(5)  # longer than the TTL: the lease must be renewed elsewhere
            assert not waiting.done() and not candidacy.lost.is_set()
            assert bob.proc.poll() is None  # etcdctl keeps waiting too
            assert etcdctl.get(candidacy.key) == b"py"
            assert etcdctl.lease_timetolive(candidacy.lease)[0] > 0

            alice.stop(signal.SIGINT)  # alice resigns: we are next, then bob
            await asyncio.wait_for(waiting, 10)
            assert candidacy.is_leader and bob.first_out() is None
            kvs = etcdctl.get_prefix("queue/").kvs
            leader = min(kvs.values(), key=lambda kv: kv.create_revision)
            assert leader.value == b"py"
            await candidacy.resign()
            await eventually(lambda: bob.first_out() is not None, timeout=10)


async def test_leader_keeps_leading_through_a_frozen_first_endpoint(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, procs: list[Proc]
) -> None:
    """A keep-alive stuck on a silent endpoint must not outlast the TTL: it gives up in
    time and the next one goes to the other endpoint (default 5 s command timeout)."""
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection([proxy.endpoint, etcd.endpoint]) as conn:
            candidacy = Election(conn, "silent").candidacy("py", ttl=3)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            bob = etcdctl_side(etcdctl, procs, "elect", "silent", "bob")
            await eventually(lambda: queue_length(etcdctl, "silent")() == 2, timeout=10)
            proxy.freeze()
            await asyncio.sleep(5)  # well past the TTL
            assert candidacy.is_leader, candidacy.reason
            assert bob.first_out() is None
            assert etcdctl.lease_timetolive(candidacy.lease)[0] > 0
            proxy.heal()
            await candidacy.resign()
            await eventually(lambda: bob.first_out() is not None, timeout=10)


# -- 5. a lost candidacy lets its lease go ---------------------------------------------------


async def test_lost_candidacy_stops_renewing_and_revokes_its_lease(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with connection(etcd.endpoint) as conn:
        session = ElectionsSession(conn)
        running = asyncio.create_task(session.run())
        try:
            candidacy = await session.campaign("dash", "me", ttl=30)
            await eventually(lambda: candidacy.is_leader, timeout=10)
            assert etcdctl.lease_timetolive(candidacy.lease)[0] > 0
            etcdctl.del_prefix("dash/")  # someone deletes our key
            await asyncio.wait_for(candidacy.lost.wait(), 10)
            # not renewed for ever: the lease is revoked (a 30 s lease would still be alive)
            await eventually(
                lambda: etcdctl.lease_timetolive(candidacy.lease)[0] < 0, timeout=5, interval=0.2
            )
            await session.shutdown()
            assert etcdctl.lease_timetolive(candidacy.lease)[0] < 0
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)


# -- 6. resign() says when it could not resign -----------------------------------------------


async def test_resign_on_an_external_lease_raises_when_the_key_stays(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            candidacy = Election(conn, "ext").candidacy("me", lease=lease)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            proxy.refuse()
            with pytest.raises(RegistryError):
                await candidacy.resign()
            assert etcdctl.get(candidacy.key) == b"me"  # it does still lead
            assert not candidacy.lost.is_set()
            proxy.heal()
            # Retried as ResignFailed says: gRPC's reconnect backoff after the refusals can
            # outlast the first retry's command timeout (1 s here).
            for attempt in range(20):
                try:
                    await candidacy.resign()
                    break
                except ResignFailed:
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.5)
            assert etcdctl.get(candidacy.key) is None
            assert candidacy.lost.is_set() and not candidacy.is_leader
            assert etcdctl.lease_timetolive(lease)[0] > 0  # someone else's lease: left alone


# -- 7. one lease, one candidacy ------------------------------------------------------------


async def test_the_same_lease_cannot_campaign_twice(etcd: EmbeddedEtcd, etcdctl: Etcdctl) -> None:
    lease = etcdctl.lease_grant(60)
    async with connection(etcd.endpoint) as conn, connection(etcd.endpoint) as other:
        first = Election(conn, "twice").candidacy("a", lease=lease)
        await first.start()
        await asyncio.wait_for(first.wait_elected(), 10)
        for c in (conn, other):  # the same connection or another one in this process
            second = Election(c, "twice").candidacy("b", lease=lease)
            with pytest.raises(RegistryError, match="already"):
                await second.start()
            assert not second.is_leader
        assert first.is_leader and etcdctl.get(first.key) == b"a"  # not overwritten
        await first.resign()
        again = Election(other, "twice").candidacy("b", lease=lease)
        await again.start()
        await asyncio.wait_for(again.wait_elected(), 10)
        assert etcdctl.get(again.key) == b"b"
        await again.resign()


# -- bad input: --ttl 0 / -5 -----------------------------------------------------------------


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_elect_rejects_a_ttl_register_rejects(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, ttl: str
) -> None:
    register = run_cli(
        "register", "--name", "svc", "--address", "http://127.0.0.1:1", "--ttl", ttl,
        "--endpoints", etcd.endpoint,
    )  # fmt: skip
    elect = run_cli("elect", "x", "v", "--ttl", ttl, "--endpoints", etcd.endpoint, timeout=15)
    assert register.returncode != 0 and elect.returncode == register.returncode
    assert elect.stderr == register.stderr and len(elect.stderr.splitlines()) == 1
    assert "Traceback" not in elect.stderr
    assert etcdctl.get_prefix("x/").kvs == {}


def test_candidacy_rejects_a_ttl_that_is_not_positive() -> None:
    election = Election(EtcdConnection(ConnectionConfig()), "never-connected")
    for ttl in (0, -5):
        with pytest.raises(ConfigError, match="TTL must be a positive"):
            election.candidacy("v", ttl=ttl)


async def test_dashboard_keeps_a_candidate_whose_resign_failed(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            session = ElectionsSession(conn)
            candidacy = await session.campaign("dash-resign", "me", ttl=30)
            await eventually(lambda: candidacy.is_leader, timeout=10)
            proxy.refuse()
            with pytest.raises(RegistryError):
                await session.resign(candidacy.lease)
            assert etcdctl.get(candidacy.key) == b"me"
            assert session.own.get(candidacy.lease) is candidacy  # still ours to resign
            proxy.heal()
            await session.resign(candidacy.lease)
            assert etcdctl.get(candidacy.key) is None and candidacy.lease not in session.own
            assert etcdctl.lease_timetolive(candidacy.lease)[0] < 0
            await session.shutdown()


# -- review fixes ----------------------------------------------------------------------------


async def test_a_resign_that_fails_never_reports_leading(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    with tcp_proxy(etcd.client_port) as proxy:
        async with connection(proxy.endpoint, command_timeout=1.0) as conn:
            candidacy = Election(conn, "ext-fail").candidacy("me", lease=lease)
            await candidacy.start()
            await asyncio.wait_for(candidacy.wait_elected(), 10)
            proxy.refuse()
            resigning = asyncio.create_task(candidacy.resign())
            await asyncio.sleep(0)  # resign has started: no longer leading from here on
            assert not candidacy.is_leader
            with pytest.raises(RegistryError):
                await resigning
            assert etcdctl.get(candidacy.key) == b"me"  # the key may still stand...
            assert not candidacy.is_leader  # ...but this candidacy does not claim it leads
            proxy.heal()
            await candidacy.resign()  # and may be retried
            assert etcdctl.get(candidacy.key) is None


async def test_abandon_on_an_external_lease_is_not_leading(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    async with connection(etcd.endpoint) as conn:
        candidacy = Election(conn, "ext-abandon").candidacy("me", lease=lease)
        await candidacy.start()
        await asyncio.wait_for(candidacy.wait_elected(), 10)
        await candidacy.abandon()
        assert not candidacy.is_leader
        etcdctl.lease_revoke(lease)


async def test_the_same_lease_cannot_campaign_twice_through_another_spelling(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    lease = etcdctl.lease_grant(60)
    spelled = f"localhost:{etcd.client_port}"
    async with connection(etcd.endpoint) as conn, connection(spelled) as other:
        first = Election(conn, "twice2").candidacy("a", lease=lease)
        await first.start()
        await asyncio.wait_for(first.wait_elected(), 10)
        second = Election(other, "twice2").candidacy("b", lease=lease)
        with pytest.raises(RegistryError, match="already"):
            await second.start()
        assert etcdctl.get(first.key) == b"a"
        await first.resign()


async def test_a_put_without_our_lease_on_the_candidate_key_is_a_loss(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with connection(etcd.endpoint) as conn:
        candidacy = Election(conn, "unbound").candidacy("me", ttl=30)
        await candidacy.start()
        await asyncio.wait_for(candidacy.wait_elected(), 10)
        etcdctl.put(candidacy.key.decode(), "intruder")  # no --lease: unbound from ours
        await asyncio.wait_for(candidacy.lost.wait(), 5)
        assert not candidacy.is_leader
        await eventually(
            lambda: etcdctl.lease_timetolive(candidacy.lease)[0] < 0, timeout=5, interval=0.2
        )


@pytest.mark.parametrize("ttl", ["9000000001", "99999999999999999999"])
def test_elect_and_register_reject_a_ttl_etcd_cannot_grant(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl, ttl: str
) -> None:
    register = run_cli(
        "register", "--name", "svc", "--address", "http://127.0.0.1:1", "--ttl", ttl,
        "--endpoints", etcd.endpoint,
    )  # fmt: skip
    elect = run_cli("elect", "x", "v", "--ttl", ttl, "--endpoints", etcd.endpoint, timeout=15)
    assert register.returncode != 0 and elect.returncode == register.returncode
    assert elect.stderr == register.stderr and len(elect.stderr.splitlines()) == 1
    assert "9000000000" in elect.stderr and "connection options" not in elect.stderr
    assert etcdctl.get_prefix("x/").kvs == {}
