"""``list --rev`` and ``history`` against real etcd, with etcdctl making the history."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cli_helpers import (
    PREFIX,
    cli_lines,
    json_lines,
    many_puts,
    read_until,
    reader_only,
    run_cli,
    witness_at,
    witness_watch,
)

from etcd_registry_tui.cli.main import main


def make_history(etcdctl: Any, seed: int = 7, steps: int = 40) -> int:
    """A registry's life: registrations, updates, deletes, revokes; returns the revision."""
    rng = random.Random(seed)
    leases = [etcdctl.lease_grant(600) for _ in range(3)]
    for step in range(steps):
        service = rng.choice(["Orders", "Billing", "Stock"])
        iid = f"i{rng.randrange(6)}"
        key = f"{PREFIX}{service}/{iid}"
        roll = rng.random()
        if roll < 0.6:
            lease = rng.choice([None, *leases])
            etcdctl.put(key, json.dumps({"Id": iid, "Address": f"http://{iid}:{step}"}), lease)
        elif roll < 0.9:
            etcdctl.run("del", key)
        elif leases:
            etcdctl.lease_revoke(leases.pop())
    _, rev = etcdctl.get_prefix(PREFIX)
    return int(rev)


def etcdctl_at(etcdctl: Any, revision: int) -> dict[str, tuple[str, str | None]]:
    data = etcdctl.run_json("get", "--prefix", f"--rev={revision}", "--", PREFIX)
    found = {}
    for kv in data.get("kvs") or []:
        lease = int(kv.get("lease", 0))
        found[base64.b64decode(kv["key"]).decode()] = (
            base64.b64decode(kv.get("value", "")).decode(),
            format(lease, "016x") if lease else None,
        )
    return found


def listed_at(capsys: Any, endpoint: str, revision: int) -> dict[str, tuple[str, str | None]]:
    assert main(["list", "--endpoints", endpoint, "--rev", str(revision), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["revision"] == revision
    return {
        inst["key"]: (json.dumps(inst["value"], separators=(",", ":")), inst["lease"])
        for service in doc["services"]
        for inst in service["instances"]
    }


def normalise(view: dict[str, tuple[str, str | None]]) -> dict[str, tuple[Any, str | None]]:
    return {k: (json.loads(v), lease) for k, (v, lease) in view.items()}


@pytest.fixture(scope="module")
def history_etcd(request: Any) -> Any:
    from support.etcdctl import Etcdctl

    from etcd_registry_tui.demo.embedded import EmbeddedEtcd

    server = EmbeddedEtcd()
    server.start()
    request.addfinalizer(server.stop)
    etcdctl = Etcdctl(server.endpoint)
    end = make_history(etcdctl)
    return server, etcdctl, end


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(fraction=st.floats(0, 1))
def test_list_rev_equals_etcdctl_get_rev(history_etcd: Any, capsys: Any, fraction: float) -> None:
    server, etcdctl, end = history_etcd
    revision = 1 + round(fraction * (end - 1))
    assert normalise(listed_at(capsys, server.endpoint, revision)) == normalise(
        etcdctl_at(etcdctl, revision)
    )


def test_list_rev_of_a_compacted_revision_names_the_compaction(etcd: Any, etcdctl: Any) -> None:
    end = make_history(etcdctl, steps=8)
    etcdctl.compact(end - 2)
    result = run_cli("list", "--endpoints", etcd.endpoint, "--rev", "2")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"revision 2 is compacted: etcd keeps history from revision {end - 2}"
    ]


def test_list_rev_text_names_leases_not_countdowns_and_flags_bad_values(
    etcd: Any, etcdctl: Any
) -> None:
    lease = etcdctl.lease_grant(60)
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a", "Address": "http://127.0.0.1:1"}', lease)
    etcdctl.put(f"{PREFIX}Orders/b", "not json\x1b]0;x\x07")
    _, revision = etcdctl.get_prefix(PREFIX)
    etcdctl.lease_revoke(lease)  # gone now, listed at the revision it was there
    text = run_cli("list", "--endpoints", etcd.endpoint, "--rev", str(revision))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[:2] == [f"as of revision {revision}", "Orders  (2 instances)"]
    assert lines[2].split() == ["a", "http://127.0.0.1:1", "lease", format(lease, "016x")]
    assert lines[3].split()[:4] == ["b", "(no", "address)", "no"]
    assert "⚠" in lines[3] and "\x1b" not in text.stdout
    doc = json.loads(
        run_cli("list", "--endpoints", etcd.endpoint, "--rev", str(revision), "--json").stdout
    )
    a, b = doc["services"][0]["instances"]
    assert "ttl" not in a and a["lease"] == format(lease, "016x")  # no countdown of the past
    assert "error" in b and "error" not in a


def test_history_json_one_object_per_line_with_reasons(etcd: Any, etcdctl: Any) -> None:
    lease = etcdctl.lease_grant(60)
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}', lease)
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a", "v": 2}', lease)
    etcdctl.put(f"{PREFIX}Billing/b", '{"Id": "b"}')
    etcdctl.run("del", f"{PREFIX}Billing/b")
    etcdctl.lease_revoke(lease)
    result = run_cli("history", "--endpoints", etcd.endpoint, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["kind"], d["key"], d["reason"]) for d in lines] == [
        ("PUT", f"{PREFIX}Orders/a", None),
        ("UPDATE", f"{PREFIX}Orders/a", None),
        ("PUT", f"{PREFIX}Billing/b", None),
        ("DELETE", f"{PREFIX}Billing/b", "DEREGISTERED"),
        ("DELETE", f"{PREFIX}Orders/a", "LEASE ENDED"),
    ]
    assert set(lines[0]) == {
        "revision", "kind", "key", "key_b64", "service", "id", "reason", "complete"
    }  # fmt: skip
    assert all(d["complete"] for d in lines)
    assert lines[0]["service"] == "Orders" and lines[0]["id"] == "a"
    revisions = [d["revision"] for d in lines]
    assert revisions == sorted(revisions)

    only = run_cli("history", "--endpoints", etcd.endpoint, "--json", "--service", "Billing")
    assert {json.loads(line)["service"] for line in only.stdout.splitlines()} == {"Billing"}
    since = run_cli(
        "history", "--endpoints", etcd.endpoint, "--json", "--since-rev", str(revisions[3])
    )
    assert [json.loads(line)["revision"] for line in since.stdout.splitlines()] == revisions[3:]
    text = run_cli("history", "--endpoints", etcd.endpoint)
    assert "LEASE ENDED" in text.stdout and "DEREGISTERED" in text.stdout


def test_history_follow_prints_live_events_with_reasons(etcd: Any, etcdctl: Any) -> None:
    etcdctl.put(f"{PREFIX}Orders/old", '{"Id": "old"}')
    with cli_lines("history", "--endpoints", etcd.endpoint, "--json", "--follow") as next_line:
        first = json.loads(next_line(20) or "null")
        assert first["key"] == f"{PREFIX}Orders/old"
        lease = etcdctl.lease_grant(60)
        etcdctl.put(f"{PREFIX}Orders/new", '{"Id": "new"}', lease)
        put = json.loads(next_line(20) or "null")
        assert (put["kind"], put["id"]) == ("PUT", "new")
        etcdctl.lease_revoke(lease)
        gone = json.loads(next_line(20) or "null")
        assert (gone["kind"], gone["id"], gone["reason"]) == (
            "DELETE",
            "new",
            "LEASE ENDED",
        )  # another client's revoke: order unknown


def test_list_with_history_prints_the_past_with_reasons(etcd, etcdctl):
    lease = etcdctl.lease_grant(600)
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a", "Address": "http://a:1"}', lease)
    etcdctl.put(f"{PREFIX}Orders/b", '{"Id": "b", "Address": "http://b:1"}', lease)
    etcdctl.run("del", f"{PREFIX}Orders/a")  # its lease lives on: deregistered
    etcdctl.put(f"{PREFIX}Billing/c", '{"Id": "c", "Address": "http://c:1"}')

    result = run_cli("list", "--json", "--history", "100", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [s["name"] for s in doc["services"]] == ["Billing", "Orders"]
    events = [(e["kind"], e["key"], e["reason"]) for e in doc["history"]]
    assert events == [
        ("PUT", f"{PREFIX}Orders/a", None),
        ("PUT", f"{PREFIX}Orders/b", None),
        ("DELETE", f"{PREFIX}Orders/a", "DEREGISTERED"),
        ("PUT", f"{PREFIX}Billing/c", None),
    ]
    assert doc["history_from"] <= doc["history"][0]["revision"]

    text = run_cli("list", "--history", "100", "--endpoints", etcd.endpoint)
    assert text.returncode == 0, text.stderr
    assert "History from revision" in text.stdout and "DEREGISTERED" in text.stdout
    plain = run_cli("list", "--endpoints", etcd.endpoint)  # without --history: no history
    assert "History" not in plain.stdout


def test_history_since_rev_and_list_history_print_every_event_past_10000(
    etcd: Any, etcdctl: Any
) -> None:
    """12,000 events: ``history --since-rev`` and ``list --history`` print all of them (the
    10,000 bound is the dashboard's memory, not what a CLI prints)."""
    first, end = asyncio.run(many_puts(etcd.endpoint, 12_000, at_once=200))
    assert end - first + 1 == 12_000
    assert witness_at(etcdctl, first) == {f"{PREFIX}Orders/first": first}
    result = run_cli("history", "--json", "--since-rev", str(first), "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["revision"] for line in lines] == list(range(first, end + 1))
    assert lines[0]["key"] == f"{PREFIX}Orders/first"
    listed = run_cli("list", "--json", "--history", "12000", "--endpoints", etcd.endpoint)
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert [e["revision"] for e in doc["history"]] == list(range(first, end + 1))


def test_history_follow_after_a_compaction_says_gap_instead_of_printing_a_snapshot(
    etcd: Any, etcdctl: Any
) -> None:
    """The follow watch is cut off while keys change and etcd compacts them away: the
    reload is not printed as events; one gap record names the compacted revisions, then
    the stream equals ``etcdctl watch --rev`` from the compaction on."""
    from support.tcp_proxy import tcp_proxy

    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    with (
        tcp_proxy(etcd.client_port) as proxy,
        cli_lines("history", "--endpoints", proxy.endpoint, "--json", "--follow") as next_line,
    ):
        first = json.loads(next_line(20) or "null")
        assert first["key"] == f"{PREFIX}Orders/a"
        etcdctl.put(f"{PREFIX}Orders/live", '{"Id": "live"}')  # the watch is live
        assert json.loads(next_line(20) or "null")["key"] == f"{PREFIX}Orders/live"
        _, seen = etcdctl.get_prefix(PREFIX)
        proxy.refuse()
        etcdctl.put(f"{PREFIX}Orders/b", '{"Id": "b"}')
        etcdctl.put(f"{PREFIX}Orders/c", '{"Id": "c"}')
        etcdctl.run("del", f"{PREFIX}Orders/b")
        _, compacted = etcdctl.get_prefix(PREFIX)
        etcdctl.compact(int(compacted))
        etcdctl.put(f"{PREFIX}Orders/d", '{"Id": "d"}')  # after the compaction: readable
        proxy.heal()
        printed = read_until(
            next_line, lambda p: bool(p) and p[-1].get("key") == f"{PREFIX}Orders/d"
        )
        etcdctl.put(f"{PREFIX}Orders/e", '{"Id": "e"}')
        printed.append(json.loads(next_line(20) or "null"))
    gaps = [p for p in printed if p.get("type") == "gap"]
    assert gaps == [
        {"type": "gap", "from": int(seen) + 1, "to": int(compacted), "reason": "compacted",
         "complete": False}
    ], printed  # fmt: skip
    events = [p for p in printed if p.get("type") != "gap"]
    assert printed[0]["type"] == "gap"
    # Witness: etcd no longer has the gap, and from the compaction on its history is this.
    with pytest.raises(Exception, match="compacted"):
        etcdctl.run("get", "--prefix", f"--rev={int(seen) + 1}", "--", PREFIX)
    seen_events = witness_watch(etcd.endpoint, int(compacted) + 1, int(compacted) + 2)
    assert [(e["revision"], e["kind"], e["key"]) for e in events] == seen_events


def test_history_follow_across_an_etcd_restart_prints_each_event_once(
    etcd: Any, etcdctl: Any
) -> None:
    """etcd restarts under ``--follow``; events written right after it (a txn of several
    keys among them): each event printed once, in order."""
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    with cli_lines("history", "--endpoints", etcd.endpoint, "--json", "--follow") as next_line:
        assert json.loads(next_line(20) or "null")["key"] == f"{PREFIX}Orders/a"
        etcd.restart()
        etcdctl.put(f"{PREFIX}Orders/b", '{"Id": "b"}')
        etcdctl.run("txn", input=f"\nput {PREFIX}Orders/t1 v\nput {PREFIX}Orders/t2 v\n\n\n")
        etcdctl.put(f"{PREFIX}Orders/last", '{"Id": "last"}')
        _, last = etcdctl.get_prefix(PREFIX)
        printed = read_until(
            next_line, lambda p: bool(p) and p[-1].get("key") == f"{PREFIX}Orders/last"
        )
    got = [(p["revision"], p["key"]) for p in printed]
    end = int(last)
    assert got == [
        (end - 2, f"{PREFIX}Orders/b"),
        (end - 1, f"{PREFIX}Orders/t1"),
        (end - 1, f"{PREFIX}Orders/t2"),
        (end, f"{PREFIX}Orders/last"),
    ]


def test_history_since_a_compacted_revision_says_the_gap_in_json(etcd: Any, etcdctl: Any) -> None:
    """``--since-rev`` below etcd's compaction: the JSON stream starts with a gap record
    naming what etcd no longer has (``etcdctl get --rev`` is refused there too)."""
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    etcdctl.put(f"{PREFIX}Orders/b", '{"Id": "b"}')
    _, compacted = etcdctl.get_prefix(PREFIX)
    etcdctl.put(f"{PREFIX}Orders/c", '{"Id": "c"}')
    etcdctl.compact(int(compacted))
    with pytest.raises(Exception, match="compacted"):
        etcdctl.run("get", "--prefix", "--rev=2", "--", PREFIX)
    result = run_cli("history", "--json", "--since-rev", "2", "--endpoints", etcd.endpoint)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"type": "gap", "from": 2, "to": int(compacted), "reason": "compacted",
                        "complete": False}  # fmt: skip
    assert [(e["revision"], e["key"]) for e in lines[1:]] == [
        (int(compacted) + 1, f"{PREFIX}Orders/c")
    ]
    assert result.stderr.count("compacted") == 1


async def test_follow_gap_never_claims_revisions_past_its_end_compacted(
    etcd: Any, etcdctl: Any, capsys: Any
) -> None:
    """etcd compacts past the session's snapshot before the gap up to it is read: the gap
    record names the compacted revisions up to the snapshot only (the live watch, from
    there, delivers the rest)."""
    import argparse

    from support.helpers import connection

    from etcd_registry_tui.cli.history import _print_gap
    from etcd_registry_tui.registry.etcd.config import ConnectionConfig

    for key in "abcd":
        etcdctl.put(f"{PREFIX}Orders/{key}", "{}")
    _, now = etcdctl.get_prefix(PREFIX)
    etcdctl.compact(int(now))
    args = argparse.Namespace(json=True, service=None)
    async with connection(etcd.endpoint) as conn:
        await _print_gap(conn, ConnectionConfig(endpoints=(etcd.endpoint,)), args, 1, int(now) - 2)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"type": "gap", "from": 2, "to": int(now) - 2, "reason": "compacted", "complete": False}
    ]


def test_history_of_a_user_who_reads_only_the_prefix_stays_honest(etcd: Any, etcdctl: Any) -> None:
    """A user allowed only the prefix cannot watch every key: an empty window is then not
    proven, and says ``incomplete`` (one line, no traceback); a window with events is."""
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a"}')
    for n in range(3):
        etcdctl.put(f"/elsewhere/{n}", "x")
    _, end = etcdctl.get_prefix(PREFIX)
    base = ["history", "--json", "--endpoints", etcd.endpoint, *reader_only(etcdctl)]
    quiet = run_cli(*base, "--since-rev", str(int(end) - 1))
    assert quiet.returncode == 0, quiet.stderr
    assert [json.loads(line)["type"] for line in quiet.stdout.splitlines()] == ["incomplete"]
    assert "Traceback" not in quiet.stderr
    assert "incomplete" in quiet.stderr
    whole = run_cli(*base)
    assert whole.returncode == 0, whole.stderr
    assert [json.loads(line)["complete"] for line in whole.stdout.splitlines()] == [True]
