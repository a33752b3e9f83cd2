"""History completeness and bounds, against real etcd (etcdctl is the witness).

etcd replays a long history to a watch in steps of 1,000 revisions, 100 ms apart, and etcd
before 3.4.25 answers a progress request at once, ahead of the replay (etcd #15220): a
read that stops when the stream goes quiet misses the rest. A reader that stops
reading for a second makes the pause (a frozen proxy does not: the bytes etcd sent wait in
order behind it, progress answers included).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.helpers import connection

from etcd_registry_tui.registry.history.read import read_past
from etcd_registry_tui.registry.history.store import History
from etcd_registry_tui.registry.history.view import PastView
from etcd_registry_tui.registry.model import RegistryState

PREFIX = "/services/"
KEYS = 100


def etcdctl_at(etcdctl: Any, revision: int) -> dict[bytes, bytes]:
    data = etcdctl.run_json("get", "--prefix", f"--rev={revision}", "--", PREFIX)
    return {
        base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", ""))
        for kv in data.get("kvs") or []
    }


async def _write_long_history(endpoint: str, revisions: int) -> int:
    """``revisions`` revisions under the prefix: puts and some deletes over ``KEYS`` keys."""
    async with connection(endpoint) as conn:
        for base in range(0, revisions, 200):

            async def one(n: int) -> None:
                key = f"{PREFIX}Orders/o{n % KEYS}".encode()
                if n % 7 == 3:
                    await conn.delete(key)
                else:
                    await conn.put(key, f'{{"Id": "o{n % KEYS}", "n": {n}}}'.encode())

            # Sequential inside each key's slot would be slow: 200 at a time, in any order.
            await asyncio.gather(*(one(n) for n in range(base, min(base + 200, revisions))))
        _, end = await conn.get_prefix(PREFIX.encode(), page_size=1, keys_only=True)
    return int(end)


@pytest.fixture(scope="module")
def long_etcd() -> Iterator[tuple[Any, Any, int]]:
    from support.etcdctl import Etcdctl, require_etcd

    from etcd_registry_tui.demo.embedded import EmbeddedEtcd

    require_etcd()
    server = EmbeddedEtcd(fast_election=True)
    server.start()
    try:
        end = asyncio.run(_write_long_history(server.endpoint, 6_000))
        yield server, Etcdctl(server.endpoint), end
    finally:
        server.stop()


async def _read_slowly(endpoint: str, end: int, pause: float) -> Any:
    """``read_past`` through a slow consumer: it stops reading for ``pause`` seconds after
    the first response with events (the dashboard's loop busy drawing, say). etcd is real;
    only the reader dawdles."""
    async with connection(endpoint) as conn:
        watch = conn.watch

        async def dawdling(*args: Any, **kwargs: Any) -> Any:
            paused = False
            async for response in watch(*args, **kwargs):
                yield response
                if response.events and not paused:
                    paused = True
                    await asyncio.sleep(pause)

        conn.watch = dawdling  # type: ignore[method-assign]
        return await read_past(conn, PREFIX, end, revisions=10_000)


async def test_a_pause_mid_replay_does_not_end_the_read(long_etcd: Any) -> None:
    server, etcdctl, end = long_etcd
    past = await _read_slowly(server.endpoint, end, pause=1.0)
    revisions = sorted({e.revision for e in past.events})
    # Every revision after the first one (the fixture's own writes are all under the prefix)
    assert revisions[-1] == end, f"read stopped at {revisions[-1]} of {end}"
    assert revisions == list(range(revisions[0], end + 1))
    assert past.complete
    history = History(max_entries=20_000)
    history.load_past(past.events, past.start, past.compacted, past.start - 1)
    live = RegistryState(PREFIX)
    async with connection(server.endpoint) as conn:
        kvs, rev = await conn.get_prefix(PREFIX.encode())
    live.load(kvs, rev)
    view = PastView(live, history)
    for target in (end - 4_000, 3_000, end - 1_000, end - 1):
        view.go(target)
        shown = {i.raw_key: i.value for i in view.state.instances.values()}
        assert shown == etcdctl_at(etcdctl, target), f"rev {target} differs from etcdctl"


async def test_an_empty_window_is_complete_when_etcd_proves_it(etcd: Any, etcdctl: Any) -> None:
    """etcd 3.4.23's progress answers come at once, replay or not, so they prove nothing
    about an empty window; but every revision holds an event of some key, and one watch
    delivers in order: a watch of the whole keyspace that reaches the window's end proves
    no event under the prefix is missing. ``etcdctl watch --rev`` sees the same."""
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    for n in range(5):
        etcdctl.put(f"/elsewhere/{n}", "x")  # revisions with no event under the prefix
    _, end = etcdctl.get_prefix(PREFIX)
    async with connection(etcd.endpoint) as conn:
        quiet = await read_past(conn, PREFIX, int(end), since=int(end) - 3)
        whole = await read_past(conn, PREFIX, int(end))
    assert quiet.events == []
    assert quiet.complete
    assert [e.key_text for e in whole.events] == [f"{PREFIX}Orders/a"] and whole.complete
    assert _witness_keys(etcd, int(end) - 3, int(end)) == [f"/elsewhere/{n}" for n in range(1, 5)]


def _witness_keys(etcd: Any, first: int, last: int) -> list[str]:
    """Keys of every event from ``first`` to ``last``, as ``etcdctl watch --rev`` shows them."""
    import subprocess

    from support.etcdctl import require_etcdctl

    proc = subprocess.Popen(
        [require_etcdctl(), "--endpoints", etcd.endpoint, "watch", "--prefix", f"--rev={first}",
         "-w", "json", ""],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    keys: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            events = json.loads(line).get("Events") or []
            for ev in events:
                if int(ev["kv"]["mod_revision"]) <= last:
                    keys.append(base64.b64decode(ev["kv"]["key"]).decode())
            if any(int(ev["kv"]["mod_revision"]) >= last for ev in events):
                break
    finally:
        proc.terminate()
        proc.wait(10)
    return keys


async def test_an_empty_window_etcd_cannot_prove_stays_incomplete(
    etcd: Any, etcdctl: Any, monkeypatch: Any
) -> None:
    """Past the bound of revisions the whole-keyspace proof reads (here 2), an empty window
    on etcd 3.4.23 stays ``incomplete``."""
    from etcd_registry_tui.registry.history import read as history_read

    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    for n in range(5):
        etcdctl.put(f"/elsewhere/{n}", "x")
    _, end = etcdctl.get_prefix(PREFIX)
    monkeypatch.setattr(history_read, "QUIET_PROOF_REVISIONS", 2)
    async with connection(etcd.endpoint) as conn:
        version = str((await conn.status()).version)
        quiet = await read_past(conn, PREFIX, int(end), since=int(end) - 3)
    assert quiet.events == []
    assert quiet.complete is history_read.progress_is_ordered(version)


def test_which_etcd_versions_answer_progress_in_order() -> None:
    from etcd_registry_tui.registry.history.read import progress_is_ordered

    assert not progress_is_ordered("3.4.23")
    assert progress_is_ordered("3.4.25") and progress_is_ordered("3.5.8")
    assert not progress_is_ordered("3.5.7") and progress_is_ordered("3.6.0")
    assert not progress_is_ordered("nonsense")


async def _puts(endpoint: str, count: int, prefix: str = PREFIX) -> None:
    async with connection(endpoint) as conn:
        for n in range(count):
            await conn.put(f"{prefix}Orders/o{n % 10}".encode(), b'{"Id": "o"}')


def test_history_json_of_one_full_replay_batch_is_complete_once_etcd_proves_it(
    etcd: Any, etcdctl: Any
) -> None:
    """A replay of exactly 1,000 revisions is one full batch: on etcd 3.4.23 nothing in the
    prefix's own watch tells whether more follow, but the revision after it (a key
    elsewhere) proves it on a watch of every key: ``history --json`` says complete."""
    from test_cli import run_cli

    asyncio.run(_puts(etcd.endpoint, 1_000))
    _, end = etcdctl.get_prefix(PREFIX)
    etcdctl.put("/elsewhere/x", "1")
    result = run_cli("history", "--json", "--since-rev", str(int(end) - 999), "--endpoints",
                     etcd.endpoint)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["revision"] for line in lines] == list(range(int(end) - 999, int(end) + 1))
    assert {line["complete"] for line in lines} == {True}
    assert "incomplete" not in result.stderr
    whole = run_cli("history", "--json", "--since-rev", str(int(end) - 10), "--endpoints",
                    etcd.endpoint)  # fmt: skip
    assert {json.loads(line)["complete"] for line in whole.stdout.splitlines()} == {True}
    assert "incomplete" not in whole.stderr


def test_the_status_line_says_incomplete() -> None:
    history = History()
    history.load_past([], 10, 0, 9, complete=False)
    assert history.describe_reach() == "history from rev 10 (incomplete)"
    history.load_past([], 10, 0, 9, complete=True)
    assert history.describe_reach() == "history from rev 10"


async def test_history_is_read_once_for_a_snapshot_of_several_pages(etcd: Any) -> None:
    """The first snapshot comes in pages (1,000 keys, then the rest): the history reader
    starts once, so each past event is held once."""
    from support.helpers import eventually

    from etcd_registry_tui.registry.etcd.config import ConnectionConfig
    from etcd_registry_tui.registry.session import RegistrySession

    async with connection(etcd.endpoint) as conn:
        for base in range(0, 1_500, 250):
            await asyncio.gather(
                *(
                    conn.put(f"{PREFIX}Orders/o{n}".encode(), f'{{"Id": "o{n}"}}'.encode())
                    for n in range(base, base + 250)
                )
            )
    sess = RegistrySession(ConnectionConfig(endpoints=(etcd.endpoint,)))
    task = asyncio.create_task(sess.run())
    try:
        await sess.watcher.wait_live(15)
        await eventually(lambda: sess.history.loaded)
        await asyncio.sleep(0.5)  # a second reader, if any, would have loaded by now
        revisions = [e.revision for e in sess.history]
        assert len(revisions) == 1_500
        assert len(set(revisions)) == len(revisions), "past events held more than once"
        timeline_keys = [e.key for e in sess.history.of_key(f"{PREFIX}Orders/o7".encode())]
        assert len(timeline_keys) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sess.shutdown()


def _lines_until(stream: Any, done: Any, timeout: float) -> list[str]:
    """Lines of ``stream`` (read on a thread) until ``done(line)`` or ``timeout``."""
    import queue
    import threading

    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [got.put(line) for line in stream], daemon=True).start()
    lines: list[str] = []
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = got.get(timeout=0.2)
        except queue.Empty:
            continue
        lines.append(line)
        if done(line):
            break
    return lines


async def _txn(conn: Any, n: int) -> None:
    """One revision of four events: three puts and a delete, in one transaction."""
    from aetcd import rpc

    ops = [
        rpc.RequestOp(
            request_put=rpc.PutRequest(
                key=f"{PREFIX}Orders/t{n % 7}-{k}".encode(), value=f'{{"n": {n}}}'.encode()
            )
        )
        for k in range(3)
    ]
    ops.append(
        rpc.RequestOp(
            request_delete_range=rpc.DeleteRangeRequest(
                key=f"{PREFIX}Orders/t{(n + 3) % 7}-0".encode()
            )
        )
    )

    async def run(client: Any) -> None:
        await client.kvstub.Txn(rpc.TxnRequest(success=ops), **conn._opts(client))

    await conn._call(run)


@pytest.mark.parametrize("txns", [False, True], ids=["puts", "txns"])
def test_history_follow_prints_every_revision_under_steady_writes(
    etcd: Any, etcdctl: Any, txns: bool
) -> None:
    """``history --follow`` while a writer puts and deletes without pause (or writes txns
    of several events per revision), compared revision by revision with an independent
    ``etcdctl watch --rev N --prefix``."""
    import os
    import subprocess
    import threading

    from support.etcdctl import require_etcdctl
    from test_cli import CLI

    etcdctl.put(f"{PREFIX}Orders/first", '{"Id": "first"}')
    _, first = etcdctl.get_prefix(PREFIX)
    stop = threading.Event()
    written = [0]

    async def write() -> None:
        async with connection(etcd.endpoint) as conn:
            n = 0
            while not stop.is_set():
                written[0] = n
                key = f"{PREFIX}Orders/w{n % 20}".encode()
                if txns:
                    await _txn(conn, n)
                elif n % 5 == 4:
                    await conn.delete(key)
                else:
                    await conn.put(key, f'{{"Id": "w{n}"}}'.encode())
                n += 1
                await asyncio.sleep(0.002)

    writer = threading.Thread(target=lambda: asyncio.run(write()), daemon=True)
    writer.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    follow = subprocess.Popen(
        [*CLI, "history", "--endpoints", etcd.endpoint, "--json", "--follow", "--since-rev",
         str(int(first))],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        import time

        # The past is printed and following has begun, under load: at least 2 s and 300
        # writes (a loaded machine writes slower; the comparison needs enough of them).
        began = time.monotonic()
        while time.monotonic() - began < 2.0 or (
            written[0] < 300 and time.monotonic() - began < 30
        ):
            time.sleep(0.1)
        stop.set()
        writer.join(10)
        etcdctl.put(f"{PREFIX}Orders/last", '{"Id": "last"}')
        _, last = etcdctl.get_prefix(PREFIX)
        assert follow.stdout is not None
        printed = [
            json.loads(line)
            for line in _lines_until(
                follow.stdout, lambda line: json.loads(line)["revision"] >= int(last), 20
            )
        ]
    finally:
        follow.terminate()
        follow.wait(10)
    witness = subprocess.Popen(
        [require_etcdctl(), "--endpoints", etcd.endpoint, "watch", "--prefix",
         f"--rev={int(first)}", "-w", "json", PREFIX],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert witness.stdout is not None
        seen: list[tuple[int, str, str]] = []

        def caught_up(line: str) -> bool:
            for ev in json.loads(line).get("Events") or []:
                kv = ev["kv"]
                kind = "DELETE" if ev.get("type") == 1 else "PUT"
                seen.append((int(kv["mod_revision"]), kind, base64.b64decode(kv["key"]).decode()))
            return bool(seen) and seen[-1][0] >= int(last)

        _lines_until(witness.stdout, caught_up, 20)
    finally:
        witness.terminate()
        witness.wait(10)
    got = [(e["revision"], "DELETE" if e["kind"] == "DELETE" else "PUT", e["key"]) for e in printed]
    assert len(seen) > 200, "the writer hardly wrote"
    missing = sorted(set(seen) - set(got))
    assert not missing, f"{len(missing)} events never printed, first {missing[:3]}"
    assert got == seen  # in order, once each


async def test_history_view_reaches_what_happened_after_it_opened(etcd: Any, etcdctl: Any) -> None:
    """After ``h``, a put; then End goes to the live revision, → reaches it, and ``g`` past
    the live revision says so and shows the live one."""
    from test_app_actions import dashboard, put_instance, text_of, until

    from etcd_registry_tui.screens.history import HistoryScreen

    put_instance(etcdctl, "Orders", "o-1")
    async with dashboard(etcd, rows=2) as (app, pilot):
        await until(pilot, lambda: app.session.history.loaded)
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        opened = screen.view.revision
        later = put_instance(etcdctl, "Billing", "b-1")
        _, live = etcdctl.get_prefix(PREFIX)
        await until(pilot, lambda: screen.live == int(live))
        await pilot.press("end")
        await pilot.pause()
        assert screen.view.revision == int(live), screen.banner_text()
        assert later in screen.view.state.instances
        assert "PUT" in text_of(screen.query_one("#history-changes"))
        await pilot.press("left")
        assert screen.view.revision == opened and later not in screen.view.state.instances
        await pilot.press("right")
        assert screen.view.revision == int(live) and later in screen.view.state.instances
        notes: list[str] = []
        screen.notify = lambda message, **_: notes.append(str(message))  # type: ignore[method-assign]
        await pilot.press("g", "9", "9", "9", "enter")
        await pilot.pause()
        assert screen.view.revision == int(live)
        assert any("999" in note and "live" in note for note in notes), notes


async def test_status_line_follows_eviction_compaction_and_etcds_revision(
    etcd: Any, etcdctl: Any, monkeypatch: Any
) -> None:
    """The status line's history range follows what is held (old events dropped) and etcd's
    compaction; ``rev`` is etcd's revision (progress notifications), not only the last
    registry change."""
    from test_app_actions import SIZE, status_text, until

    from etcd_registry_tui.app import RegistryApp
    from etcd_registry_tui.registry import session as session_module
    from etcd_registry_tui.registry.etcd.config import ConnectionConfig

    monkeypatch.setattr(session_module, "COMPACTION_CHECK_EVERY", 0.2)
    await _puts(etcd.endpoint, 30)
    app = RegistryApp(ConnectionConfig(endpoints=(etcd.endpoint,)), history_max=20)
    app.session.watcher.progress_interval = 0.2
    async with app.run_test(size=SIZE) as pilot:
        try:
            await until(pilot, lambda: app.session.history.loaded)
            await until(pilot, lambda: "history from rev 11" in status_text(app),
                        message=lambda: status_text(app))  # fmt: skip
            await _puts(etcd.endpoint, 10)  # 10 more: the oldest 10 held are dropped
            await until(pilot, lambda: "history from rev 21" in status_text(app),
                        message=lambda: status_text(app))  # fmt: skip
            etcdctl.compact(35)
            await until(pilot, lambda: "etcd compacted at rev 35" in status_text(app),
                        message=lambda: status_text(app))  # fmt: skip
            for n in range(5):
                etcdctl.put(f"/elsewhere/{n}", "x")
            _, rev = etcdctl.get_prefix("/elsewhere/")
            await until(pilot, lambda: f"rev {int(rev)} " in status_text(app),
                        message=lambda: status_text(app))  # fmt: skip
        finally:
            await app.session.shutdown()


def test_history_is_bounded_in_bytes_and_keeps_large_values_as_size_and_digest() -> None:
    import hashlib

    from etcd_registry_tui.registry.history.store import LARGE_VALUE, HistoryEvent
    from etcd_registry_tui.registry.model import KeyValue

    history = History(max_entries=10_000, max_bytes=50_000)
    small = b'{"Id": "s"}'
    for rev in range(2, 202):
        value = bytes([rev % 256]) * 50_000 if rev % 2 else small  # odd revisions: large
        kv = KeyValue(b"/services/S/i", value, 1, rev, rev, 0)
        prev = KeyValue(b"/services/S/i", b"x" * 20_000, 1, rev - 1, rev - 1, 0)
        history.append([HistoryEvent.make(PREFIX, rev, kv, prev)])
    held = list(history)
    assert history.bytes <= 50_000 and history.bytes == sum(e.weight for e in held)
    assert len(held) < 200 and history.floor == held[0].revision - 1
    for event in held:
        assert event.prev is not None and event.prev.value == b""  # 20 KB > LARGE_VALUE
        assert event.prev_held is not None and event.prev_held.size == 20_000
        assert event.kv is not None
        if event.revision % 2:
            assert event.kv.value == b"" and event.kv_held is not None
            value = bytes([event.revision % 256]) * 50_000
            assert event.kv_held.digest == hashlib.sha256(value).hexdigest()[:16]
        else:
            assert event.kv.value == small and event.kv_held is None
    assert LARGE_VALUE < 20_000


async def test_large_values_read_back_are_not_held(etcd: Any) -> None:
    """History read from etcd keeps a 200 KB value as its size and digest, and stays
    within the byte bound however many such events there are."""
    big = b'{"Id": "b", "pad": "' + b"z" * 200_000 + b'"}'
    async with connection(etcd.endpoint) as conn:
        for n in range(40):
            await conn.put(f"{PREFIX}Big/k{n % 4}".encode(), big)
        _, end = await conn.get_prefix(PREFIX.encode(), page_size=1, keys_only=True)
        past = await read_past(conn, PREFIX, int(end), max_bytes=10_000)
    assert past.complete
    assert all(e.kv is not None and e.kv.value == b"" for e in past.events)
    assert all(e.kv_held is not None and e.kv_held.size == len(big) for e in past.events)
    assert sum(e.weight for e in past.events) <= 10_000 + 2_000
    assert past.floor == past.events[0].revision - 1 > 1


async def test_history_view_reads_large_values_on_demand_and_says_compacted(
    etcd: Any, etcdctl: Any
) -> None:
    """A value too large to hold is read from etcd (``get --rev``) when the view shows its
    revision; once etcd compacted it, the view says so."""
    from test_app_actions import dashboard, text_of, until

    from etcd_registry_tui.screens.history import HistoryScreen

    key = f"{PREFIX}Big/k"
    versions = [
        json.dumps({"Id": "k", "Address": f"http://k:{n}", "pad": chr(97 + n) * 20_000})
        for n in range(3)
    ]
    for value in versions:
        etcdctl.put(key, value)
    _, live = etcdctl.get_prefix(PREFIX)
    live = int(live)
    async with dashboard(etcd, rows=2) as (app, pilot):
        await until(pilot, lambda: app.session.history.loaded)
        held = list(app.session.history)
        assert all(e.kv is not None and e.kv.value == b"" for e in held)  # not held
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await pilot.press("left")
        assert screen.view.revision == live - 1

        def shown() -> bytes | None:
            inst = screen.view.state.get(key.encode())
            return inst.value if inst is not None else None

        await until(pilot, lambda: shown() == versions[1].encode())
        assert etcdctl_at(etcdctl, live - 1)[key.encode()] == shown()
        etcdctl.compact(live)  # the versions before the live one are gone
        await pilot.press("left")
        assert screen.view.revision == live - 2
        changes = screen.query_one("#history-changes")
        await until(pilot, lambda: "compacted" in text_of(changes),
                    message=lambda: text_of(changes))  # fmt: skip
        assert f"compacted (etcd keeps rev {live:,} on)" in text_of(changes)
        assert "19.6 KiB, sha256" in text_of(changes) and shown() == b""


def test_inspect_timeline_compares_large_values_by_digest() -> None:
    from etcd_registry_tui.registry.history.store import HistoryEvent
    from etcd_registry_tui.registry.history.timeline import key_timeline
    from etcd_registry_tui.registry.model import KeyValue

    history = History()
    big, other = b"a" * 10_000, b"b" * 10_000
    key = b"/services/S/i"
    values = [big, big, other]
    for rev, value in enumerate(values, start=2):
        prev = KeyValue(key, values[rev - 3], 2, rev - 1, rev - 2) if rev > 2 else None
        history.append(
            [HistoryEvent.make(PREFIX, rev, KeyValue(key, value, 2, rev, rev - 1), prev)]
        )
    lines = key_timeline(history, key)
    assert "registered" in lines[0]
    assert "value unchanged" in lines[1]
    assert "value now 9.8 KiB, sha256" in lines[2] and "too large to hold" in lines[2]


async def test_dashboard_says_incomplete_when_etcd_cannot_confirm(
    etcd: Any, etcdctl: Any, monkeypatch: Any
) -> None:
    """A read-back window with no event under the prefix that etcd 3.4.23 cannot confirm
    (no whole-keyspace proof allowed here): the status line and the history view say
    ``incomplete``."""
    from test_app_actions import dashboard, put_instance, status_text, text_of, until

    from etcd_registry_tui.registry.history import read as history_read
    from etcd_registry_tui.screens.history import HistoryScreen

    if history_read.progress_is_ordered(etcdctl.run("version").split()[2]):
        pytest.skip("this etcd confirms an empty replay")
    monkeypatch.setattr(history_read, "QUIET_PROOF_REVISIONS", 0)
    put_instance(etcdctl, "Orders", "o-1")
    for n in range(5):
        etcdctl.put(f"/elsewhere/{n}", "x")
    async with dashboard(etcd, rows=2, history_revisions=3) as (app, pilot):
        await until(pilot, lambda: "(incomplete)" in status_text(app),
                    message=lambda: status_text(app))  # fmt: skip
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        assert "incomplete" in text_of(app.screen.query_one("#history-changes"))


async def test_every_event_of_the_newest_revision_is_read(etcd: Any, etcdctl: Any) -> None:
    """A txn of three keys is the newest revision: all three events are read, not one."""
    etcdctl.put(f"{PREFIX}a/1", "x")
    txn = f"\nput {PREFIX}t/1 v1\nput {PREFIX}t/2 v2\nput {PREFIX}t/3 v3\n\n\n"
    etcdctl.run("txn", input=txn)
    _, end = etcdctl.get_prefix(PREFIX)
    async with connection(etcd.endpoint) as conn:
        past = await read_past(conn, PREFIX, end)
    at_end = sorted(e.key_text for e in past.events if e.revision == end)
    assert at_end == [f"{PREFIX}t/1", f"{PREFIX}t/2", f"{PREFIX}t/3"]
    assert past.complete


async def test_a_delete_at_the_compaction_revision_is_not_claimed(etcd: Any, etcdctl: Any) -> None:
    """etcd keeps no tombstone at its compaction revision R: a history read from R would
    miss a delete there, so it must say it starts at R + 1."""
    etcdctl.put(f"{PREFIX}b/1", "one")
    etcdctl.put(f"{PREFIX}b/2", "two")
    etcdctl.run("del", f"{PREFIX}b/1")
    _, deleted_at = etcdctl.get_prefix(PREFIX)
    etcdctl.put(f"{PREFIX}b/3", "three")
    etcdctl.run("compact", str(deleted_at))
    _, end = etcdctl.get_prefix(PREFIX)
    async with connection(etcd.endpoint) as conn:
        for since in (deleted_at, None):
            past = await read_past(conn, PREFIX, end, since=since)
            assert past.compacted == deleted_at
            assert past.start == deleted_at + 1
            assert past.floor == deleted_at
            assert [e.revision for e in past.events] == [end]


async def test_the_empty_window_proof_reads_the_last_revision_whole(
    etcd: Any, etcdctl: Any
) -> None:
    """A txn at the window's end writes a key elsewhere, then one under the prefix: the
    proof must not stop at the first event of that revision and call the window empty."""
    from etcd_registry_tui.registry.history.read import _quiet_until

    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    txn = f"\nput /elsewhere/t v\nput {PREFIX}Orders/t v\n\n\n"
    etcdctl.run("txn", input=txn)
    _, end = etcdctl.get_prefix(PREFIX)
    assert _witness_keys(etcd, int(end), int(end)) == ["/elsewhere/t", f"{PREFIX}Orders/t"]
    etcdctl.put("/elsewhere/after", "x")
    async with connection(etcd.endpoint) as conn:
        assert not await _quiet_until(conn, PREFIX, int(end), int(end))
        assert await _quiet_until(conn, PREFIX, int(end) + 1, int(end) + 1)
