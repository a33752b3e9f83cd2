"""The history benchmark's quick run: it must work and print every figure (no timing
asserted: the figures are for people to read). Needs etcd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import require_etcd

ROOT = Path(__file__).resolve().parent.parent

FIGURES = (
    "history adds to the first frame",
    "step one revision back, p95",
    "step one revision back, max",
    "memory growth 10,000 → all events",
)


def test_history_bench_quick_prints_every_figure() -> None:
    require_etcd()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "history_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in FIGURES:
        assert name in proc.stdout, proc.stdout
