"""``history`` and ``list --history`` say what they could not read (real etcd, etcdctl as
witness): a future ``--since-rev``, an unconfirmed read, a read that stopped partway."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from support.cli_helpers import (
    CLI,
    PREFIX,
    json_lines,
    line_reader,
    many_puts,
    read_until,
    reader_only,
    run_cli,
    witness_at,
)


def _watchers(etcd: Any) -> int:
    """How many watchers etcd has (its own gauge): a follow is live once it has one."""
    with urllib.request.urlopen(f"http://{etcd.endpoint}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    return 0


def _wait_for_a_watcher(etcd: Any) -> None:
    deadline = time.monotonic() + 20
    while _watchers(etcd) < 1:
        assert time.monotonic() < deadline, "the follow never watched"
        time.sleep(0.05)


def _revision(etcdctl: Any) -> int:
    _, revision = etcdctl.get_prefix(PREFIX)
    return int(revision)


def test_history_follow_from_a_future_revision_prints_nothing_before_it(
    etcd: Any, etcdctl: Any
) -> None:
    etcdctl.put(f"{PREFIX}Orders/a", "{}")
    now = _revision(etcdctl)
    since = now + 3
    proc = subprocess.Popen(
        [*CLI, "history", "--endpoints", etcd.endpoint, "--json", "--follow",
         "--since-rev", str(since)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        next_line = line_reader(proc.stdout)
        _wait_for_a_watcher(etcd)  # the follow is live: what follows is written after it
        for n in range(5):
            etcdctl.put(f"{PREFIX}Orders/f{n}", "{}")
        printed = read_until(next_line, lambda p: bool(p) and p[-1]["revision"] >= now + 5, 20)
    finally:
        proc.terminate()
        proc.wait(10)
    assert [p["revision"] for p in printed] == [since, since + 1, since + 2]
    assert [p["key"] for p in printed] == [f"{PREFIX}Orders/f{n}" for n in (2, 3, 4)]


def test_history_since_a_future_revision_says_so_in_one_line(etcd: Any, etcdctl: Any) -> None:
    etcdctl.put(f"{PREFIX}Orders/a", "{}")
    now = _revision(etcdctl)
    result = run_cli("history", "--endpoints", etcd.endpoint, "--since-rev", str(now + 5))
    listed = run_cli("list", "--endpoints", etcd.endpoint, "--rev", str(now + 5))
    assert result.returncode == listed.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"revision {now + 5} is in the future" in lines[0]
    assert f"the latest is {now}" in lines[0] and "Traceback" not in result.stderr
    # Up to now is not the future: the last event is printed.
    same = run_cli("history", "--json", "--endpoints", etcd.endpoint, "--since-rev", str(now))
    assert same.returncode == 0, same.stderr
    assert [json.loads(line)["revision"] for line in same.stdout.splitlines()] == [now]


def test_list_history_text_and_history_json_say_an_unconfirmed_read(
    etcd: Any, etcdctl: Any
) -> None:
    """A window with no event under the prefix that etcd cannot confirm: ``list --history``
    says so on stderr in text too; ``history --json`` writes an ``incomplete`` record."""
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a", "Address": "http://a:1"}')
    for n in range(3):
        etcdctl.put(f"/elsewhere/{n}", "x")
    end = _revision(etcdctl)
    login = reader_only(etcdctl)
    as_json = run_cli("list", "--json", "--history", "2", "--endpoints", etcd.endpoint, *login)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["history_complete"] is False  # the witness of JSON
    text = run_cli("list", "--history", "2", "--endpoints", etcd.endpoint, *login)
    assert text.returncode == 0, text.stderr
    assert "History from revision" in text.stdout
    notice = [line for line in text.stderr.splitlines() if "incomplete" in line]
    assert notice == [
        f"history: incomplete: etcd did not confirm that every event from revision {end - 1}"
        f" to {end} was read"
    ], text.stderr

    quiet = run_cli(
        "history", "--json", "--since-rev", str(end - 1), "--endpoints", etcd.endpoint, *login
    )
    assert quiet.returncode == 0, quiet.stderr
    assert [json.loads(line) for line in quiet.stdout.splitlines()] == [
        {"type": "incomplete", "from": end - 1, "to": end, "complete": False}
    ]
    assert quiet.stderr.count("incomplete") == 1


async def test_a_read_that_makes_progress_does_not_stop_however_long_it_takes(
    etcd: Any, etcdctl: Any
) -> None:
    """10,000 revisions read for much longer than the idle time (its reader takes its
    time, as a slow stdout does): the read goes on while events come and hands over every
    one (etcdctl: the first's key). The idle time counts only etcd's silence, so a
    loaded machine's pauses between batches, shorter than it, stop nothing either."""
    from support.helpers import connection

    from etcd_registry_tui.registry.history.read import HistoryEvent, stream_past

    first, end = await many_puts(etcd.endpoint, 10_000)
    assert witness_at(etcdctl, first) == {f"{PREFIX}Orders/first": first}
    idle = 1.5
    got: list[int] = []

    async def slowly(events: list[HistoryEvent]) -> None:
        got.extend(e.revision for e in events)
        if len(got) % 1000 == 0:
            await asyncio.sleep(0.4)  # 4 s in all: longer than the idle time

    async with connection(etcd.endpoint) as conn:
        began = time.monotonic()
        past = await stream_past(conn, PREFIX, first, end, slowly, idle=idle)
        took = time.monotonic() - began
    assert past.complete and not past.stopped and past.through == end
    assert got == list(range(first, end + 1))
    assert took > idle, f"the read took {took:.2f} s: not longer than the idle time"


@pytest.mark.parametrize("fault", ["freeze", "refuse"])
def test_history_that_stops_partway_says_the_exact_gap(
    etcd: Any, etcdctl: Any, monkeypatch: Any, capsys: Any, fault: str
) -> None:
    """etcd stops answering (a frozen connection) or the connection is lost in the middle
    of a long read: every event read is printed, then one gap record names exactly the
    revisions not read (and the status is 1: not all was read)."""
    from support.tcp_proxy import tcp_proxy

    from etcd_registry_tui.cli import history as cli_history
    from etcd_registry_tui.cli.main import main
    from etcd_registry_tui.registry.etcd.connection import EtcdConnection

    first, end = asyncio.run(many_puts(etcd.endpoint, 6_000))
    if fault == "freeze":
        monkeypatch.setattr(cli_history, "READ_IDLE", 1.0)
    with tcp_proxy(etcd.client_port) as proxy:
        real_watch = EtcdConnection.watch

        async def watch(self: Any, *args: Any, **kwargs: Any) -> Any:
            async for response in real_watch(self, *args, **kwargs):
                yield response
                if response.events and not (proxy.frozen or proxy.refusing):
                    getattr(proxy, fault)()  # after the first batch: etcd is gone

        monkeypatch.setattr(EtcdConnection, "watch", watch)
        code = main(["history", "--json", "--since-rev", str(first), "--endpoints",
                     proxy.endpoint])  # fmt: skip
        proxy.heal()
    assert code == 1
    out = capsys.readouterr()
    lines = json_lines(out.out)
    events, gap = lines[:-1], lines[-1]
    through = events[-1]["revision"]
    assert first <= through < end, "the read was not cut"
    assert [e["revision"] for e in events] == list(range(first, through + 1))
    assert events[0]["key"] == f"{PREFIX}Orders/first" and all(e["complete"] for e in events)
    reason = gap.pop("reason")
    assert gap == {"type": "gap", "from": through + 1, "to": end, "complete": False}
    said = out.err.splitlines()
    assert len(said) == 1 and said[0].startswith(
        f"history: revisions {through + 1} to {end} could not be read ("
    ), out.err
    if fault == "freeze":
        assert reason == "timed out" and "etcd sent no event for 1 s" in said[0]
    else:
        assert reason != "timed out" and reason in said[0]
    # Witness: etcd holds an event under the prefix at the gap's first revision (it was
    # not read, not absent).
    assert through + 1 in witness_at(etcdctl, through + 1).values()


def test_history_follow_reads_on_from_where_a_stopped_read_ended(
    etcd: Any, etcdctl: Any, monkeypatch: Any, capsys: Any
) -> None:
    """The same stop under ``--follow``: once etcd answers again the follow reads on from
    the revision the read stopped at; every event is printed once, in order, no gap."""
    import os
    import signal

    from support.tcp_proxy import tcp_proxy

    from etcd_registry_tui.cli import history as cli_history
    from etcd_registry_tui.cli.main import main
    from etcd_registry_tui.registry.etcd.connection import EtcdConnection

    first, end = asyncio.run(many_puts(etcd.endpoint, 6_000))
    monkeypatch.setattr(cli_history, "READ_IDLE", 1.0)
    with tcp_proxy(etcd.client_port) as proxy:
        real_watch, real_follow, real_print = (
            EtcdConnection.watch, cli_history._follow, cli_history.print_event
        )  # fmt: skip
        cut: list[bool] = []
        stopped_at: list[int] = []

        async def watch(self: Any, *args: Any, **kwargs: Any) -> Any:
            async for response in real_watch(self, *args, **kwargs):
                yield response
                if response.events and not cut:
                    cut.append(True)
                    proxy.freeze()  # after the first batch: etcd goes silent

        async def follow(config: Any, args: Any, printed_to: int) -> int:
            stopped_at.append(printed_to)
            proxy.heal()  # etcd answers again once the read has stopped
            return await real_follow(config, args, printed_to)

        def print_event(event: Any, *args: Any, **kwargs: Any) -> None:
            real_print(event, *args, **kwargs)
            if event.revision >= end:
                os.kill(os.getpid(), signal.SIGTERM)  # all there: the follow's own stop

        monkeypatch.setattr(EtcdConnection, "watch", watch)
        monkeypatch.setattr(cli_history, "_follow", follow)
        monkeypatch.setattr(cli_history, "print_event", print_event)
        code = main(["history", "--json", "--follow", "--since-rev", str(first),
                     "--endpoints", proxy.endpoint])  # fmt: skip
    assert code == 0
    assert stopped_at and first <= stopped_at[0] < end, "the read was not cut"
    out = capsys.readouterr()
    lines = json_lines(out.out)
    assert [line.get("type") for line in lines if "type" in line] == []  # no gap
    assert [e["revision"] for e in lines] == list(range(first, end + 1))


def test_history_json_gives_each_key_exact_bytes(etcd: Any, etcdctl: Any) -> None:
    """A binary key and the text key that prints like it: ``key_b64`` tells them apart, and
    equals the key etcdctl reads (its JSON keys are base64)."""
    etcdctl.put(b"/services/Bin/\xff\xfe", "{}")
    etcdctl.put("/services/Bin/\\xff\\xfe", "{}")
    result = run_cli("history", "--json", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    witness = etcdctl.run_json("get", "--prefix", "--", PREFIX)
    by_revision = {int(kv["mod_revision"]): kv["key"] for kv in witness["kvs"]}
    assert len(lines) == 2 and lines[0]["key_b64"] != lines[1]["key_b64"]
    assert {line["revision"]: line["key_b64"] for line in lines} == by_revision
    assert base64.b64decode(lines[0]["key_b64"]) == b"/services/Bin/\xff\xfe"
    listed = run_cli("list", "--json", "--history", "10", "--endpoints", etcd.endpoint)
    assert [e["key_b64"] for e in json.loads(listed.stdout)["history"]] == [
        line["key_b64"] for line in lines
    ]
