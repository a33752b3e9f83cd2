"""The whole-app benchmark's quick run: it must work and print every figure.

No wall-clock assertions: the figures are for people to read (and the machine running
the tests may be busy). Needs etcd; skipped without it (an error on CI).
"""

from __future__ import annotations

import re

from support.bench import run_bench
from support.etcdctl import require_etcd

FIGURES = (
    "first frame after snapshot [2,000]",
    "of which applying it (flush) [2,000]",
    "snapshot Range + parse, before it [2,000]",
    "RSS before loading [2,000]",
    "RSS with the fleet shown [2,000]",
    "put/delete to screen, median",
    "put/delete to screen, p99",
    "tick + render CPU (tick, pilot.pause)",
    "idle CPU with the tick running",
    "expiry burst: first delete to view",
    "expiry burst: longest UI stall",
    "delete-prefix burst: first delete to view",
    "delete-prefix burst: longest UI stall",
    "longest flush (applying a batch)",
    "longest garbage collection pause",
    # the sustained-load scenario (a writer process of its own, then the lag)
    "load: puts/s the writer achieved",
    "load: events/s taken in by the app",
    "load: frames/s on screen",
    "load: app CPU while the writer ran",
    "load: app CPU per 1,000 events",
    "load: status line behind etcd, max",
    "load: status line behind etcd, p95",
    "load: revisions behind, max",
    "load: revisions behind, p95",
    "load: caught up after the writer stopped",
)

# A figure line: label, a number with its unit, then a target and a verdict, or "info".
LINE = re.compile(
    r"^\s*(?P<label>.+?)\s+(?P<value>-?\d+\.\d) (?P<unit>ms|MB|%|/s|s|rev)\s+(?P<rest>.*)$"
)


def test_app_bench_quick() -> None:
    require_etcd()
    result = run_bench("app_bench.py", "--quick", timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = {}
    for line in out.splitlines():
        match = LINE.match(line)
        if match:
            lines[match["label"]] = match["rest"]
    for label in FIGURES:
        assert label in lines, f"no figure line {label!r} in:\n{out}"
        rest = lines[label]
        assert re.match(r"target <= [\d.]+ (ms|MB|%|s)\s+(ok|over)\b", rest) or rest.startswith(
            "info"
        ), f"{label!r}: no target and verdict in {rest!r}"
    assert re.search(r"\d+ of \d+ figures within target", out), out


def test_elections_bench_quick_sees_every_leader_change() -> None:
    """With 20 elections, revoking each leader in turn gives 20 leader changes on screen
    (the bench waits for each frame; a change that never showed would fail it)."""
    require_etcd()
    result = run_bench("app_bench.py", "--quick", "--elections-only", timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"leader change to screen, median .* 20 changes per run", out), out
    for label in ("first frame with 20 elections", "put→screen with 20 elections"):
        assert re.search(rf"{label}\s+[\d.]+ ms\s+target <= [\d.]+ ms\s+(ok|over)", out), out
