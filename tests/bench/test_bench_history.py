"""The history benchmark's quick run: it must work and print every figure (no timing
asserted: the figures are for people to read). Needs etcd."""

from __future__ import annotations

from support.bench import run_bench
from support.etcdctl import require_etcd

FIGURES = (
    "history adds to the first frame",
    "step one revision back, p95",
    "step one revision back, max",
    "memory growth 10,000 → all events",
)


def test_history_bench_quick_prints_every_figure() -> None:
    require_etcd()
    proc = run_bench("history_bench.py", "--quick", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in FIGURES:
        assert name in proc.stdout, proc.stdout
