"""Nothing dies in silence (issue 9, items 8 and 12): supervised tasks against real etcd.

A death is injected by making one of our own methods raise once (this tests our
supervision, not etcd); etcd and etcdctl are real, and each test ends with the state
equal to what etcdctl reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.etcdctl import Etcdctl
from support.helpers import assert_matches_etcdctl, eventually

from etcd_registry_tui.app import FREEZE_SNAPSHOT_AT, RegistryApp, crash_log_path
from etcd_registry_tui.demo.embedded import EmbeddedEtcd
from etcd_registry_tui.messages import StatusChanged
from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.errors import EtcdUnavailable
from etcd_registry_tui.registry.events import ChangeBatch, ConnectionStatus, ConnState
from etcd_registry_tui.registry.log_entries import LogEntry, LogKind
from etcd_registry_tui.registry.model import KeyValue
from etcd_registry_tui.registry.session import RegistrySession
from etcd_registry_tui.registry.supervisor import Supervisor, TaskFailure
from etcd_registry_tui.widgets.event_log import EventLog
from etcd_registry_tui.widgets.status_bar import StatusBar

PREFIX = "/services/"


def raise_once(obj: Any, name: str, error: BaseException) -> list[int]:
    """Make ``obj.name`` raise ``error`` on its next call only; returns a call counter."""
    original = getattr(obj, name)
    calls = [0]

    def patched(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise error
        return original(*args, **kwargs)

    setattr(obj, name, patched)
    return calls


@pytest.fixture
async def session(etcd: EmbeddedEtcd) -> AsyncIterator[tuple[RegistrySession, list[TaskFailure]]]:
    failures: list[TaskFailure] = []
    config = ConnectionConfig(endpoints=(etcd.endpoint,), dial_timeout=2.0, command_timeout=3.0)
    session = RegistrySession(config, on_failure=failures.append)
    session.supervisor.backoff_initial = 0.05
    task = asyncio.create_task(session.run())
    try:
        await session.watcher.wait_live(15)
        yield session, failures
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await session.shutdown()


async def test_a_watcher_death_is_reported_and_restarted(
    session: tuple[RegistrySession, list[TaskFailure]], etcdctl: Etcdctl
) -> None:
    sess, failures = session
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
    await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
    raise_once(sess.watcher, "_apply", RuntimeError("injected watcher bug"))
    etcdctl.put("/services/Orders/o-2", '{"Id": "o-2"}')  # the event that kills it

    await eventually(lambda: failures, timeout=10)
    assert failures[0].name == "registry watcher"
    assert "RuntimeError: injected watcher bug" in failures[0].summary
    assert "restarting" in failures[0].summary
    # restarted: live again, and it caught up (the restart reloads the snapshot)
    await eventually(lambda: sess.status.state is ConnState.LIVE, timeout=15)
    etcdctl.put("/services/Orders/o-3", '{"Id": "o-3"}')
    etcdctl.run("del", "/services/Orders/o-1")
    view = await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
    assert set(view) == {b"/services/Orders/o-2", b"/services/Orders/o-3"}
    assert len(failures) == 1


async def test_a_foreign_cancellation_is_a_death_not_a_stop(
    session: tuple[RegistrySession, list[TaskFailure]], etcdctl: Etcdctl
) -> None:
    # A gRPC stream whose channel is closed under it ends with CancelledError inside the
    # task, though nobody cancelled the task: it must be restarted, not taken as a stop.
    sess, failures = session
    raise_once(sess.watcher, "_apply", asyncio.CancelledError())
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
    await eventually(lambda: failures, timeout=10)
    assert failures[0].name == "registry watcher"
    assert "cancelled from outside" in failures[0].summary
    etcdctl.put("/services/Orders/o-2", '{"Id": "o-2"}')
    await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)


async def test_a_tracker_death_is_reported_and_restarted(
    session: tuple[RegistrySession, list[TaskFailure]], etcdctl: Etcdctl
) -> None:
    sess, failures = session
    raise_once(sess.tracker, "_due", ValueError("injected tracker bug"))
    await eventually(lambda: failures, timeout=10)
    assert failures[0].name == "lease tracker"
    assert "ValueError: injected tracker bug" in failures[0].summary
    # it works again: a new key's lease gets its countdown from etcd
    lease = etcdctl.lease_grant(60)
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}', lease=lease)
    await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
    await eventually(lambda: sess.ttl(lease)[0] is not None, timeout=10)
    remaining, granted = sess.ttl(lease)
    assert granted == 60 and remaining is not None and 0 < remaining <= 60


async def test_a_keepalive_death_is_reported_and_restarted(
    session: tuple[RegistrySession, list[TaskFailure]], etcdctl: Etcdctl
) -> None:
    sess, failures = session
    reg = await sess.register("Pay", "http://127.0.0.1:1", ttl=5)
    assert reg.lease_id is not None
    raise_once(reg, "heartbeat", RuntimeError("injected heartbeat bug"))
    await eventually(lambda: failures, timeout=10)
    died_at = time.monotonic()
    assert failures[0].name == f"heartbeats of {reg.key}"
    # Restarted: the lease is still renewed well past its TTL after the death.
    await asyncio.sleep(7)
    assert time.monotonic() - died_at > 5
    remaining, _granted = await asyncio.to_thread(etcdctl.lease_timetolive, reg.lease_id)
    assert remaining > 0
    assert reg.last_heartbeat is not None and reg.last_heartbeat > died_at
    await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
    assert reg.key.encode() in sess.state


async def test_stopping_a_keepalive_on_purpose_is_not_a_death(
    session: tuple[RegistrySession, list[TaskFailure]], etcdctl: Etcdctl
) -> None:
    sess, failures = session
    reg = await sess.register("Pay", "http://127.0.0.1:1", ttl=5)
    await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
    assert reg.lease_id is not None
    await sess.revoke(reg.lease_id)
    await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
    await asyncio.sleep(1)
    assert failures == []
    assert reg.key.encode() not in sess.state


async def test_a_failed_delete_does_not_label_a_later_expiry(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    entries: list[LogEntry] = []
    config = ConnectionConfig(endpoints=(etcd.endpoint,), dial_timeout=1.0, command_timeout=2.0)
    sess = RegistrySession(config, on_batch=lambda _b, e: entries.extend(e))
    key = b"/services/Orders/o-1"
    etcd.kill()
    with pytest.raises(EtcdUnavailable):
        await sess.delete(key)  # etcd is down: nothing was deleted
    await etcd.astart()
    task = asyncio.create_task(sess.run())
    try:
        await sess.watcher.wait_live(15)
        lease = etcdctl.lease_grant(60)
        etcdctl.put(key, '{"Id": "o-1"}', lease=lease)
        await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
        etcdctl.run("del", key.decode())  # someone else deletes it
        await assert_matches_etcdctl(sess.watcher, etcdctl, PREFIX)
        await eventually(lambda: any(e.kind is LogKind.DEREGISTERED for e in entries))
        deletes = [e for e in entries if e.kind is LogKind.DEREGISTERED]
        assert [e.detail for e in deletes] == [
            f"key deleted, lease {lease:016x} lives on"
            " (unless it ended and was granted again with the same id)"
        ], deletes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sess.shutdown()


# --------------------------------------------------------------------------------------------
# the supervisor itself (pure asyncio, no etcd claimed)


async def test_supervisor_restarts_until_the_task_returns() -> None:
    failures: list[TaskFailure] = []
    runs = [0]

    async def flaky() -> None:
        runs[0] += 1
        if runs[0] < 3:
            raise OSError(f"death {runs[0]}\nsecond line")

    sup = Supervisor(failures.append, backoff_initial=0.01)
    await asyncio.wait_for(sup.run("flaky", flaky), 10)
    assert runs[0] == 3
    assert [f.failures for f in failures] == [1, 2]
    assert failures[0].summary.startswith("flaky stopped: OSError: death 1; restarting in")


async def test_supervisor_cancelled_by_its_owner_stops_quietly() -> None:
    failures: list[TaskFailure] = []
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sup = Supervisor(failures.append)
    task = sup.start("forever", forever)
    await started.wait()
    await sup.stop()
    assert task.cancelled() and cancelled.is_set() and failures == []


async def test_a_broken_reporter_does_not_stop_supervision() -> None:
    runs = [0]

    async def once_broken() -> None:
        runs[0] += 1
        if runs[0] == 1:
            raise RuntimeError("boom")

    def bad_reporter(_: TaskFailure) -> None:
        raise ValueError("reporter bug")

    await asyncio.wait_for(Supervisor(bad_reporter, 0.01).run("x", once_broken), 10)
    assert runs[0] == 2


# --------------------------------------------------------------------------------------------
# on screen: the dashboard shows what died and what the watcher went through


@contextlib.asynccontextmanager
async def dashboard(etcd: EmbeddedEtcd, **kwargs: Any) -> AsyncIterator[tuple[RegistryApp, Any]]:
    config = ConnectionConfig(endpoints=(etcd.endpoint,), dial_timeout=2.0, command_timeout=3.0)
    app = RegistryApp(config, **kwargs)
    app.session.supervisor.backoff_initial = 0.05
    async with app.run_test(size=(140, 40)) as pilot:
        try:
            await until(pilot, lambda: app.session.status.state is ConnState.LIVE)
            yield app, pilot
        finally:
            with contextlib.suppress(Exception):
                await app.session.shutdown()


async def until(pilot: Any, cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    async def check() -> Any:
        await pilot.pause(0.05)
        return cond()

    return await eventually(check, timeout=timeout, interval=0.0)


def status_line(app: RegistryApp) -> str:
    bar = app.query_one(StatusBar)
    return str(bar.render())


def errors_logged(app: RegistryApp) -> list[str]:
    return [e.detail for e in app.query_one(EventLog).entries if e.kind is LogKind.ERROR]


async def test_a_watcher_death_is_on_screen_and_in_the_crash_log(
    etcd: EmbeddedEtcd, etcdctl: Etcdctl
) -> None:
    async with dashboard(etcd) as (app, pilot):
        raise_once(app.session.watcher, "_apply", RuntimeError("injected watcher bug"))
        etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
        await until(pilot, lambda: any("registry watcher stopped" in e for e in errors_logged(app)))
        entry = next(e for e in errors_logged(app) if "registry watcher stopped" in e)
        assert "RuntimeError: injected watcher bug" in entry
        assert str(crash_log_path()) in entry
        assert "injected watcher bug" in status_line(app)
        log_text = crash_log_path().read_text()
        assert "Traceback" in log_text and "injected watcher bug" in log_text
        # restarted: the key it died on is shown, as etcdctl has it
        await until(pilot, lambda: b"/services/Orders/o-1" in app.session.state)
        await assert_matches_etcdctl(app.session.watcher, etcdctl, PREFIX)
        assert app.is_running


async def test_a_compaction_reload_is_shown_in_the_status_line_and_the_log(
    etcd: EmbeddedEtcd,
    etcdctl: Etcdctl,
    make_etcdctl: Callable[[str | list[str]], Etcdctl],
) -> None:
    etcdctl.put("/services/Orders/o-1", '{"Id": "o-1"}')
    async with dashboard(etcd) as (app, pilot):
        etcd.kill()
        await until(pilot, lambda: app.session.status.state is ConnState.RECONNECTING)
        # While it is away, the registry changes and the history is compacted: the same
        # data on another client port, so the dashboard cannot reconnect in between.
        aside = EmbeddedEtcd(
            name=etcd.name, data_dir=etcd.data_dir, peer_port=etcd.peer_port, client_port=None
        )
        aside_ctl = make_etcdctl(aside.endpoint)
        await aside.astart()
        try:
            aside_ctl.put("/services/Orders/o-2", '{"Id": "o-2"}')
            aside_ctl.put("/elsewhere/x", "x")  # so the compaction passes the o-2 event
            aside_ctl.compact(aside_ctl.get_prefix("/").revision)
        finally:
            await asyncio.to_thread(aside.stop)
        await etcd.astart()
        await until(pilot, lambda: app.session.watcher.snapshots_loaded == 2, timeout=30)
        await until(pilot, lambda: app.session.status.state is ConnState.LIVE)
        await pilot.pause(0.2)
        assert any("history compacted" in e for e in errors_logged(app)), errors_logged(app)
        line = status_line(app)
        assert "live" in line and "last error: history compacted" in line, line
        await assert_matches_etcdctl(app.session.watcher, etcdctl, PREFIX)


async def test_an_error_status_is_not_replaced_before_it_is_shown(
    etcd: EmbeddedEtcd,
) -> None:
    # Two statuses queued back to back (the reload after a compaction takes a moment):
    # the error still reaches the log and the status line.
    app = RegistryApp(ConnectionConfig(endpoints=(etcd.endpoint,)), start_session=False)
    async with app.run_test(size=(140, 40)) as pilot:
        error = ConnectionStatus(ConnState.RECONNECTING, "e", error="history compacted past 7")
        app.post_message(StatusChanged(error))
        app.post_message(StatusChanged(ConnectionStatus(ConnState.LIVE, "e")))
        await pilot.pause(0.2)
        assert errors_logged(app) == ["reconnecting: history compacted past 7"]
        assert "last error: history compacted past 7" in status_line(app)
        assert app.query_one(StatusBar).status.state is ConnState.LIVE  # type: ignore[union-attr]


async def test_gc_freeze_only_for_the_first_large_snapshot(
    etcd: EmbeddedEtcd, monkeypatch: pytest.MonkeyPatch
) -> None:
    freezes = [0]
    monkeypatch.setattr(gc, "freeze", lambda: freezes.__setitem__(0, freezes[0] + 1))
    app = RegistryApp(ConnectionConfig(endpoints=(etcd.endpoint,)), start_session=False)
    async with app.run_test(size=(140, 40)) as pilot:
        state = app.session.state
        for revision in (10, 20, 30):  # the first load, then two reloads
            kvs = [
                KeyValue(f"/services/S/i-{n}".encode(), b"{}", mod_revision=revision)
                for n in range(FREEZE_SNAPSHOT_AT)
            ]
            changes = state.load(kvs, revision)
            app._on_session_batch(ChangeBatch(changes, revision, snapshot=True), [])
            await pilot.pause()
        assert freezes[0] == 1


async def test_a_background_worker_death_is_shown_and_restarted(etcd: EmbeddedEtcd) -> None:
    runs = [0]
    second_run = asyncio.Event()

    async def chores() -> None:
        runs[0] += 1
        if runs[0] == 1:
            raise OSError("injected background bug")
        second_run.set()
        await asyncio.sleep(3600)

    async with dashboard(etcd, background=[chores]) as (app, pilot):
        app.supervisor.backoff_initial = 0.05
        await until(pilot, lambda: any("chores" in e for e in errors_logged(app)))
        entry = next(e for e in errors_logged(app) if "chores" in e)
        assert "OSError: injected background bug" in entry and "restarting" in entry
        await until(pilot, second_run.is_set)
        assert app.is_running
