"""Progress notifications move the resume revision on (issue 9, item 3), against real etcd.

A quiet registry in a busy etcd: writes elsewhere in the keyspace move etcd's revision on,
compaction passes the registry's last event, the stream breaks. The watcher must resume
from the revision etcd's progress notifications vouched for, not reload the snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from support.etcdctl import Etcdctl
from support.helpers import assert_matches_etcdctl, connection, eventually, running_watcher

from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.registry.etcd.backoff import Backoff
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.etcd.errors import EtcdUnavailable
from etcd_registry_tui.registry.events import ConnectionStatus, ConnState
from etcd_registry_tui.registry.watcher import RegistryWatcher

PREFIX = "/services/"


@pytest.fixture
async def conn(etcd: EmbeddedEtcd) -> AsyncIterator[EtcdConnection]:
    async with connection(etcd.endpoint, dial_timeout=2.0, command_timeout=3.0) as c:
        yield c


async def test_quiet_registry_resumes_after_compaction_instead_of_reloading(
    etcd: EmbeddedEtcd, conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1", "Address": "http://o1"}')
    etcdctl.put("/services/Billing/b-1", '{"Id": "b-1"}')
    async with running_watcher(conn, progress_interval=0.3) as run:
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        last_event = run.state.revision
        # The registry stays quiet while the rest of the keyspace moves on.
        for n in range(5):
            etcdctl.put(f"/elsewhere/k-{n}", "x")
        revision = etcdctl.get_prefix("/").revision
        assert revision > last_event + 4
        await eventually(
            lambda: run.watcher.resume_revision >= revision,
            timeout=30,
            message=lambda: f"resume revision {run.watcher.resume_revision}, etcd {revision}",
        )
        assert run.state.revision == last_event  # the state's revision: last applied
        etcdctl.compact(revision)  # past the registry's last event

        mark = len(run.statuses)
        etcd.kill()
        await eventually(lambda: run.watcher.status.state is ConnState.RECONNECTING, timeout=10)
        await etcd.astart()
        await eventually(lambda: run.watcher.status.state is ConnState.LIVE, timeout=20)

        assert run.watcher.snapshots_loaded == 1  # resumed, no reload
        errors = [s.error for s in run.statuses[mark:] if s.error]
        assert not any("compacted" in e for e in errors), errors
        # and it still follows the registry, equal to what etcdctl reads
        etcdctl.put("/services/Orders/o-2", '{"Id": "o-2"}')
        etcdctl.run("del", "/services/Billing/b-1")
        view = await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        assert set(view) == {b"/services/Orders/o-1", b"/services/Orders/o-2"}
        assert run.watcher.snapshots_loaded == 1


async def test_events_after_a_notification_keep_the_state_exact(
    conn: EtcdConnection, etcdctl: Etcdctl
) -> None:
    # Progress notifications interleaved with events: the state never skips an event and
    # the resume revision never runs past what etcd has.
    async with running_watcher(conn, progress_interval=0.2) as run:
        for n in range(20):
            etcdctl.put(f"/services/S/i-{n % 4}", f'{{"Id": "i-{n}"}}')
            etcdctl.put(f"/elsewhere/e-{n}", "x")
        await assert_matches_etcdctl(run.watcher, etcdctl, PREFIX)
        await eventually(lambda: run.watcher.progress_notifications >= 2, timeout=20)
        assert run.watcher.resume_revision <= etcdctl.get_prefix("/").revision
        assert run.watcher.snapshots_loaded == 1


# --------------------------------------------------------------------------------------------
# backoff: a stream that is created and then fails must not retry at once (item 12).
# These claim nothing about etcd: a scripted connection drives the watcher's own policy.


class _Response:
    def __init__(self, created: bool = False, revision: int = 0) -> None:
        self.created = created
        self.events: list[object] = []
        self.header = type("Header", (), {"revision": revision})()


class _ScriptedConnection:
    """Each watch() is created, then yields ``deliver`` progress responses, then breaks."""

    endpoint = "scripted"

    def __init__(self, deliver: list[int]) -> None:
        self.deliver = deliver  # per stream: how many responses after creation
        self.streams = 0
        self.config = type("Config", (), {"prefix": PREFIX, "prefixes": (PREFIX,)})()

    async def get_prefix(self, prefix: bytes, revision: int = 0) -> tuple[list[object], int]:
        return [], 10

    async def iter_prefix(
        self, prefix: bytes, revision: int = 0
    ) -> AsyncIterator[tuple[list[object], int, int, bool]]:
        yield [], 10, 0, False

    async def reconnect(self) -> None:
        return None

    async def watch(
        self, prefix: bytes, start: int, progress_every: float | None = None
    ) -> AsyncIterator[_Response]:
        n = self.streams
        self.streams += 1
        yield _Response(created=True)
        for _ in range(self.deliver[n] if n < len(self.deliver) else 0):
            yield _Response(revision=start + 5)
        raise EtcdUnavailable("stream broke")


async def _attempts(conn: _ScriptedConnection, streams: int) -> list[int]:
    statuses: list[ConnectionStatus] = []
    watcher = RegistryWatcher(
        conn,  # type: ignore[arg-type]
        on_status=statuses.append,
        backoff_initial=0.001,
        backoff_max=0.004,
    )
    task = asyncio.create_task(watcher.run())
    await eventually(lambda: conn.streams >= streams, timeout=10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return [s.attempt for s in statuses if s.retry_in is not None]


async def test_a_stream_created_then_failing_backs_off_further() -> None:
    attempts = await _attempts(_ScriptedConnection(deliver=[]), streams=5)
    assert attempts[:4] == [1, 2, 3, 4]


async def test_a_stream_that_delivered_resets_the_backoff() -> None:
    # streams 0-2 fail right after creation; stream 3 delivers a response, then fails
    attempts = await _attempts(_ScriptedConnection(deliver=[0, 0, 0, 1, 0]), streams=6)
    assert attempts[:5] == [1, 2, 3, 1, 2]


def test_backoff_policy() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    assert [backoff.failed() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    backoff.succeeded()
    assert backoff.failed() == 1.0
    jittery = Backoff(initial=1.0, maximum=1.0, jitter=0.2)
    assert all(0.8 <= jittery.failed() <= 1.2 for _ in range(50))


class _OneLaneFailing(_ScriptedConnection):
    """Two prefixes: ``a/``'s watch delivers all the time, ``b/``'s breaks soon after it
    is created, every time."""

    def __init__(self) -> None:
        super().__init__(deliver=[])
        self.config = type("Config", (), {"prefix": "a/", "prefixes": ("a/", "b/")})()

    async def watch(
        self, prefix: bytes, start: int, progress_every: float | None = None
    ) -> AsyncIterator[_Response]:
        self.streams += 1
        yield _Response(created=True)
        if prefix == b"a/":
            while True:
                yield _Response(revision=start + 5)
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        raise EtcdUnavailable("stream broke")


async def test_one_prefixs_deliveries_do_not_reset_anothers_backoff() -> None:
    attempts = await _attempts(_OneLaneFailing(), streams=10)
    assert attempts[:4] == [1, 2, 3, 4]
