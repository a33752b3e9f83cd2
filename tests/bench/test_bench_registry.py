"""The data-layer benchmark runs (``--quick``) and prints every figure.

No timing assertions: the figures are for people to read.
"""

from __future__ import annotations

import re

from support.bench import run_bench
from support.etcdctl import require_etcd, require_etcdctl


def test_registry_bench_quick() -> None:
    require_etcd()
    require_etcdctl()
    result = run_bench("registry_bench.py", "--quick", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()

    def line(label: str) -> str:
        found = [x for x in lines if x.startswith(label)]
        assert len(found) == 1, f"no single {label!r} line in:\n{result.stdout}"
        return found[0]

    snapshot = line("snapshot load:")
    assert "10,000 instances" in snapshot and "etcdctl get --prefix" in snapshot
    assert " ms" in snapshot and "x (target <= 1.5x)" in snapshot
    latency = line("put latency:")
    assert "p50" in latency and "p99" in latency and "bare aetcd" in latency
    assert "difference" in latency
    tracker = line("lease tracker:")
    assert "LeaseTimeToLive calls/s" in tracker and "(target <= 200)" in tracker
    deviation = line("lease deviation:")
    assert "max |tracker remaining - etcd TimeToLive|" in deviation and "renewed" in deviation
    memory = line("memory:")
    assert "10,000 instances" in memory and "MB (tracemalloc)" in memory and "RSS" in memory
    for figure in (snapshot, latency, tracker, deviation, memory):
        assert re.search(r"\(target [^)]*\) (ok|over)\b", figure), figure  # a verdict each
    assert lines[-1].startswith("done in")
