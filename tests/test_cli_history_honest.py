"""``history`` and ``list --history`` say what they could not read (real etcd, etcdctl as
witness): a future ``--since-rev``, an unconfirmed read, a read that stopped partway."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

from test_cli import CLI, run_cli
from test_cli_history import _line_reader

PREFIX = "/services/"


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
        next_line = _line_reader(proc.stdout)
        _wait_for_a_watcher(etcd)  # the follow is live: what follows is written after it
        for n in range(5):
            etcdctl.put(f"{PREFIX}Orders/f{n}", "{}")
        printed = []
        while not printed or printed[-1]["revision"] < now + 5:
            line = next_line(20)
            assert line is not None, f"no more lines after {printed}"
            printed.append(json.loads(line))
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


def _reader_only(etcdctl: Any) -> list[str]:
    """A user allowed to read only the prefix (it cannot watch every key, so a window with
    no event under the prefix cannot be proven quiet on this etcd); its login options."""
    etcdctl.run("user", "add", "root:pw")
    etcdctl.run("role", "add", "reader")
    etcdctl.run("role", "grant-permission", "reader", "--prefix=true", "read", PREFIX)
    etcdctl.run("user", "add", "reader:pw")
    etcdctl.run("user", "grant-role", "reader", "reader")
    etcdctl.run("auth", "enable")
    return ["--user", "reader:pw"]


def test_list_history_text_and_history_json_say_an_unconfirmed_read(
    etcd: Any, etcdctl: Any
) -> None:
    """A window with no event under the prefix that etcd cannot confirm: ``list --history``
    says so on stderr in text too; ``history --json`` writes an ``incomplete`` record."""
    etcdctl.put(f"{PREFIX}Orders/a", '{"Id": "a", "Address": "http://a:1"}')
    for n in range(3):
        etcdctl.put(f"/elsewhere/{n}", "x")
    end = _revision(etcdctl)
    login = _reader_only(etcdctl)
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
