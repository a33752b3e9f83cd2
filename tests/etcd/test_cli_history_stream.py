"""``history`` and ``list --history`` print the past as etcd replays it (real etcd, the CLI
in a subprocess): memory does not grow with the events, what is printed is etcd's history
(``etcdctl watch --rev`` as witness), and the reasons are those of the held read."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from support.cli_helpers import (
    PREFIX,
    json_lines,
    many_puts,
    run_cli,
    run_cli_measured,
    witness_watch,
)

#: 20,000 revisions of ~1 KB values: the old CLI, holding the whole read, peaked ~60 MB
#: above its own baseline here (``list --history`` ~100 MB); streamed, ~20 MB whatever
#: the count (the replay's batch in flight, the allocator's arenas).
EVENTS = 20_000
BOUND_MB = 40


def _value(n: int) -> bytes:
    return json.dumps({"Id": f"o{n % 50}", "n": n, "pad": "x" * 1000}).encode()


def test_history_of_20000_revisions_streams_in_bounded_memory(etcd: Any) -> None:
    first, end = asyncio.run(many_puts(etcd.endpoint, EVENTS, value=_value))
    assert end - first + 1 == EVENTS
    where = ("--endpoints", etcd.endpoint)
    # The same CLI reading one event: its memory without the history.
    out, err, code, baseline = run_cli_measured(
        "history", "--json", "--since-rev", str(end), *where
    )
    assert code == 0 and len(out.splitlines()) == 1, err

    out, err, code, peak = run_cli_measured("history", "--json", "--since-rev", str(first), *where)
    assert code == 0, err
    lines = json_lines(out)
    witness = witness_watch(etcd.endpoint, first, end)
    assert len(witness) == EVENTS
    assert [(e["revision"], e["kind"], e["key"]) for e in lines] == witness
    assert all(e["complete"] for e in lines)
    grew = (peak - baseline) / 1024
    assert grew < BOUND_MB, f"history: {grew:.0f} MB above the CLI's own {baseline // 1024} MB"

    out, err, code, peak = run_cli_measured("list", "--json", "--history", str(EVENTS), *where)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["history_complete"] is True and doc["history_from"] == first
    assert [(e["revision"], e["kind"], e["key"]) for e in doc["history"]] == witness
    grew = (peak - baseline) / 1024
    assert grew < BOUND_MB, f"list --history: {grew:.0f} MB above the CLI's own"


def _life(etcdctl: Any) -> int:
    """Shared leases: a key deleted while its lease lives on, the lease revoked later (the
    rule that looks ahead), a revoke taking two keys, a key alone on a lease that ends, a
    key without a lease, one whose lease lives on now; returns the revision."""
    shared, pair, alone, kept = (etcdctl.lease_grant(600) for _ in range(4))
    value = '{"Id": "x", "Address": "http://x:1"}'
    etcdctl.put(f"{PREFIX}Orders/a", value, shared)
    etcdctl.put(f"{PREFIX}Orders/b", value, shared)
    etcdctl.put(f"{PREFIX}Billing/c", value, pair)
    etcdctl.put(f"{PREFIX}Billing/d", value, pair)
    etcdctl.put(f"{PREFIX}Stock/e", value, alone)
    etcdctl.put(f"{PREFIX}Stock/f", value)
    etcdctl.put(f"{PREFIX}Stock/g", value, kept)
    etcdctl.run("del", f"{PREFIX}Orders/a")  # its lease lives on, ends later in the read
    etcdctl.run("del", f"{PREFIX}Stock/f")
    for n in range(30):  # the look-ahead reads past these
        etcdctl.put(f"{PREFIX}Stock/h", f'{{"n": {n}}}')
    etcdctl.lease_revoke(pair)
    etcdctl.lease_revoke(alone)
    etcdctl.run("del", f"{PREFIX}Stock/g")
    etcdctl.lease_revoke(shared)
    _, revision = etcdctl.get_prefix(PREFIX)
    return int(revision)


async def test_streamed_reasons_are_those_of_the_held_read(etcd: Any, etcdctl: Any) -> None:
    """The CLI classifies each removal before printing it, with no event held: the same
    reasons and details as the held read (:func:`read_past`, every event in hand), the
    look-ahead rule included (``Orders/a``: its lease ended later, taking ``Orders/b``)."""
    from support.helpers import connection

    from etcd_registry_tui.registry.history.read import read_past

    end = _life(etcdctl)
    async with connection(etcd.endpoint) as conn:
        held = await read_past(conn, PREFIX, end, max_events=None)
    assert held.complete
    expected = [(e.revision, e.kind.value, e.key_text, e.label, e.detail) for e in held.events]
    reasons = {key: label for _, kind, key, label, _ in expected if kind == "DELETE"}
    assert reasons[f"{PREFIX}Orders/a"] == "DEREGISTERED"  # deleted, then its lease went
    assert reasons[f"{PREFIX}Orders/b"] == "LEASE ENDED"
    assert reasons[f"{PREFIX}Stock/g"] == "DEREGISTERED"

    result = await asyncio.to_thread(run_cli, "history", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    printed = []
    for line in result.stdout.splitlines():  # "REVISION  LABEL        KEY  DETAIL"
        key, _, detail = line[25:].partition("  ")
        printed.append((int(line[:10]), line[12:25].strip(), key, detail))
    assert printed == [(r, label, key, detail) for r, _, key, label, detail in expected]
    as_json = await asyncio.to_thread(run_cli, "history", "--json", "--endpoints", etcd.endpoint)
    assert [
        (e["revision"], e["kind"], e["key"], e["reason"]) for e in json_lines(as_json.stdout)
    ] == [
        (r, kind, key, label if kind == "DELETE" else None) for r, kind, key, label, _ in expected
    ]


def test_a_slow_stdout_is_not_idle_time(etcd: Any, monkeypatch: Any, capsys: Any) -> None:
    """The read waits while stdout takes the events (back-pressure on the watch); that time
    is not etcd's silence: a consumer slower than the idle time stops nothing."""
    from etcd_registry_tui.cli import history as cli_history
    from etcd_registry_tui.cli.main import main

    first, end = asyncio.run(many_puts(etcd.endpoint, 3_000))
    monkeypatch.setattr(cli_history, "READ_IDLE", 3.0)
    real_print = cli_history.print_event
    slow: list[int] = []

    def print_event(event: Any, *args: Any, **kwargs: Any) -> None:
        if event.revision % 1_500 == 0:
            slow.append(event.revision)
            time.sleep(4.0)  # a reader that stops reading for longer than the idle time
        real_print(event, *args, **kwargs)

    monkeypatch.setattr(cli_history, "print_event", print_event)
    code = main(["history", "--json", "--since-rev", str(first), "--endpoints", etcd.endpoint])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert len(slow) >= 2
    assert [e["revision"] for e in json_lines(out.out)] == list(range(first, end + 1))


def test_a_compaction_during_the_read_is_a_gap_where_it_happened(
    etcd: Any, etcdctl: Any, monkeypatch: Any, capsys: Any
) -> None:
    """etcd compacts far ahead of the replay while its first events are printed (etcd
    replays 1,000 revisions a tick): what was printed stays, the compacted revisions are
    one gap record where they were, and the read goes on after them (``etcdctl watch
    --rev`` as witness of that part)."""
    from etcd_registry_tui.cli import history as cli_history
    from etcd_registry_tui.cli.main import main

    first, end = asyncio.run(many_puts(etcd.endpoint, 10_000))
    compact_at = end - 2_000
    real_stream = cli_history.stream_past
    done: list[int] = []

    async def stream_past(conn: Any, prefix: str, start: int, stop: int, on_events: Any,
                          *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        async def printed(events: Any) -> None:
            await on_events(events)
            if not done:  # the first revision printed: compact far ahead of the replay
                done.append(events[-1].revision)
                await conn.compact(compact_at)

        return await real_stream(conn, prefix, start, stop, printed, *args, **kwargs)

    monkeypatch.setattr(cli_history, "stream_past", stream_past)
    code = main(["history", "--json", "--since-rev", str(first), "--endpoints", etcd.endpoint])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = json_lines(out.out)
    gaps = [i for i, line in enumerate(lines) if line.get("type") == "gap"]
    assert len(gaps) == 1, lines[-3:]
    gap = lines[gaps[0]]
    before, after = lines[: gaps[0]], [e for e in lines[gaps[0] + 1 :] if "type" not in e]
    assert before and [e["revision"] for e in before] == list(range(first, gap["from"]))
    assert gap["reason"] == "compacted" and gap["to"] == compact_at
    assert f"revisions {gap['from']} to {compact_at} are compacted" in out.err
    assert [(e["revision"], e["kind"], e["key"]) for e in after] == witness_watch(
        etcd.endpoint, compact_at + 1, end
    )


def test_a_replay_slower_than_the_settle_rule_is_read_whole(
    etcd: Any, etcdctl: Any, monkeypatch: Any, capsys: Any
) -> None:
    """etcd before 3.4.25 answers progress requests at once while it still replays (etcd
    #15220); a first batch slower than the settle rule (here: the rule made to end at the
    first such answer, as 100,000 revisions make etcd 3.4 slower than one second) must not
    end the read with nothing while etcd holds a put in the range."""
    from etcd_registry_tui.cli.main import main
    from etcd_registry_tui.registry.history import read

    first, end = asyncio.run(many_puts(etcd.endpoint, 2_000))
    # (On etcd 3.4.25+ / 3.5.8+ answers are ordered and the rule is not used: passes too.)
    monkeypatch.setattr(read, "PROGRESS_EVERY", 0.001)
    monkeypatch.setattr(read, "SETTLE", 0.0)
    monkeypatch.setattr(read, "SETTLE_ANSWERS", 1)
    code = main(["history", "--json", "--since-rev", str(first), "--endpoints", etcd.endpoint])
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = json_lines(out.out)
    assert [line.get("type") for line in lines if "type" in line] == []
    assert [(e["revision"], e["kind"], e["key"]) for e in lines] == witness_watch(
        etcd.endpoint, first, end
    )


def _big(n: int) -> bytes:
    return json.dumps({"Id": f"o{n % 50}", "n": n, "pad": "x" * 3000}).encode()


def _once_each(lines: list[Any]) -> list[int]:
    revisions = [line["revision"] for line in lines if "revision" in line]
    assert len(revisions) == len(set(revisions)), "a revision was printed twice"
    return revisions


def test_a_read_cut_inside_a_fragmented_batch_prints_each_event_once(etcd: Any) -> None:
    """1,000 revisions of 3 KB: etcd replays them in one batch, sent in fragments; the link
    is cut inside it. What was printed is printed once, the gap starts right after it, and
    --follow (the link back) prints every revision once."""
    from support.tcp_proxy import tcp_proxy

    first, end = asyncio.run(many_puts(etcd.endpoint, 1000, value=_big))
    truth = [r for r, _, _ in witness_watch(etcd.endpoint, first, end)]
    with tcp_proxy(etcd.client_port) as proxy:
        proxy.cut_after_replies(2_600_000)  # inside the batch's ~3 MB
        result = run_cli("history", "--json", "--since-rev", str(first),
                         "--endpoints", proxy.endpoint)  # fmt: skip
    lines = json_lines(result.stdout)
    printed = _once_each(lines)
    gaps = [line for line in lines if line.get("type") == "gap"]
    assert result.returncode != 0 and len(gaps) == 1, result.stderr
    assert printed == truth[: len(printed)] and len(printed) < len(truth)
    assert gaps[0]["from"] == (printed[-1] + 1 if printed else first) and gaps[0]["to"] >= end

    from support.cli_helpers import cli_lines, read_until

    with tcp_proxy(etcd.client_port) as proxy:
        proxy.cut_after_replies(2_600_000)
        follow = ("history", "--json", "--follow", "--since-rev", str(first))
        with cli_lines(*follow, "--endpoints", proxy.endpoint) as next_line:
            deadline = time.monotonic() + 120
            while proxy.cut_after is not None:  # until the cut happened
                assert time.monotonic() < deadline, "the link was never cut"
                time.sleep(0.1)
            time.sleep(1)
            proxy.heal()  # the link comes back; the follow takes up where it was
            got = read_until(
                next_line, lambda seen: any(s.get("revision") == end for s in seen), wait=60
            )
    assert _once_each(got) == truth
